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

    public var text: String { String(decoding: body, as: UTF8.self) }
    public func header(_ name: String) -> String? { headers.first(where: { $0.name.lowercased() == name })?.value }
}

/// A minimal HTTP/1.1 client for tests: it writes raw bytes (so tests can send malformed
/// requests) and parses what comes back with NIO's response decoder.
public enum TestHTTPClient {
    /// Sends `raw` on a new connection and returns the first response. Fails if the server
    /// closes the connection without answering.
    public static func send(raw: [UInt8], port: Int, host: String = "127.0.0.1", group: any EventLoopGroup) async throws -> TestResponse {
        let collector = ResponseCollector()
        let writer = RawBytesWriter()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The raw writer sits below the decoder, which only accepts request parts.
                    try channel.pipeline.syncOperations.addHandler(writer)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: host, port: port).get()
        // Let the decoder observe a request (it only parses solicited responses); the raw
        // writer swallows it and sends the caller's bytes instead.
        let head = HTTPRequestHead(version: .http1_1, method: raw.starts(with: Array("HEAD".utf8)) ? .HEAD : .POST, uri: "/")
        try await channel.writeAndFlush(HTTPClientRequestPart.head(head))
        try await channel.eventLoop.flatSubmit { writer.send(raw) }.get()
        let response = try await collector.response.get()
        try? await channel.close()
        return response
    }

    /// Sends `raw` (several requests back to back) and returns the first `count` responses.
    public static func sendPipelined(raw: [UInt8], expecting count: Int, port: Int, host: String = "127.0.0.1",
                                     group: any EventLoopGroup) async throws -> [TestResponse] {
        let collector = ResponseCollector(expecting: count)
        let writer = RawBytesWriter()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(writer)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: host, port: port).get()
        for _ in 0..<count {
            try await channel.writeAndFlush(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/")))
        }
        try await channel.eventLoop.flatSubmit { writer.send(raw) }.get()
        let responses = try await collector.all.get()
        try? await channel.close()
        return responses
    }

    /// POSTs a JSON body.
    public static func post(_ path: String, json: String, headers: [(String, String)] = [], port: Int,
                            group: any EventLoopGroup) async throws -> TestResponse {
        var request = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n" + json
        return try await send(raw: Array(request.utf8), port: port, group: group)
    }

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

/// Gathers one response; fails if the connection ends first.
final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    // Touched only on the channel's event loop.
    typealias InboundIn = HTTPClientResponsePart

    private var head: HTTPResponseHead?
    private var body: [UInt8] = []
    private var promise: EventLoopPromise<TestResponse>?
    private var allPromise: EventLoopPromise<[TestResponse]>?
    private var collected: [TestResponse] = []
    private let expecting: Int
    private let ready = NIOLockedValueBox<(EventLoopFuture<TestResponse>, EventLoopFuture<[TestResponse]>)?>(nil)

    init(expecting: Int = 1) {
        self.expecting = expecting
    }

    var response: EventLoopFuture<TestResponse> { ready.withLockedValue { $0!.0 } }
    var all: EventLoopFuture<[TestResponse]> { ready.withLockedValue { $0!.1 } }

    static var failed: EventLoopFuture<Void> {
        EmbeddedEventLoop().makeFailedFuture(TestClientError(message: "not connected"))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let promise = context.eventLoop.makePromise(of: TestResponse.self)
        let allPromise = context.eventLoop.makePromise(of: [TestResponse].self)
        self.promise = promise
        self.allPromise = allPromise
        ready.withLockedValue { $0 = (promise.futureResult, allPromise.futureResult) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let responseHead): head = responseHead
        case .body(let buffer): body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            let response = TestResponse(status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) }, body: body)
            promise?.succeed(response)
            promise = nil
            collected.append(response)
            self.head = nil
            body = []
            if collected.count == expecting {
                allPromise?.succeed(collected)
                allPromise = nil
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(TestClientError(message: "connection ended before a response"))
    }

    private func fail(_ error: Error) {
        promise?.fail(error)
        promise = nil
        allPromise?.fail(error)
        allPromise = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(TestClientError(message: "connection closed before a complete response (status \(head.map { String($0.status.code) } ?? "none"), \(body.count) body bytes)"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error)
        context.close(promise: nil)
    }
}

public struct TestClientError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
