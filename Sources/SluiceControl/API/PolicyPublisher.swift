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
    /// one under its name. A bundle is built once: callers arriving while it is built (every
    /// waiting agent, woken by one change) wait for that build instead of starting their own.
    private let cache = Mutex<(version: Int64, activeAgents: Int?, builds: [String: BundleBuild])?>(nil)
    private typealias BundleBuild = Task<(version: Int64, body: [UInt8]), any Error>
    /// Scoped bundles kept per version; services beyond this are built on every poll.
    private static let maxCachedScopes = 4096
    private let waiters = PolicyWaiters()
    private let closing = Atomic<Bool>(false)
    /// How many agents hold leases now, for ``PolicyDocument/activeAgents``.
    private let activeAgentCounter = Mutex<(@Sendable () -> Int)?>(nil)

    /// Long-polls waiting for a newer version now.
    public var waitingPolls: Int { waiters.count }

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
        let build = cache.withLock { current -> BundleBuild in
            if current?.version != version || current?.activeAgents != active {
                current = (version, active, [:])
            }
            if let build = current?.builds[scope] { return build }
            let build = BundleBuild { try await self.build(scopedTo: service, activeAgents: active) }
            if current?.builds.count ?? 0 < Self.maxCachedScopes { current?.builds[scope] = build }
            return build
        }
        do {
            return try await build.value
        } catch {
            // A failed build (the store did not answer) is not kept: the next caller tries again.
            cache.withLock { current in
                if current?.version == version, current?.builds[scope] == build { current?.builds[scope] = nil }
            }
            throw error
        }
    }

    /// Reads, scopes, signs and encodes one bundle.
    private func build(scopedTo service: String?, activeAgents: Int?) async throws -> (version: Int64, body: [UInt8]) {
        let snapshot = try await store.snapshot()
        var document = Self.document(
            from: snapshot, pepperFingerprint: pepperFingerprint, now: Int64(Date().timeIntervalSince1970))
        document.activeAgents = activeAgents
        // Evaluated afresh for every new version: another replica may have raised the
        // version because a budget ran out.
        document.exhausted = try await budgets?.exhaustedScopes() ?? []
        if let service { document = document.scoped(toService: service) }
        let signed = try SignedBundle.sign(document.forAgents(), with: signingKey.key)
        return (snapshot.version, Array(try WireCoding.encoder.encode(signed)))
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
            case .endUser(let endUser):
                // Appended in place: rebuilding the list per end user is quadratic in them.
                if document.endUsers == nil { document.endUsers = [] }
                document.endUsers?.append(endUser)
            }
        }
        return document
    }

    /// Returns the policy version once it is no longer `version` (a newer one, or an older
    /// one from a restored database, is answered at once), or after `timeout`.
    ///
    /// A waiting call costs one continuation in a table: no task, timer or store read of its
    /// own. The publisher's run loop ends waits at their deadlines and notices versions
    /// raised by other replicas; a write through this process wakes them at once.
    public func waitWhileVersion(is version: Int64, timeout: Duration) async throws -> Int64 {
        let deadline = ContinuousClock.now + timeout
        while true {
            let current = try await store.policyVersion()
            if current != version || ContinuousClock.now >= deadline || closing.load(ordering: .acquiring) {
                return current
            }
            await waitForChange(until: deadline)
        }
    }

    /// Ends due waits every `tick` and re-reads the version every `pollInterval`, until
    /// graceful shutdown begins; then ends every waiting long-poll.
    public func run() async throws {
        let tick = min(Self.longestTick, pollInterval)
        try? await cancelWhenGracefulShutdown {
            var lastPoll = ContinuousClock.now
            var seen = try? await self.store.policyVersion()
            while true {
                try await Task.sleep(for: tick)
                let now = ContinuousClock.now
                self.waiters.expire(now: now)
                guard now - lastPoll >= self.pollInterval else { continue }
                lastPoll = now
                // A store that does not answer now is asked again at the next poll; the
                // waits still end at their deadlines.
                guard let version = try? await self.store.policyVersion() else { continue }
                if let previous = seen, version > previous { self.policyChanged() }
                seen = version
            }
        }
        closing.store(true, ordering: .releasing)
        policyChanged()
    }

    /// How late a wait may end after its deadline, at most.
    static let longestTick: Duration = .milliseconds(100)

    /// Wakes every waiting long-poll: called after a write through this process.
    public func policyChanged() {
        waiters.wakeAll()
    }

    /// Returns when a change is announced, shutdown begins, or `deadline` passes. The waiter
    /// is registered by the waiting task itself, so a change announced from the moment the
    /// wait begins is seen.
    private func waitForChange(until deadline: ContinuousClock.Instant) async {
        await withCheckedContinuation { continuation in
            let id = waiters.add(continuation, deadline: deadline)
            // Shutdown may have begun before the waiter was registered: it would not be woken.
            if closing.load(ordering: .acquiring) { waiters.wake(id) }
        }
    }
}

/// Long-polls waiting for a policy change: each is a continuation with a deadline. The
/// earliest deadline is kept so a tick with nothing due costs one comparison.
final class PolicyWaiters: Sendable {
    private struct Table {
        var waiting: [UInt64: (continuation: CheckedContinuation<Void, Never>, deadline: ContinuousClock.Instant)] =
            [:]
        var nextID: UInt64 = 0
        var earliest: ContinuousClock.Instant?
    }
    private let table = Mutex(Table())

    var count: Int { table.withLock { $0.waiting.count } }

    func add(_ continuation: CheckedContinuation<Void, Never>, deadline: ContinuousClock.Instant) -> UInt64 {
        table.withLock { table in
            table.nextID += 1
            table.waiting[table.nextID] = (continuation, deadline)
            table.earliest = min(table.earliest ?? deadline, deadline)
            return table.nextID
        }
    }

    func wake(_ id: UInt64) {
        table.withLock { $0.waiting.removeValue(forKey: id) }?.continuation.resume()
    }

    func wakeAll() {
        let woken = table.withLock { table in
            defer {
                table.waiting.removeAll()
                table.earliest = nil
            }
            return Array(table.waiting.values)
        }
        for waiter in woken { waiter.continuation.resume() }
    }

    /// Wakes the waits whose deadline has passed.
    func expire(now: ContinuousClock.Instant) {
        let due = table.withLock { table -> [CheckedContinuation<Void, Never>] in
            guard let earliest = table.earliest, earliest <= now else { return [] }
            var due: [CheckedContinuation<Void, Never>] = []
            var next: ContinuousClock.Instant?
            for (id, waiter) in table.waiting {
                if waiter.deadline <= now {
                    due.append(waiter.continuation)
                    table.waiting[id] = nil
                } else {
                    next = min(next ?? waiter.deadline, waiter.deadline)
                }
            }
            table.earliest = next
            return due
        }
        for continuation in due { continuation.resume() }
    }
}
