import Crypto
import Foundation
import ServiceLifecycle
import SluicePolicy
import SluiceWire
import Synchronization

/// Builds, signs and caches the policy bundle, and lets agents wait for the next version.
///
/// A change made through this process wakes waiting agents at once; a change made by
/// another replica on the same database is noticed by re-reading the version at least
/// every `pollInterval`, so long-polls on every replica answer within that interval.
///
/// Run as a service (listed after the HTTP server), it ends every waiting long-poll when
/// graceful shutdown begins, so agents re-poll elsewhere at once and the server's drain
/// is not held up for a poll's full wait.
public final class PolicyPublisher: Service, Sendable {
    private let store: any Store
    private let signingKey: SigningKey
    private let pepperFingerprint: String
    private let pollInterval: Duration
    private let budgets: BudgetWatcher?
    /// The signed bundles of one version: the whole policy under "", each service's scoped
    /// one under its name.
    private let cache = Mutex<(version: Int64, activeAgents: Int?, bodies: [String: [UInt8]])?>(nil)
    /// Scoped bundles kept per version; services beyond this are built on every poll.
    private static let maxCachedScopes = 4096
    private let waiters = Mutex<[UUID: CheckedContinuation<Void, Never>]>([:])
    private let closing = Atomic<Bool>(false)
    /// How many agents hold leases now, for ``PolicyDocument/activeAgents``.
    private let activeAgentCounter = Mutex<(@Sendable () -> Int)?>(nil)

    /// Long-polls waiting for a newer version now.
    public var waitingPolls: Int { waiters.withLock { $0.count } }

    /// Lets bundles say how many agents hold leases (the lease book counts them).
    func countActiveAgents(with counter: @escaping @Sendable () -> Int) {
        activeAgentCounter.withLock { $0 = counter }
    }

    /// Curve25519 keys are immutable values; this wrapper only lets them cross isolation.
    struct SigningKey: @unchecked Sendable {
        let key: Curve25519.Signing.PrivateKey
    }

    public init(
        store: any Store, signingKey: Curve25519.Signing.PrivateKey, keyPepper: Secret,
        pollInterval: Duration = .seconds(1),
        budgets: BudgetWatcher? = nil
    ) {
        self.store = store
        self.budgets = budgets
        self.signingKey = SigningKey(key: signingKey)
        pepperFingerprint = Self.fingerprint(of: keyPepper)
        self.pollInterval = pollInterval
    }

    /// A non-secret fingerprint of the pepper, so an agent can tell it holds the right one.
    public static func fingerprint(of pepper: Secret) -> String {
        PolicyDocument.pepperFingerprint(of: pepper)
    }

    /// The signed bundle's JSON for the current version (built once per version and scope):
    /// the whole policy, or with `service` only what an agent bound to that service can use
    /// (``PolicyDocument/scoped(toService:)``).
    public func bundle(scopedTo service: String? = nil) async throws -> (version: Int64, body: [UInt8]) {
        let version = try await store.policyVersion()
        let scope = service ?? ""
        let active = activeAgentCounter.withLock { $0 }?()
        if let body = cache.withLock({ $0?.version == version && $0?.activeAgents == active ? $0?.bodies[scope] : nil })
        {
            return (version, body)
        }
        let snapshot = try await store.snapshot()
        var document = Self.document(
            from: snapshot, pepperFingerprint: pepperFingerprint, now: Int64(Date().timeIntervalSince1970))
        document.activeAgents = active
        // Evaluated afresh for every new version: another replica may have raised the
        // version because a budget ran out.
        document.exhausted = try await budgets?.exhaustedScopes() ?? []
        if let service { document = document.scoped(toService: service) }
        let signed = try SignedBundle.sign(document, with: signingKey.key)
        let body = Array(try WireCoding.encoder.encode(signed))
        cache.withLock { current in
            if (current?.version ?? 0) < snapshot.version
                || (current?.version == snapshot.version && current?.activeAgents != active)
            {
                current = (snapshot.version, active, [:])
            }
            if current?.version == snapshot.version, current?.bodies.count ?? 0 < Self.maxCachedScopes {
                current?.bodies[scope] = body
            }
        }
        return (snapshot.version, body)
    }

    static func document(from snapshot: PolicySnapshot, pepperFingerprint: String, now: Int64) -> PolicyDocument {
        var document = PolicyDocument(
            version: snapshot.version, issuedAt: now, keyPepperFingerprint: pepperFingerprint,
            settings: snapshot.settings)
        for entity in snapshot.entities {
            switch entity {
            case .team(let team): document.teams.append(team)
            case .project(let project): document.projects.append(project)
            case .service(let service): document.services.append(service)
            case .model(let model): document.models.append(model)
            case .key(var key):
                key.prefix = nil
                key.createdAt = nil
                document.keys.append(key)
            }
        }
        return document
    }

    /// Returns once the policy version is above `version`, or after `timeout`.
    public func waitForVersion(above version: Int64, timeout: Duration) async throws -> Int64 {
        let deadline = ContinuousClock.now + timeout
        while true {
            let current = try await store.policyVersion()
            if current > version || ContinuousClock.now >= deadline || closing.load(ordering: .acquiring) {
                return current
            }
            let slice = min(pollInterval, deadline - ContinuousClock.now)
            await waitForChange(upTo: slice)
        }
    }

    public func run() async throws {
        try? await gracefulShutdown()
        closing.store(true, ordering: .releasing)
        policyChanged()
    }

    /// Wakes every waiting long-poll: called after a write through this process.
    public func policyChanged() {
        let woken = waiters.withLock { waiters -> [CheckedContinuation<Void, Never>] in
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        for waiter in woken { waiter.resume() }
    }

    /// Returns when a change is announced, shutdown begins, or `duration` passes. The timer
    /// is a child task of this wait, so nothing outlives it; the waiter is registered by the
    /// waiting task itself, so a change announced from the moment the wait begins is seen.
    private func waitForChange(upTo duration: Duration) async {
        let id = UUID()
        let deadline = ContinuousClock.now + duration
        await withTaskGroup(of: Void.self) { timer in
            timer.addTask {
                try? await Task.sleep(until: deadline)
                self.resumeWaiter(id)
            }
            await withCheckedContinuation { continuation in
                self.waiters.withLock { $0[id] = continuation }
                // The timer may have fired before the waiter was registered: it finds
                // nothing then, so the deadline is checked here too.
                if self.closing.load(ordering: .acquiring) || ContinuousClock.now >= deadline {
                    self.resumeWaiter(id)
                }
            }
            timer.cancelAll()
        }
    }

    private func resumeWaiter(_ id: UUID) {
        waiters.withLock { $0.removeValue(forKey: id) }?.resume()
    }
}
