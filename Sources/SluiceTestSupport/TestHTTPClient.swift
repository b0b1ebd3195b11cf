import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix

/// A response as a test sees it.
public struct TestResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? { headers.first(where: { $0.name.lowercased() == name })?.value }
}

/// A minimal HTTP/1.1 client for tests: it writes raw bytes (so tests can send malformed
/// requests) and parses what comes back with NIO's response decoder.
public enum TestHTTPClient {
    /// Sends `raw` on a new connection and returns the first response. Fails if the server
    /// closes the connection without answering.
    public static func send(raw: [UInt8], port: Int, host: String = "127.0.0.1", group: any EventLoopGroup) async throws
        -> TestResponse
    {
        try await sendPipelined(raw: raw, expecting: 1, port: port, host: host, group: group)[0]
    }

    /// Sends `raw` (several requests back to back) and returns the first `count` responses.
    public static func sendPipelined(
        raw: [UInt8], expecting count: Int, port: Int, host: String = "127.0.0.1",
        group: any EventLoopGroup
    ) async throws -> [TestResponse] {
        let collector = ResponseCollector(expecting: count)
        let writer = RawBytesWriter()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(writer)
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: host, port: port).get()
        // Let the decoder observe requests (it only parses solicited responses); the raw
        // writer swallows them and sends the caller's bytes instead.
        let method: HTTPMethod = raw.starts(with: Array("HEAD".utf8)) ? .HEAD : .POST
        // A server may answer and close before all of it is written (a read timeout): as a
        // real client does, read what it said rather than fail on the write.
        for _ in 0..<count {
            try? await channel.writeAndFlush(
                HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/")))
        }
        try? await channel.eventLoop.flatSubmit { writer.send(raw) }.get()
        let responses = try await collector.all.get()
        try? await channel.close()
        return responses
    }

    /// POSTs a JSON body.
    public static func post(
        _ path: String, json: String, headers: [(String, String)] = [], port: Int,
        group: any EventLoopGroup
    ) async throws -> TestResponse {
        var request =
            "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(json.utf8.count)\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n" + json
        return try await send(raw: Array(request.utf8), port: port, group: group)
    }

    /// One request with a JSON body (empty when nil) and, when given, a bearer token, on a
    /// connection closed after the answer: how tests drive an admin or agent API.
    public static func request(
        _ method: String, _ path: String, json: String? = nil, bearer: String? = nil,
        headers: [(String, String)] = [], port: Int, group: any EventLoopGroup
    ) async throws -> TestResponse {
        let body = json ?? ""
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if let bearer { text += "Authorization: Bearer \(bearer)\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        return try await send(raw: Array(text.utf8), port: port, group: group)
    }

    /// `GET path` on 127.0.0.1:`port` over HTTP/1.1, the answer read whole.
    public static func get(_ path: String, port: Int, group: any EventLoopGroup) async throws -> TestResponse {
        try await send(raw: Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8), port: port, group: group)
    }
}

/// Writes raw bytes from just above the socket.
final class RawBytesWriter: ChannelOutboundHandler, @unchecked Sendable {
    // Touched only on the channel's event loop.
    typealias OutboundIn = HTTPClientRequestPart
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    /// Request parts exist only for the decoder's benefit; they are not sent.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        promise?.succeed(())
    }

    func send(_ bytes: [UInt8]) -> EventLoopFuture<Void> {
        guard let context else { return ResponseCollector.failed }
        return context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: bytes)))
    }
}

/// Gathers the first `expecting` responses; fails if the connection ends first.
final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    // Touched only on the channel's event loop.
    typealias InboundIn = HTTPClientResponsePart

    private var head: HTTPResponseHead?
    private var body: [UInt8] = []
    private var promise: EventLoopPromise<[TestResponse]>?
    private var collected: [TestResponse] = []
    private let expecting: Int
    private let ready = NIOLockedValueBox<EventLoopFuture<[TestResponse]>?>(nil)

    init(expecting: Int = 1) {
        self.expecting = expecting
    }

    var all: EventLoopFuture<[TestResponse]> { ready.withLockedValue { $0! } }

    static var failed: EventLoopFuture<Void> {
        EmbeddedEventLoop().makeFailedFuture(TestClientError(message: "not connected"))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let promise = context.eventLoop.makePromise(of: [TestResponse].self)
        self.promise = promise
        ready.withLockedValue { $0 = promise.futureResult }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let responseHead): head = responseHead
        case .body(let buffer): body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            collected.append(
                TestResponse(
                    status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) }, body: body))
            self.head = nil
            body = []
            if collected.count == expecting {
                promise?.succeed(collected)
                promise = nil
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(TestClientError(message: "connection ended before a response"))
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(
            TestClientError(
                message:
                    "connection closed after \(collected.count) complete responses "
                    + "(status \(head.map { String($0.status.code) } ?? "none"), \(body.count) body bytes)"
            ))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error)
        context.close(promise: nil)
    }

    private func fail(_ error: Error) {
        promise?.fail(error)
        promise = nil
    }
}

/// Why the test client got no well-formed answer.
public struct TestClientError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}
