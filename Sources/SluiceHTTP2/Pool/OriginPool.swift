import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The connections to one upstream origin.
///
/// HTTP/2 connections carry up to the peer's `MAX_CONCURRENT_STREAMS` calls each; a new
/// connection opens only when every live one is full. HTTP/1.1 connections carry one call
/// each. Calls that find no room wait in a bounded queue. All bookkeeping happens under
/// one lock; I/O happens after it is released.
final class OriginPool: Sendable {
    struct Limits: Sendable {
        var connectTimeout: TimeAmount
        var maxHTTP2Connections: Int
        var maxHTTP1Connections: Int
        var maxQueuedCalls: Int
    }

    let origin: UpstreamOrigin
    private let group: any EventLoopGroup
    private let limits: Limits
    private let sslContext: SSLContext?
    private let state = NIOLockedValueBox(State())

    struct State {
        var entries: [ObjectIdentifier: PooledConnection] = [:]
        /// Calls waiting for room, oldest first.
        var waiting: [UpstreamCall] = []
        /// Learned when an h2c peer answered our preface in HTTP/1.x.
        var speaksOnlyHTTP1 = false
        var shuttingDown = false
    }

    init(origin: UpstreamOrigin, group: any EventLoopGroup, limits: Limits) throws(TLSError) {
        self.origin = origin
        self.group = group
        self.limits = limits
        self.sslContext = origin.scheme == .https
            ? try SSLContext(client: TLSClientConfiguration(trustRoots: origin.trustRoots)) : nil
    }

    // MARK: - Placing calls

    private enum Placement {
        case start(PooledConnection)
        case connect(PooledConnection)
        case queued
        case reject(UpstreamError)
    }

    func execute(_ call: UpstreamCall) {
        let placement = state.withLockedValue { state -> Placement in
            guard !state.shuttingDown else { return .reject(UpstreamError(.connectionClosed, "agent is shutting down")) }
            // A connection with a free stream slot, preferring the busiest (fewer connections).
            if let entry = state.entries.values
                .filter({ $0.phase == .ready && $0.active < $0.maxStreams })
                .max(by: { $0.active < $1.active }) {
                entry.active += 1
                return .start(entry)
            }
            // A connection still being set up, if it has room for one more call.
            if let entry = state.entries.values.first(where: { $0.phase == .connecting && $0.queued.count < $0.expectedStreams }) {
                entry.queued.append(call)
                return .queued
            }
            let http1 = origin.scheme == .http && state.speaksOnlyHTTP1
            let open = state.entries.values.filter { $0.phase != .draining }.count
            if open < (http1 ? limits.maxHTTP1Connections : limits.maxHTTP2Connections) {
                // An HTTP/2 peer's stream limit is unknown until its SETTINGS arrive, so calls
                // wait on the connection being made; ready() moves any excess on.
                let entry = PooledConnection(pool: self, expectedStreams: http1 ? 1 : limits.maxQueuedCalls)
                entry.queued.append(call)
                state.entries[ObjectIdentifier(entry)] = entry
                return .connect(entry)
            }
            guard state.waiting.count < limits.maxQueuedCalls else {
                return .reject(UpstreamError(.overloaded, "too many calls waiting for a connection to \(origin)"))
            }
            state.waiting.append(call)
            return .queued
        }
        switch placement {
        case .start(let entry): entry.connection.start(call)
        case .connect(let entry): connect(entry)
        case .queued: break
        case .reject(let error): call.deliverFailure(error)
        }
    }

    /// Starts waiting calls on any free slots. Called whenever capacity may have appeared.
    private func drainWaiting() {
        let starts = state.withLockedValue { state -> [(PooledConnection, UpstreamCall)] in
            var starts: [(PooledConnection, UpstreamCall)] = []
            while !state.waiting.isEmpty,
                  let entry = state.entries.values.first(where: { $0.phase == .ready && $0.active < $0.maxStreams }) {
                entry.active += 1
                starts.append((entry, state.waiting.removeFirst()))
            }
            return starts
        }
        for (entry, call) in starts where !call.isCancelled {
            entry.connection.start(call)
        }
        for (entry, call) in starts where call.isCancelled { entry.streamClosed() }
        // Waiting calls with no room and no connection being made need one.
        let needConnection = state.withLockedValue { state in
            !state.waiting.isEmpty && !state.entries.values.contains { $0.phase == .connecting || ($0.phase == .ready && $0.active < $0.maxStreams) }
        }
        if needConnection {
            // Re-place them all: execute opens connections up to the limit and parks the rest.
            let calls = state.withLockedValue { state in
                defer { state.waiting.removeAll() }
                return state.waiting
            }
            for call in calls where !call.isCancelled { execute(call) }
        }
    }

