import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Receives webhook posts on 127.0.0.1 over plain HTTP/1.1 and hands each over as it
/// arrives, headers and body. It can answer the first posts with a failure, to make a
/// sender retry.
public final class WebhookReceiver: Sendable {
    /// One post as it arrived.
    public struct Post: Sendable {
        public var path: String
        /// Header names in lower case.
        public var headers: [String: String]
        public var body: [UInt8]
        /// The status it was answered with.
        public var status: Int
    }

    public let posts: AsyncStream<Post>
    public let port: Int
    private let continuation: AsyncStream<Post>.Continuation
    private let channel: any Channel

    /// - Parameter failFirst: how many posts are answered 503 before the rest get 204.
    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, failFirst: Int = 0) async throws {
        let (posts, continuation) = AsyncStream.makeStream(of: Post.self)
        let failuresLeft = Atomic<Int>(failFirst)
        let record = { @Sendable (head: HTTPRequestHead, body: [UInt8]) -> Int in
            let fail = failuresLeft.wrappingSubtract(1, ordering: .relaxed).oldValue > 0
            let status = fail ? 503 : 204
            let headers = Dictionary(head.headers.map { ($0.name.lowercased(), $0.value) }) { first, _ in first }
            continuation.yield(Post(path: head.uri, headers: headers, body: body, status: status))
            return status
        }
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(PostHandler(record: record))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
        self.posts = posts
        self.continuation = continuation
    }

    /// Closes the listener; `posts` then ends after what has arrived.
    public func stop() async throws {
        try await channel.close()
        continuation.finish()
    }
}

/// Collects one request's body and answers with the status `record` returns.
private final class PostHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let record: @Sendable (HTTPRequestHead, [UInt8]) -> Int
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(record: @escaping @Sendable (HTTPRequestHead, [UInt8]) -> Int) { self.record = record }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(var buffer):
            // A bound, so a runaway sender cannot grow the test's memory.
            guard body.count + buffer.readableBytes <= 1 << 20 else { return context.close(promise: nil) }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else { return }
            let status = record(head, body)
            var headers = HTTPHeaders()
            headers.add(name: "content-length", value: "0")
            let response = HTTPResponseHead(
                version: head.version, status: HTTPResponseStatus(statusCode: status), headers: headers)
            context.write(wrapOutboundOut(.head(response)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            self.head = nil
        }
    }
}
