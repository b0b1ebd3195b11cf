import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import SluiceHTTP2

/// An OpenAI-compatible provider for demos, tests and the benchmark.
///
/// It answers deterministically (with a usage block), streams a configurable number of
/// chunks, and plays scripted faults chosen by the request's model name (see
/// ``MockBehaviour``). It speaks HTTP/2 through swift-nio-http2, so Sluice's nghttp2
/// client is always tested against an HTTP/2 implementation it does not share code with.
public final class MockProvider: Sendable {
    /// How the mock accepts connections.
    public enum Transport: Sendable {
        /// TLS with ALPN choosing `h2` or `http/1.1`.
        case tls(TLSServerConfiguration)
        /// Plain TCP: h2 with prior knowledge when the client opens with the HTTP/2 preface,
        /// HTTP/1.1 otherwise.
        case plaintext
        /// Plain TCP, HTTP/1.1 only (a peer that does not speak h2c).
        case http1Only
    }

    /// Where the mock listens and how it answers: `chunks` stream chunks per answer,
    /// `chunkDelayMilliseconds` between them, and the HTTP/2 `MAX_CONCURRENT_STREAMS` it
    /// advertises. Port 0 picks a free port (see ``port``).
    public struct Configuration: Sendable {
        public var transport: Transport
        public var host = "127.0.0.1"
        public var port = 0
        public var chunks = 8
        public var chunkDelayMilliseconds = 0
        public var maxConcurrentStreams = 1000
        /// JSON documents answered to `GET path` (a gateway's JWKS, say); see ``publish(_:at:)``.
        public var documents: [String: String] = [:]

        public init(transport: Transport) {
            self.transport = transport
        }
    }

    /// One request as the provider saw it.
    public struct RecordedRequest: Sendable {
        public var method: String
        public var path: String
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]
        public var httpVersion: String

