import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The connections to one upstream origin.
///
/// The bookkeeping is a ``PoolStateMachine`` value under one lock; this class only runs the
/// actions its transitions return (start a call, open or close a connection, fail a call),
/// always after the lock is released, so a connection that answers at once cannot re-enter
/// the lock.
final class OriginPool: Sendable {
    struct Limits: Sendable {
        var connectTimeout: TimeAmount
        var maxHTTP2Connections: Int
        var maxHTTP1Connections: Int
        var maxQueuedCalls: Int
    }

    typealias StateMachine = PoolStateMachine<UpstreamCall, any UpstreamConnection>

    let origin: UpstreamOrigin
    private let group: any EventLoopGroup
    private let connectTimeout: TimeAmount
    private let sslContext: SSLContext?
    private let state: NIOLockedValueBox<StateMachine>

    init(origin: UpstreamOrigin, group: any EventLoopGroup, limits: Limits) throws(TLSError) {
        self.origin = origin
        self.group = group
        self.connectTimeout = limits.connectTimeout
        self.sslContext =
            origin.scheme == .https
            ? try SSLContext(client: TLSClientConfiguration(trustRoots: origin.trustRoots)) : nil
        state = NIOLockedValueBox(
            StateMachine(
                limits: .init(
                    maxHTTP2Connections: limits.maxHTTP2Connections, maxHTTP1Connections: limits.maxHTTP1Connections,
                    maxQueuedCalls: limits.maxQueuedCalls),
                cleartext: origin.scheme == .http))
    }

    func execute(_ call: UpstreamCall) {
        if let action = state.withLockedValue({ $0.execute(call) }) { run(action) }
    }

    /// Stops taking calls and closes every connection (GOAWAY on HTTP/2).
    func shutdown() {
        run(state.withLockedValue { $0.shutdown() })
    }

    /// Connections open or opening; for tests and metrics.
    func connectionCount() -> Int {
        state.withLockedValue { $0.connectionCount }
    }

    // MARK: - Connection events (from PooledConnection)

    func installed(_ id: StateMachine.ConnectionID, _ connection: any UpstreamConnection) {
        run(state.withLockedValue { $0.installed(id, connection) })
    }

    func ready(_ id: StateMachine.ConnectionID, maxStreams: Int) {
        run(state.withLockedValue { $0.ready(id, maxStreams: maxStreams) })
    }

    func maxStreamsChanged(_ id: StateMachine.ConnectionID, to maxStreams: Int) {
        run(state.withLockedValue { $0.maxStreamsChanged(id, to: maxStreams) })
    }

    func goingAway(_ id: StateMachine.ConnectionID) {
        run(state.withLockedValue { $0.goingAway(id) })
    }

    func streamClosed(_ id: StateMachine.ConnectionID) {
        run(state.withLockedValue { $0.streamClosed(id) })
    }

    func streamFailed(_ call: UpstreamCall, _ error: UpstreamError) {
        let mayReplay = call.mayReplay(after: error)
        if mayReplay { call.detach() }
        if let action = state.withLockedValue({ $0.streamFailed(call, error, mayReplay: mayReplay) }) { run(action) }
    }

    func closed(_ id: StateMachine.ConnectionID) {
        run(state.withLockedValue { $0.closed(id) })
    }

    func failed(_ id: StateMachine.ConnectionID, _ error: UpstreamError) {
        run(state.withLockedValue { $0.failed(id, error) })
    }

    // MARK: - Running actions

    private func run(_ actions: [StateMachine.Action]) {
        for action in actions { run(action) }
    }

    private func run(_ action: StateMachine.Action) {
        switch action {
        case .start(let call, let connection): connection.start(call)
        case .connect(let id, let http1): connect(PooledConnection(id: id, pool: self), http1: http1)
        case .close(let connection): connection.close()
        case .fail(let call, var error):
            if error.kind == .overloaded { error.message += " to \(origin)" }
            call.deliverFailure(error)
        }
    }

    private func connect(_ entry: PooledConnection, http1: Bool) {
        let origin = self.origin
        let sslContext = self.sslContext
        ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let sslContext {
                        try pipeline.addHandler(TLSHandler(context: sslContext, role: .client(serverName: origin.host)))
                        try pipeline.addHandler(ProtocolSelectionHandler(entry: entry, origin: origin))
                    } else if http1 {
                        try installHTTP1(on: channel, entry: entry, origin: origin)
                    } else {
                        try installHTTP2(on: channel, entry: entry, origin: origin)
                    }
                }
            }
            .connect(host: origin.host, port: origin.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    if sslContext == nil, http1 {
                        channel.eventLoop.execute { entry.connectionReady(protocol: .http1, maxStreams: 1) }
                    }
                case .failure(let error):
                    let upstreamError: UpstreamError
                    if case ChannelError.connectTimeout = error {
                        upstreamError = UpstreamError(.connectTimeout, "connecting to \(origin) timed out")
                    } else {
                        upstreamError = UpstreamError(.connectFailed, "cannot connect to \(origin): \(error)")
                    }
                    entry.connectionFailed(upstreamError)
                }
            }
    }
}

/// Picks HTTP/2 or HTTP/1.1 from ALPN once the TLS handshake is done.
final class ProtocolSelectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let entry: PooledConnection
    private let origin: UpstreamOrigin

    init(entry: PooledConnection, origin: UpstreamOrigin) {
        self.entry = entry
        self.origin = origin
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let handshake = event as? TLSHandshakeCompleted else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        do {
            // No ALPN answer means the server predates it: speak HTTP/1.1, never h2 frames.
            if handshake.negotiatedProtocol == "h2" {
                try installHTTP2(on: context.channel, entry: entry, origin: origin)
            } else {
                try installHTTP1(on: context.channel, entry: entry, origin: origin)
                entry.connectionReady(protocol: .http1, maxStreams: 1)
            }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            entry.connectionFailed(UpstreamError(.protocolError, "cannot set up the connection: \(error)"))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let message = (error as? TLSError)?.message ?? "\(error)"
        entry.connectionFailed(UpstreamError(.tlsFailed, "TLS to \(origin) failed: \(message)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        entry.connectionFailed(UpstreamError(.connectionClosed, "\(origin) closed the connection during the handshake"))
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension ProtocolSelectionHandler: Sendable {}

private func installHTTP2(on channel: any Channel, entry: PooledConnection, origin: UpstreamOrigin) throws {
    let handler = HTTP2ClientHandler(events: entry, authority: origin.authority, scheme: origin.scheme.rawValue)
    try channel.pipeline.syncOperations.addHandler(handler)
    entry.installed(HTTP2Connection(channel: channel, handler: handler))
}

private func installHTTP1(on channel: any Channel, entry: PooledConnection, origin: UpstreamOrigin) throws {
    let handler = HTTP1ClientHandler(events: entry, authority: origin.authority)
    try channel.pipeline.syncOperations.addHTTPClientHandlers(leftOverBytesStrategy: .fireError)
    try channel.pipeline.syncOperations.addHandler(handler)
    entry.installed(HTTP1Connection(channel: channel, handler: handler))
}
