import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The caller-facing listener, run as a service: it binds, serves until graceful shutdown
/// begins, then stops accepting, waits (up to the drain timeout) for in-flight calls to
/// finish, and closes what is left.
public final class AgentServer: Service {
    private let runtime: AgentRuntime
    private let group: any EventLoopGroup
    private let address: ListenAddress
    private let logger: Logger
    private let bound: NIOLockedValueBox<(any Channel)?> = .init(nil)
    private let boundPromise: EventLoopPromise<Int>

    public init(runtime: AgentRuntime, group: any EventLoopGroup, address: ListenAddress, logger: Logger) {
        self.runtime = runtime
        self.group = group
        self.address = address
        self.logger = logger
        self.boundPromise = group.next().makePromise(of: Int.self)
    }

    /// The port actually bound (useful with port 0), once listening.
    public var boundPort: EventLoopFuture<Int> { boundPromise.futureResult }

    /// Whether the listening socket is open: true from bind until shutdown closes it.
    public var isListening: Bool { bound.withLockedValue { $0?.isActive ?? false } }

    public func run() async throws {
        let runtime = self.runtime
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    // Beyond the cap a connection is closed at once: bounded memory beats
                    // serving everyone slowly.
                    let open = runtime.openConnections.add(1, ordering: .relaxed).newValue
                    channel.closeFuture.whenComplete { _ in runtime.openConnections.subtract(1, ordering: .relaxed) }
                    guard open <= runtime.settings.maxConnections else {
                        return channel.close()
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.configureHTTPServerPipeline(
                            withPipeliningAssistance: true, withErrorHandling: false)
                        try pipeline.addHandler(AgentConnectionHandler(runtime: runtime))
                    }
                }
                .bind(host: address.host, port: address.port).get()
        } catch {
            boundPromise.fail(error)
            throw error
        }
        bound.withLockedValue { $0 = channel }
        let port = channel.localAddress?.port ?? address.port
        boundPromise.succeed(port)
        logger.info(
            "sluice-agent listening",
            metadata: [
                "address": "\(address.host):\(port)",
                "aliases": "\(runtime.activePolicy.configuration.catalog.names.count)",
            ])

        try? await gracefulShutdown()

        runtime.beginDraining()
        logger.info("draining", metadata: ["in_flight": "\(runtime.inFlight.count)"])
        try? await channel.close()
        let drainTimeout = runtime.settings.drainTimeoutSeconds
        let drained = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await runtime.inFlight.waitUntilIdle()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(drainTimeout))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !drained {
            logger.warning(
                "drain timeout reached; closing remaining calls", metadata: ["in_flight": "\(runtime.inFlight.count)"])
        }
        runtime.upstream.shutdown()
        runtime.audit.flush()
        logger.info("sluice-agent stopped")
    }
}
