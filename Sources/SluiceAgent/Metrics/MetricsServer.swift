import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The admin listener (default 127.0.0.1:9464): `GET /metrics` in the Prometheus text
/// format, and the `/healthz` and `/readyz` probes. Kept off the caller port so a scrape
/// config or a kubelet never needs the data-plane address (which stays on loopback), and so
/// callers can never read fleet-internal figures.
public final class MetricsServer: Service {
    private let runtime: AgentRuntime
    private let group: any EventLoopGroup
    private let address: ListenAddress
    private let logger: Logger
    private let boundPromise: EventLoopPromise<Int>

    public init(runtime: AgentRuntime, group: any EventLoopGroup, address: ListenAddress, logger: Logger) {
        self.runtime = runtime
        self.group = group
        self.address = address
        self.logger = logger
        boundPromise = group.next().makePromise(of: Int.self)
    }

    /// The port actually bound, once listening.
    public var boundPort: EventLoopFuture<Int> { boundPromise.futureResult }

    public func run() async throws {
        let runtime = self.runtime
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(MetricsHandler(runtime: runtime))
                    }
                }
                .bind(host: address.host, port: address.port).get()
        } catch {
            boundPromise.fail(error)
            throw error
        }
        let port = channel.localAddress?.port ?? address.port
        boundPromise.succeed(port)
        logger.info("metrics listening", metadata: ["address": "\(address.host):\(port)"])
        try? await gracefulShutdown()
        try? await channel.close()
    }
}

private final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let runtime: AgentRuntime
    private var head: HTTPRequestHead?

    init(runtime: AgentRuntime) {
        self.runtime = runtime
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            let status: HTTPResponseStatus
            let body: [UInt8]
            var contentType = "text/plain; charset=utf-8"
            if path == "/metrics", head.method == .GET {
                let policy = runtime.activePolicy
                body = runtime.metrics.render(
                    runtime: runtime, timeZone: policy.configuration.policy.timeZone, now: runtime.now())
                contentType = "text/plain; version=0.0.4; charset=utf-8"
                status = .ok
            } else if path == "/healthz", head.method == .GET {
                // The same probes as the agent's own port, for kubelets, which cannot reach loopback.
                body = Array(#"{"status":"ok"}"#.utf8)
                contentType = "application/json"
                status = .ok
            } else if path == "/readyz", head.method == .GET {
                let readiness = Readiness(runtime: runtime)
                body = readiness.body
                contentType = "application/json"
                status = HTTPResponseStatus(statusCode: readiness.status)
            } else if ["/metrics", "/healthz", "/readyz"].contains(path) {
                body = Array("use GET\n".utf8)
                status = .methodNotAllowed
            } else {
                body = Array("not found: the admin port serves /metrics, /healthz and /readyz\n".utf8)
                status = .notFound
            }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: contentType)
            headers.add(name: "content-length", value: String(body.count))
            if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
                promise: nil)
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            let keepAlive = head.isKeepAlive
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { channel.close(promise: nil) }
            }
        }
    }
}

@available(*, unavailable)
extension MetricsHandler: Sendable {}