        /// The first value of header `name` (case-insensitive).
        public func header(_ name: String) -> String? {
            headers.first(where: { $0.name.lowercased() == name })?.value
        }
    }

    struct Counters {
        var connectionsOpened = 0
        var requests: [RecordedRequest] = []
        var goAwaySent = false
        /// Requests seen per model name (for `fail_first`).
        var modelCounts: [String: Int] = [:]
        /// Streams the client abandoned (reset or closed) before the answer ended.
        var streamsAbandoned = 0
        var documents: [String: String] = [:]
        var waiters: [(predicate: @Sendable (Counters) -> Bool, continuation: CheckedContinuation<Void, Never>)] = []
    }

    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let tls: TLSServerContext?
    private let counters = NIOLockedValueBox(Counters())
    private let serverChannel = NIOLockedValueBox<(any Channel)?>(nil)

    /// Listens once ``start()`` is called. With no `group` the mock runs on its own one-thread group,
    /// shut down by ``stop()``.
    public init(configuration: Configuration, group: (any EventLoopGroup)? = nil) throws {
        self.configuration = configuration
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.ownsGroup = group == nil
        counters.withLockedValue { $0.documents = configuration.documents }
        if case .tls(let settings) = configuration.transport {
            self.tls = try TLSServerContext(configuration: settings)
        } else {
            self.tls = nil
        }
    }

    /// Binds and starts serving; returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.configureConnection(channel)
                }
            }
            .bind(host: configuration.host, port: configuration.port).get()
        serverChannel.withLockedValue { $0 = channel }
        return channel.localAddress?.port ?? configuration.port
    }

    /// The port the server listens on.
    public var port: Int { serverChannel.withLockedValue { $0?.localAddress?.port } ?? 0 }

    /// Closes the listening socket and every connection, and shuts down an owned group.
    public func stop() async throws {
        let channel = serverChannel.withLockedValue { channel in
            defer { channel = nil }
            return channel
        }
        try? await channel?.close()
        if ownsGroup { try await group.shutdownGracefully() }
    }

    /// Returns once the provider has seen `count` requests (a signal for tests).
    public func waitForRequests(_ count: Int) async {
        await waitUntil { $0.requests.count >= count }
    }

    /// Returns once `count` streams were abandoned by the client before they ended.
    public func waitForAbandonedStreams(_ count: Int) async {
        await waitUntil { $0.streamsAbandoned >= count }
    }

    public var streamsAbandoned: Int { counters.withLockedValue { $0.streamsAbandoned } }

    private func waitUntil(_ predicate: @escaping @Sendable (Counters) -> Bool) async {
        await withCheckedContinuation { continuation in
            let satisfied = counters.withLockedValue { counters -> Bool in
                if predicate(counters) { return true }
                counters.waiters.append((predicate, continuation))
                return false
            }
            if satisfied { continuation.resume() }
        }
    }

    /// Applies `change` and wakes the waiters it satisfies.
    private func update(_ change: (inout Counters) -> Void) {
        let ready = counters.withLockedValue { counters -> [CheckedContinuation<Void, Never>] in
            change(&counters)
            var ready: [CheckedContinuation<Void, Never>] = []
            let snapshot = counters
            counters.waiters.removeAll { waiter in
                guard waiter.predicate(snapshot) else { return false }
                ready.append(waiter.continuation)
                return true
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    func streamAbandoned() { update { $0.streamsAbandoned += 1 } }

    /// Every request seen so far, oldest first (at most the last 1,000).
    public var requests: [RecordedRequest] { counters.withLockedValue { $0.requests } }
    /// TCP connections accepted so far.
    public var connectionsOpened: Int { counters.withLockedValue { $0.connectionsOpened } }

    // MARK: - Connections

    private func configureConnection(_ channel: any Channel) throws {
        update { $0.connectionsOpened += 1 }
        let pipeline = channel.pipeline.syncOperations
        switch configuration.transport {
        case .tls:
            try tls!.addHandler(to: pipeline)
            try pipeline.addHandler(ALPNServerSwitch(provider: self))
        case .plaintext:
            try pipeline.addHandler(PrefaceSniffer(provider: self))
        case .http1Only:
            try configureHTTP1(channel)
        }
    }

    func configureHTTP2(_ channel: any Channel) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: configuration.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 65_536),
        ]
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = 1 << 20
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connection, streamConfiguration: stream
        ) { [self] streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                try streamChannel.pipeline.syncOperations.addHandler(MockHTTP2StreamHandler(provider: self))
            }
        }
    }

    func configureHTTP1(_ channel: any Channel) throws {
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: true, withErrorHandling: true)
        try channel.pipeline.syncOperations.addHandler(MockHTTP1Handler(provider: self))
    }

    // MARK: - Requests

    func record(_ request: RecordedRequest) {
        update { counters in
            if counters.requests.count >= 1000 { counters.requests.removeFirst() }
            counters.requests.append(request)
        }
    }

    /// Answers `GET path` with `json` from now on (replacing what was there).
    public func publish(_ json: String, at path: String) {
        update { $0.documents[path] = json }
    }

    func script(for request: RecordedRequest) -> [MockStep] {
        record(request)
        if request.method == "GET", let document = counters.withLockedValue({ $0.documents[request.path] }) {
            return MockScript.json(200, document)
        }
        let script = MockScript(
            defaultChunks: configuration.chunks, defaultChunkDelayMilliseconds: configuration.chunkDelayMilliseconds)
        return script.steps(
            method: request.method, path: request.path, authorization: request.header("authorization"),
            body: request.body,
            goAwayAvailable: {
                counters.withLockedValue { counters in
                    defer { counters.goAwaySent = true }
                    return !counters.goAwaySent
                }
            },
            seen: { model in
                counters.withLockedValue { counters in
                    defer { counters.modelCounts[model, default: 0] += 1 }
                    return counters.modelCounts[model, default: 0]
                }
            })
    }
}

/// Plays a script on a transport, honouring its delays.
protocol MockResponseWriter: AnyObject {
    func writeHead(status: Int, headers: [(String, String)])
    func writeData(_ bytes: [UInt8])
    func end()
    func reset()
    func goAway()
    var channelContext: ChannelHandlerContext? { get }
}

extension MockResponseWriter {
    func play(_ steps: ArraySlice<MockStep>) {
        var remaining = steps
        while let step = remaining.popFirst() {
            switch step {
            case .head(let status, let headers): writeHead(status: status, headers: headers)
            case .data(let bytes): writeData(bytes)
            case .end:
                end()
                return
            case .reset:
                reset()
                return
            case .goAway:
                goAway()
                return
            case .hang: return
            case .delay(let milliseconds):
                guard let context = channelContext else { return }
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(milliseconds))) { [self] in
                    self.play(remaining)
                }
                return
            }
        }
    }
}