    // MARK: - Connecting

    private func connect(_ entry: PooledConnection) {
        let origin = self.origin
        let sslContext = self.sslContext
        let http1 = state.withLockedValue { $0.speaksOnlyHTTP1 }
        ClientBootstrap(group: group)
            .connectTimeout(limits.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
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

    // MARK: - Connection events (from PooledConnection)

    func ready(_ entry: PooledConnection, maxStreams: Int) {
        let starts = state.withLockedValue { state -> [UpstreamCall] in
            entry.phase = .ready
            entry.maxStreams = max(1, maxStreams)
            let count = min(entry.queued.count, entry.maxStreams)
            let starts = Array(entry.queued.prefix(count))
            state.waiting.insert(contentsOf: entry.queued.dropFirst(count), at: 0)
            entry.queued.removeAll()
            entry.active += starts.count
            return starts
        }
        for call in starts { entry.connection.start(call) }
        drainWaiting()
    }

    func maxStreamsChanged(_ entry: PooledConnection, to maxStreams: Int) {
        state.withLockedValue { _ in entry.maxStreams = max(1, maxStreams) }
        drainWaiting()
    }

    func goingAway(_ entry: PooledConnection) {
        let closeNow = state.withLockedValue { _ -> Bool in
            entry.phase = .draining
            return entry.active == 0
        }
        if closeNow { entry.connection.close() }
        drainWaiting()
    }

    func streamClosed(_ entry: PooledConnection) {
        let closeNow = state.withLockedValue { _ -> Bool in
            entry.active = max(0, entry.active - 1)
            return entry.phase == .draining && entry.active == 0
        }
        if closeNow { entry.connection.close() }
        drainWaiting()
    }

    func streamFailed(_ call: UpstreamCall, _ error: UpstreamError) {
        if error.kind == .peerNotHTTP2 {
            state.withLockedValue { $0.speaksOnlyHTTP1 = true }
        }
        if call.mayReplay(after: error) {
            call.detach()
            execute(call)
        } else {
            call.deliverFailure(error)
        }
    }

    func closed(_ entry: PooledConnection) {
        state.withLockedValue { state in
            state.entries.removeValue(forKey: ObjectIdentifier(entry))
            entry.phase = .closed
        }
        drainWaiting()
    }

    func failed(_ entry: PooledConnection, _ error: UpstreamError) {
        let queued = state.withLockedValue { state -> [UpstreamCall] in
            state.entries.removeValue(forKey: ObjectIdentifier(entry))
            entry.phase = .closed
            if error.kind == .peerNotHTTP2 { state.speaksOnlyHTTP1 = true }
            defer { entry.queued.removeAll() }
            return entry.queued
        }
        for call in queued {
            // A peer that is not HTTP/2 processed nothing: retry these over HTTP/1.1.
            if error.kind == .peerNotHTTP2 { execute(call) } else { call.deliverFailure(error) }
        }
        if error.kind != .peerNotHTTP2 {
            // Calls waiting for room would wait for this connection too.
            let waiting = state.withLockedValue { state -> [UpstreamCall] in
                guard !state.entries.values.contains(where: { $0.phase == .connecting || $0.phase == .ready }) else { return [] }
                defer { state.waiting.removeAll() }
                return state.waiting
            }
            for call in waiting { call.deliverFailure(error) }
        }
    }

    /// Stops taking calls and closes every connection (GOAWAY on HTTP/2).
    func shutdown() {
        let (entries, waiting) = state.withLockedValue { state in
            state.shuttingDown = true
            defer { state.waiting.removeAll() }
            return (Array(state.entries.values), state.waiting)
        }
        for call in waiting { call.deliverFailure(UpstreamError(.connectionClosed, "agent is shutting down")) }
        for entry in entries where entry.hasConnection { entry.connection.close() }
    }

    /// Connections open or opening; for tests and metrics.
    func connectionCount() -> Int {
        state.withLockedValue { $0.entries.count }
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
    entry.connection = HTTP2Connection(channel: channel, handler: handler)
    try channel.pipeline.syncOperations.addHandler(handler)
}

private func installHTTP1(on channel: any Channel, entry: PooledConnection, origin: UpstreamOrigin) throws {
    let handler = HTTP1ClientHandler(events: entry, authority: origin.authority)
    entry.connection = HTTP1Connection(channel: channel, handler: handler)
    try channel.pipeline.syncOperations.addHTTPClientHandlers(leftOverBytesStrategy: .fireError)
    try channel.pipeline.syncOperations.addHandler(handler)
}
