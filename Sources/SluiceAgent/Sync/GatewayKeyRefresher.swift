import Logging
import NIOCore
import ServiceLifecycle
import SluiceHTTP2
import SluiceKubernetes
import SluicePolicy
import Synchronization

/// Reads a gateway's JWKS (file or `https://` URL) into ``GatewayKeys``: at start (for a
/// URL), every `refreshSeconds`, and soon after a token names a key the set lacks (or comes
/// while no set is in hand). A failed read keeps the set in hand and is tried again with
/// backoff (5 s doubling to 60 s).
final class GatewayKeyRefresher: Service, Sendable {
    /// Reads asked for by unknown keys come at most this often: a stream of forged `kid`s
    /// must not turn the agent into a load generator against the gateway.
    static let minimumSpacing: Duration = .seconds(5)
    static let maximumDocumentBytes = 1 << 20

    private let location: TrustedIdentitySettings.KeySetLocation
    private let keys: GatewayKeys
    private let refreshInterval: Duration
    private let upstream: UpstreamClient
    private let group: any EventLoopGroup
    private let logger: Logger
    /// When the next timed read is due: set after each read, watched by the ticker.
    private let nextRead: Mutex<ContinuousClock.Instant>
    static let tick: Duration = .seconds(30)

    init(
        gateway: TrustedIdentitySettings.GatewayToken, keys: GatewayKeys, upstream: UpstreamClient,
        group: any EventLoopGroup, logger: Logger
    ) {
        location = gateway.keySet
        self.keys = keys
        refreshInterval = .seconds(gateway.refreshSeconds)
        nextRead = Mutex(.now + .seconds(gateway.refreshSeconds))
        self.upstream = upstream
        self.group = group
        self.logger = logger
    }

    func run() async throws {
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        keys.attach(wake)
        defer { keys.attach(nil) }
        if case .url = location { wake.yield() }
        // Nothing to hand over at shutdown: stop at once, a read in flight included.
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.tickUntilCancelled(wake) }
                var failures = 0
                var lastRead: ContinuousClock.Instant?
                for await _ in wakes {
                    if let lastRead, ContinuousClock.now < lastRead + Self.minimumSpacing {
                        try? await Task.sleep(until: lastRead + Self.minimumSpacing)
                    }
                    if Task.isCancelled { break }
                    lastRead = ContinuousClock.now
                    let succeeded = await self.read()
                    failures = succeeded ? 0 : failures + 1
                    let wait = succeeded ? self.refreshInterval : .seconds(min(60, 5 << min(failures - 1, 4)))
                    self.nextRead.withLock { $0 = ContinuousClock.now + wait }
                }
                group.cancelAll()
            }
        }
    }

    /// Wakes the reader when a timed read is due. Looks at the due time at least every
    /// `tick`, so a failure's shorter retry is noticed without a timer of its own.
    private func tickUntilCancelled(_ wake: AsyncStream<Void>.Continuation) async {
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let due = nextRead.withLock { $0 }
            if now >= due {
                nextRead.withLock { $0 = now + refreshInterval }
                wake.yield()
                continue
            }
            do {
                try await Task.sleep(until: min(due, now + Self.tick))
            } catch {
                return
            }
        }
    }

    /// One read; true when a usable set is now in hand.
    private func read() async -> Bool {
        let source: String
        let parsed: JSONWebKeySet
        do throws(ConfigError) {
            switch location {
            case .file(let path):
                source = path
                parsed = try GatewayKeys.read(file: path)
            case .url(let url, let caFile):
                source = url
                let bytes: [UInt8]
                do throws(FetchFailure) {
                    bytes = try await fetch(url, caFile: caFile)
                } catch {
                    throw ConfigError("\(url): \(error.message)")
                }
                parsed = try GatewayKeys.parse(bytes, from: url)
            }
        } catch {
            return failed(error.message)
        }
        let before = keys.current.keys.map(Self.keyIDs)
        keys.replace(parsed)
        if before != Self.keyIDs(parsed) {
            logger.info(
                "gateway signing keys loaded",
                metadata: ["source": "\(source)", "key_ids": "\(Self.keyIDs(parsed).joined(separator: ","))"])
        }
        return true
    }

    private func failed(_ reason: String) -> Bool {
        keys.failed(reason)
        logger.warning("gateway signing keys not read; the keys in hand stay in use", metadata: ["reason": "\(reason)"])
        return false
    }

    private func fetch(_ url: String, caFile: String?) async throws(FetchFailure) -> [UInt8] {
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(parsing: url)
        } catch {
            throw FetchFailure(message: "not a URL")
        }
        let path = endpoint.basePath.isEmpty ? "/" : endpoint.basePath
        let origin = UpstreamOrigin(
            scheme: .https, host: endpoint.host, port: endpoint.port,
            trustRoots: caFile.map { .caFile($0) } ?? .system)
        let request = UpstreamRequest(
            method: "GET", path: path,
            headers: [("accept", "application/json"), ("user-agent", "sluice-agent/0.1")],
            body: ByteBuffer(), firstByteTimeout: .seconds(10), idleTimeout: .seconds(10))
        let response = try await upstream.fetch(
            request, to: origin, on: group.next(), limit: Self.maximumDocumentBytes, subject: "the gateway's JWKS URL")
        guard response.status == 200 else { throw FetchFailure(message: "answered \(response.status)") }
        return response.body
    }

    private static func keyIDs(_ set: JSONWebKeySet) -> [String] {
        set.keys.map { $0.id ?? "(no kid)" }.sorted()
    }
}
