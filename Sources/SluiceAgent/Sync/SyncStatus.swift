import Synchronization

/// How the agent stands with its control plane: the policy version in force, when the
/// control plane last confirmed it current, and the last thing that went wrong. Read on
/// every call (lock-free), written by ``PolicySync`` and ``UsageFlusher``.
public final class SyncStatus: Sendable {
    /// Past this age (since the control plane last confirmed the policy) calls get 503.
    public let maxPolicyAgeNanoseconds: Int64
    /// 0 until a policy is in force.
    private let versionValue = Atomic<Int64>(0)
    /// Wall nanoseconds of the last confirmation; `Int64.min` until there is a policy.
    private let confirmedAt = Atomic<Int64>(.min)
    private let details = Mutex<Details>(Details())

    private struct Details {
        var lastError: String?
        var lastErrorAt: Int64?
        var agentID: String?
        var lastFlushError: String?
    }

    public init(maxPolicyAgeSeconds: Double) {
        maxPolicyAgeNanoseconds = Int64(maxPolicyAgeSeconds * 1e9)
    }

    /// The version in force, or nil before the first policy.
    public var version: Int64? {
        let value = versionValue.load(ordering: .acquiring)
        return value == 0 ? nil : value
    }

    /// Called once a policy of `version` is in force and known current at `time`.
    func policyConfirmed(version: Int64, at time: Int64) {
        versionValue.store(version, ordering: .releasing)
        confirmedAt.store(time, ordering: .releasing)
        details.withLock { $0.lastError = nil }
    }

    /// A policy loaded from the cache: in force, but confirmed only as of `time` (the
    /// cache file's last confirmation).
    func policyLoadedFromCache(version: Int64, confirmedAt time: Int64) {
        versionValue.store(version, ordering: .releasing)
        confirmedAt.store(time, ordering: .releasing)
    }

    func syncFailed(_ message: String, at time: Int64) {
        details.withLock {
            $0.lastError = message
            $0.lastErrorAt = time
        }
    }

    func flushFailed(_ message: String?) {
        details.withLock { $0.lastFlushError = message }
    }

    /// The id the control plane knows this agent by (learned from its answers).
    public var agentID: String? { details.withLock { $0.agentID } }

    func learned(agentID: String) {
        details.withLock { $0.agentID = agentID }
    }

    /// Nanoseconds since the policy was last confirmed, or nil before any policy.
    public func age(at now: Int64) -> Int64? {
        let confirmed = confirmedAt.load(ordering: .acquiring)
        return confirmed == .min ? nil : max(0, now - confirmed)
    }

    /// Why calls must be refused now, or nil when the policy may be enforced.
    func staleness(at now: Int64) -> String? {
        guard let age = age(at: now) else {
            return "the agent has no policy yet: the control plane has not been reached" + lastErrorSuffix
        }
        guard age > maxPolicyAgeNanoseconds else { return nil }
        return
            "the agent's policy (version \(version ?? 0)) was last confirmed \(age / 1_000_000_000) s ago,"
                + " past the maximum age of \(maxPolicyAgeNanoseconds / 1_000_000_000) s"
            + lastErrorSuffix
    }

    private var lastErrorSuffix: String {
        details.withLock { $0.lastError }.map { "; last sync error: \($0)" } ?? ""
    }

    /// For `/readyz`.
    public struct Report: Sendable {
        public var version: Int64?
        public var ageSeconds: Double?
        public var lastError: String?
        public var lastFlushError: String?
        public var agentID: String?
        public var stale: Bool
    }

    /// What `/readyz` and `/v1/sync` show at `now` (wall nanoseconds): policy version and age,
    /// whether it is stale, the last errors.
    public func report(at now: Int64) -> Report {
        let details = details.withLock { $0 }
        return Report(
            version: version, ageSeconds: age(at: now).map { Double($0) / 1e9 }, lastError: details.lastError,
            lastFlushError: details.lastFlushError, agentID: details.agentID, stale: staleness(at: now) != nil)
    }
}
