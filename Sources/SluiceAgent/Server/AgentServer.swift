import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SluiceHTTP2
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The caller-facing listener, run as a service: it binds, serves until graceful shutdown
/// begins, then stops accepting, waits (up to the drain timeout) for in-flight calls to
/// finish, and closes what is left. As a shared gateway it serves TLS (HTTP/1.1 by ALPN),
/// taking a renewed certificate and key for new connections when their files change.
public final class AgentServer: Service {
    private let runtime: AgentRuntime
    private let group: any EventLoopGroup
    private let address: ListenAddress
    private let logger: Logger
    private let bound: NIOLockedValueBox<(any Channel)?> = .init(nil)
    private let boundPromise: EventLoopPromise<Int>
    private let tlsConfiguration: TLSServerConfiguration?
    private let tlsReloadInterval: Duration
    /// The TLS context new connections get, and the files' state it was made from.
    private let tls: Mutex<(context: TLSServerContext, files: [FileStamp])?>

    public init(
        runtime: AgentRuntime, group: any EventLoopGroup, address: ListenAddress, logger: Logger,
        tls: TLSServerConfiguration? = nil, tlsReloadInterval: Duration = .seconds(10)
    ) throws(TLSError) {
        self.runtime = runtime
        self.group = group
        self.address = address
        self.logger = logger
        self.boundPromise = group.next().makePromise(of: Int.self)
        tlsConfiguration = tls
        self.tlsReloadInterval = tlsReloadInterval
        if let tls {
            let files = FileStamp.of([tls.certificateChainFile, tls.privateKeyFile])
            self.tls = Mutex((try TLSServerContext(configuration: tls), files))
        } else {
            self.tls = Mutex(nil)
        }
    }

    /// Takes the certificate and key again if either file changed; a pair that does not load
    /// (a renewal half written) leaves the current one in force, and is tried again later.
    func reloadCertificateIfChanged() {
        guard let configuration = tlsConfiguration else { return }
        let files = FileStamp.of([configuration.certificateChainFile, configuration.privateKeyFile])
        guard tls.withLock({ $0?.files != files }) else { return }
        do {
            let context = try TLSServerContext(configuration: configuration)
            tls.withLock { $0 = (context, files) }
            logger.info("TLS certificate reloaded", metadata: ["file": "\(configuration.certificateChainFile)"])
        } catch {
            logger.warning("TLS certificate not reloaded; the previous one stays", metadata: ["error": "\(error)"])
        }
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
                .childChannelInitializer { [self] channel in
                    // Beyond the cap a connection is closed at once: bounded memory beats
                    // serving everyone slowly.
                    let open = runtime.openConnections.add(1, ordering: .relaxed).newValue
                    channel.closeFuture.whenComplete { _ in runtime.openConnections.subtract(1, ordering: .relaxed) }
                    guard open <= runtime.settings.maxConnections else {
                        return channel.close()
                    }
                    let context = self.tls.withLock { $0?.context }
                    return channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        try context?.addHandler(to: pipeline)
                        try AgentServer.addCallerHandlers(to: pipeline, runtime: runtime)
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
                "address": "\(address.host):\(port)", "tls": "\(tlsConfiguration != nil)",
                "aliases": "\(runtime.activePolicy.configuration.catalog.names.count)",
            ])

        // A periodic check, as certificate renewals (cert-manager) replace the files in place.
        let reloader: Task<Void, Never>? =
            tlsConfiguration == nil
            ? nil
            : Task { [self, tlsReloadInterval] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: tlsReloadInterval)
                    if !Task.isCancelled { reloadCertificateIfChanged() }
                }
            }
        try? await gracefulShutdown()
        reloader?.cancel()

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

extension AgentServer {
    /// The HTTP/1.1 handlers that serve a caller connection, after TLS if any: NIO's request
    /// parser, ``CallerResponseEncoder`` in place of NIO's header validator and response
    /// encoder, ``CallerRequestGate`` in place of its pipelining handler, then
    /// ``AgentConnectionHandler``.
    static func addCallerHandlers(to pipeline: ChannelPipeline.SynchronousOperations, runtime: AgentRuntime) throws {
        try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        try pipeline.addHandler(CallerResponseEncoder())
        try pipeline.addHandler(CallerRequestGate())
        try pipeline.addHandler(AgentConnectionHandler(runtime: runtime))
    }
}

/// A file's modification time and size, to notice that it was replaced.
struct FileStamp: Equatable, Sendable {
    var seconds: Int
    var nanoseconds: Int
    var size: Int64

    static func of(_ paths: [String]) -> [FileStamp] {
        paths.map { path in
            var info = stat()
            guard stat(path, &info) == 0 else { return FileStamp(seconds: -1, nanoseconds: 0, size: -1) }
            return FileStamp(seconds: info.st_mtim.tv_sec, nanoseconds: info.st_mtim.tv_nsec, size: Int64(info.st_size))
        }
    }
}
