import Crypto
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SluiceExport
import SluiceHTTP2
import SluicePolicy
import Synchronization

/// Posts alert notices to every webhook, each delivery retried with backoff, off the path
/// of whoever raised the notice. A bounded queue: past `capacity` deliveries waiting, new
/// ones are dropped and counted, so a dead receiver cannot grow the control plane's memory.
///
/// Deliveries in flight at shutdown are given up (logged): a notice is claimed in the store
/// before it is queued, so no other replica will send it either.
public final class AlertSender: Service {
    /// One post of one notice to one webhook.
    struct Delivery: Sendable {
        var notice: AlertNotice
        var webhook: AlertWebhook
    }

    /// What becomes of deliveries, for tests and logs.
    public struct Counts: Sendable, Equatable {
        public var delivered = 0
        public var failed = 0
        public var dropped = 0
    }

    private let webhooks: [AlertWebhook]
    private let upstream: UpstreamClient
    private let group: any EventLoopGroup
    private let logger: Logger
    private let capacity: Int
    private let attempts: Int
    private let firstBackoff: Duration
    private let clock: @Sendable () -> Int64
    private let queue: AsyncStream<Delivery>
    private let continuation: AsyncStream<Delivery>.Continuation
    private let state = Mutex<(waiting: Int, counts: Counts)>((0, Counts()))

    /// - Parameters:
    ///   - webhooks: the `--alert-webhooks` destinations.
    ///   - attempts: posts per delivery before it is given up.
    ///   - firstBackoff: the wait after the first failure, doubled after each next one.
    ///   - upstream: the HTTP client posts go through (the agent's own, HTTP/2 or HTTP/1.1).
    public init(
        webhooks: [AlertWebhook], logger: Logger, upstream: UpstreamClient, group: any EventLoopGroup,
        capacity: Int = 1_000, attempts: Int = 6, firstBackoff: Duration = .seconds(2),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) {
        self.webhooks = webhooks
        self.upstream = upstream
        self.group = group
        self.logger = logger
        self.capacity = capacity
        self.attempts = attempts
        self.firstBackoff = firstBackoff
        self.clock = clock
        (queue, continuation) = AsyncStream.makeStream(of: Delivery.self)
    }

    public var counts: Counts { state.withLock { $0.counts } }

    /// Whether `--alert-webhooks` named any destination.
    public var hasWebhooks: Bool { !webhooks.isEmpty }

    /// Queues `notice` for every configured webhook and for `legacyURL` (the unsigned
    /// `settings.budget_webhook_url`, when set).
    public func send(_ notice: AlertNotice, legacyURL: URL?) {
        var targets = webhooks
        if let legacyURL { targets.append(AlertWebhook(name: "budget_webhook_url", url: legacyURL, secret: nil)) }
        for webhook in targets {
            let admitted = state.withLock { state -> Bool in
                guard state.waiting < capacity else {
                    state.counts.dropped += 1
                    return false
                }
                state.waiting += 1
                return true
            }
            guard admitted else {
                logger.error(
                    "alert queue full: notice dropped",
                    metadata: ["webhook": "\(webhook.name)", "notice": "\(notice.key)"])
                continue
            }
            continuation.yield(Delivery(notice: notice, webhook: webhook))
        }
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            await withGracefulShutdownHandler {
                // Ends when the queue is finished at shutdown, or when this task is cancelled.
                for await delivery in queue {
                    group.addTask { await self.deliver(delivery) }
                }
            } onGracefulShutdown: { [continuation] in
                continuation.finish()
            }
            group.cancelAll()
        }
    }

    private func deliver(_ delivery: Delivery) async {
        defer { state.withLock { $0.waiting -= 1 } }
        let metadata: Logger.Metadata = ["webhook": "\(delivery.webhook.name)", "notice": "\(delivery.notice.key)"]
        let outcome = await retryWithBackoff(
            attempts: attempts, firstBackoff: firstBackoff, stop: { Task.isCancelled },
            retrying: { attempt, error in
                logger.warning(
                    "alert webhook failed; retrying",
                    metadata: metadata.merging(["attempt": "\(attempt)", "error": "\(error)"]) { $1 })
            }
        ) {
            try await post(delivery)
        }
        switch outcome {
        case .succeeded:
            state.withLock { $0.counts.delivered += 1 }
        case .gaveUp(let attempts, let error):
            state.withLock { $0.counts.failed += 1 }
            logger.error(
                "alert webhook failed; the notice is given up",
                metadata: metadata.merging(["attempts": "\(attempts)", "error": "\(error)"]) { $1 })
        case .stopped:
            // Shutdown: the notice was claimed in the store, so no replica sends it now.
            state.withLock { $0.counts.failed += 1 }
            logger.error("alert webhook delivery given up at shutdown", metadata: metadata)
        }
    }

    private func post(_ delivery: Delivery) async throws {
        let body = try Self.body(delivery.notice, format: delivery.webhook.format)
        let url = delivery.webhook.url
        guard let components = URLComponents(url: url, resolvingAgainstBaseURL: false), let host = url.host,
            let scheme = url.scheme?.lowercased(), scheme == "https" || scheme == "http"
        else { throw AlertDeliveryError(status: 0) }
        let origin = UpstreamOrigin(
            scheme: scheme == "https" ? .https : .http, host: host, port: url.port ?? (scheme == "https" ? 443 : 80))
        var path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        if let query = components.percentEncodedQuery { path += "?" + query }
        var headers: [(name: String, value: String)] = [
            ("content-type", "application/json"), ("user-agent", "sluice-control/0.1"),
            ("sluice-notice-id", delivery.notice.key),
        ]
        if let secret = delivery.webhook.secret {
            headers.append(("sluice-signature", Self.signature(body, secret: secret, at: clock())))
        }
        let request = UpstreamRequest(
            method: "POST", path: path, headers: headers, body: ByteBuffer(bytes: body),
            firstByteTimeout: .seconds(10), idleTimeout: .seconds(10))
        let response = try await upstream.fetch(
            request, to: origin, on: group.next(), limit: 64 << 10, subject: "the alert webhook",
            deadline: .seconds(15))
        guard (200..<300).contains(response.status) else { throw AlertDeliveryError(status: response.status) }
    }

    /// The body a webhook of `format` receives.
    static func body(_ notice: AlertNotice, format: AlertWebhook.Format) throws -> Data {
        switch format {
        case .json: try JSONEncoder().encode(notice)
        case .slack: try JSONEncoder().encode(["text": notice.text])
        }
    }

    /// `t=<unix seconds>,v1=<hex HMAC-SHA256 over "t.body">`: a receiver recomputes it with
    /// the shared secret, and refuses old `t` values to stop replays.
    public static func signature(_ body: Data, secret: Secret, at time: Int64) -> String {
        var signed = Data("\(time).".utf8)
        signed.append(body)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Data(secret.reveal().utf8)))
        return "t=\(time),v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }
}

/// A webhook answered outside 2xx.
struct AlertDeliveryError: Error, CustomStringConvertible {
    var status: Int
    var description: String { "the webhook answered \(status)" }
}