/// Chooses HTTP/2 or HTTP/1.1 from ALPN after the TLS handshake.
final class ALPNServerSwitch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let provider: MockProvider

    init(provider: MockProvider) { self.provider = provider }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let handshake = event as? TLSHandshakeCompleted else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        do {
            if handshake.negotiatedProtocol == "h2" {
                try provider.configureHTTP2(context.channel)
            } else {
                try provider.configureHTTP1(context.channel)
            }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// On plain TCP, looks at the first bytes: the HTTP/2 preface starts with `PRI `.
final class PrefaceSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let provider: MockProvider
    private var buffered: ByteBuffer?

    init(provider: MockProvider) { self.provider = provider }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var held = buffered {
            held.writeBuffer(&bytes)
            bytes = held
        }
        guard bytes.readableBytes >= 4 else {
            buffered = bytes
            return
        }
        let isHTTP2 = bytes.getString(at: bytes.readerIndex, length: 4) == "PRI "
        do {
            if isHTTP2 {
                try provider.configureHTTP2(context.channel)
            } else {
                try provider.configureHTTP1(context.channel)
            }
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// One HTTP/2 stream of the mock provider.
final class MockHTTP2StreamHandler: ChannelInboundHandler, MockResponseWriter {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let provider: MockProvider
    private var method = ""
    private var path = ""
    private var headers: [(name: String, value: String)] = []
    private var body: [UInt8] = []
    /// The last DATA write: a reset waits for it, because RST_STREAM discards queued DATA.
    private var lastWrite: EventLoopFuture<Void>?
    private var answered = false
    private var ended = false
    var channelContext: ChannelHandlerContext?

    init(provider: MockProvider) { self.provider = provider }

    func handlerAdded(context: ChannelHandlerContext) { channelContext = context }
    func handlerRemoved(context: ChannelHandlerContext) { channelContext = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let frame):
            for (name, value, _) in frame.headers {
                switch name {
                case ":method": method = value
                case ":path": path = value
                default: if !name.hasPrefix(":") { headers.append((name, value)) }
                }
            }
            if frame.endStream { respond() }
        case .data(let frame):
            if case .byteBuffer(let buffer) = frame.data { body.append(contentsOf: buffer.readableBytesView) }
            if frame.endStream { respond() }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if answered, !ended { provider.streamAbandoned() }
        context.fireChannelInactive()
    }

    private func respond() {
        answered = true
        let request = MockProvider.RecordedRequest(
            method: method, path: path, headers: headers, body: body, httpVersion: "h2")
        play(provider.script(for: request)[...])
    }

    func writeHead(status: Int, headers: [(String, String)]) {
        var block = HPACKHeaders([(":status", String(status))])
        for (name, value) in headers { block.add(name: name, value: value) }
        channelContext?.writeAndFlush(wrapOutboundOut(.headers(.init(headers: block))), promise: nil)
    }

    func writeData(_ bytes: [UInt8]) {
        guard let context = channelContext else { return }
        let buffer = context.channel.allocator.buffer(bytes: bytes)
        lastWrite = context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))))
    }

    func end() {
        guard let context = channelContext else { return }
        ended = true
        context.writeAndFlush(
            wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))), promise: nil)
    }

    func reset() {
        guard let context = channelContext else { return }
        ended = true
        let frame = wrapOutboundOut(.rstStream(.internalError))
        guard let lastWrite else {
            context.writeAndFlush(frame, promise: nil)
            return
        }
        lastWrite.assumeIsolated().whenComplete { _ in
            context.writeAndFlush(frame, promise: nil)
        }
    }

    func goAway() {
        ended = true
        guard let context = channelContext, let parent = context.channel.parent else { return }
        context.channel.getOption(HTTP2StreamChannelOptions.streamID).whenSuccess { streamID in
            // The last stream id lies below this stream, so the client knows it went unprocessed.
            let last = HTTP2StreamID(max(0, Int(Int32(streamID)) - 2))
            parent.writeAndFlush(
                HTTP2Frame(
                    streamID: .rootStream, payload: .goAway(lastStreamID: last, errorCode: .noError, opaqueData: nil)),
                promise: nil)
        }
    }
}

/// The HTTP/1.1 face of the mock provider.
final class MockHTTP1Handler: ChannelInboundHandler, MockResponseWriter {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let provider: MockProvider
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    var channelContext: ChannelHandlerContext?

    init(provider: MockProvider) { self.provider = provider }

    func handlerAdded(context: ChannelHandlerContext) { channelContext = context }
    func handlerRemoved(context: ChannelHandlerContext) { channelContext = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = []
        case .body(let buffer):
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            let request = MockProvider.RecordedRequest(
                method: head.method.rawValue, path: head.uri,
                headers: head.headers.map { ($0.name.lowercased(), $0.value) }, body: body, httpVersion: "http/1.1")
            play(provider.script(for: request)[...])
        }
    }

    func writeHead(status: Int, headers: [(String, String)]) {
        var fields = HTTPHeaders()
        for (name, value) in headers { fields.add(name: name, value: value) }
        let response = HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: fields)
        channelContext?.writeAndFlush(wrapOutboundOut(.head(response)), promise: nil)
    }

    func writeData(_ bytes: [UInt8]) {
        guard let context = channelContext else { return }
        context.writeAndFlush(
            wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
    }

    func end() {
        channelContext?.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func reset() { channelContext?.close(promise: nil) }
    func goAway() { channelContext?.close(promise: nil) }
}
