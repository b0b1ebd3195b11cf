import Foundation
import SluicePolicy
import SluiceWire
import Synchronization

/// Shares of fleet-wide per-minute limits among the agents enforcing them.
///
/// Every renewal records the agent's demand per limit; an agent that has not renewed within
/// the lease time is no longer counted. Each renewal is answered with the agent's share,
/// split (``LeaseSplit``) among the agents active on that limit at that moment. Demand
/// lives in this process's memory: with several replicas, an agent's renewals must reach
/// the same one (see docs/sync.md).
public final class LeaseBook: Sendable {
    private let store: any Store
    private let state = Mutex<State>(State())

    private struct Claim {
        var demand: Double
        var limitValue: Int
        var seenAt: ContinuousClock.Instant
    }

    private struct State {
        /// `kind/scope/limit` → instance → claim.
        var claims: [String: [String: Claim]] = [:]
        /// Settings as of a policy version, so a renewal reads the store once (the version).
        var settings: (version: Int64, leaseSeconds: Int, minimumPercent: Int)?
    }

    public init(store: any Store) {
        self.store = store
    }

    /// Records `request`'s demands for `agentID` and answers with its shares.
    public func renew(agentID: String, request: LeaseRequest, now: ContinuousClock.Instant = .now) async throws -> LeaseAnswer {
        try request.validate()
        let (leaseSeconds, minimumPercent) = try await settings()
        let instance = "\(agentID)/\(request.instance)"
        let horizon = now - .seconds(leaseSeconds)
        return state.withLock { state in
            var answer = LeaseAnswer(grants: [])
            for demand in request.demands {
                let key = "\(demand.scopeKind)/\(demand.scope)/\(demand.limit)"
                var claims = state.claims[key] ?? [:]
                claims[instance] = Claim(demand: demand.perMinute, limitValue: demand.limitValue, seenAt: now)
                claims = claims.filter { $0.value.seenAt >= horizon }
                state.claims[key] = claims
                let capacity = claims.values.map(\.limitValue).min() ?? 0
                let shares = LeaseSplit.split(capacity: capacity, claims: claims.map { .init(agent: $0.key, demand: $0.value.demand) },
                                              minimumPercent: minimumPercent)
                answer.grants.append(LeaseGrant(scopeKind: demand.scopeKind, scope: demand.scope, limit: demand.limit,
                                                perMinute: shares[instance] ?? 0, validSeconds: leaseSeconds))
                answer.activeAgents[key] = claims.count
            }
            // Forget limits nobody has claimed for a lease time.
            if state.claims.count > 10_000 {
                state.claims = state.claims.filter { $0.value.values.contains { $0.seenAt >= horizon } }
            }
            return answer
        }
    }

    private func settings() async throws -> (leaseSeconds: Int, minimumPercent: Int) {
        let version = try await store.policyVersion()
        if let cached = state.withLock({ $0.settings }), cached.version == version {
            return (cached.leaseSeconds, cached.minimumPercent)
        }
        let settings = try await store.settings()
        state.withLock { $0.settings = (version, settings.leaseSeconds, settings.leaseMinimumSharePercent) }
        return (settings.leaseSeconds, settings.leaseMinimumSharePercent)
    }
}
