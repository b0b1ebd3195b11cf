import Foundation
import SluicePolicy
import SluiceWire
import Synchronization

/// This agent's shares of fleet-wide per-minute limits, and the demand it reports for them.
///
/// A named scope's requests and tokens per minute are enforced with the buckets of the
/// policy engine, at this agent's leased share while the lease is valid and at the
/// policy's fallback otherwise (before the first lease, or once one expired unrenewed).
public final class LeaseTable: Sendable {
    struct Key: Hashable {
        var scope: Scope
        var limit: LeaseLimit
    }

    private struct Grant {
        var perMinute: Int
        var expiresAt: Int64
    }

    private struct State {
        var grants: [Key: Grant] = [:]
        var fallback: LeaseFallback = .fraction(0.1)
        /// Smoothed demand, units per minute.
        var demand: [Key: Double] = [:]
        var lastSample: Int64?
    }

    private let state = Mutex<State>(State())
    /// The time constant of the demand average.
    static let demandTimeConstantSeconds = 10.0

    public init() {}

    /// The policy's fallback; takes effect for engines built after it (reloads).
    func setFallback(_ fallback: LeaseFallback) {
        state.withLock { $0.fallback = fallback }
    }

    /// What this agent enforces for a scope whose policy limits are `limits`, at `now`.
    func localLimits(now: Int64) -> (Scope, Limits) -> Limits {
        let (grants, fallback) = state.withLock { ($0.grants, $0.fallback) }
        return { scope, limits in
            guard FleetLimits.leasedKinds.contains(scope.kind) else { return limits }
            func share(_ limit: LeaseLimit) -> Int? {
                grants[Key(scope: scope, limit: limit)].flatMap { $0.expiresAt > now ? $0.perMinute : nil }
            }
            return FleetLimits.local(limits, requestsShare: share(.requestsPerMinute), tokensShare: share(.tokensPerMinute), fallback: fallback)
        }
    }

    /// Samples what callers asked of each fleet-limited scope since the last renewal and
    /// returns the demands to report: smoothed, per minute, with the limit as the policy in
    /// force states it.
    func demands(limiter: Limiter, engine: PolicyEngine, now: Int64) -> [LeaseDemand] {
        let samples = limiter.takeDemand(kinds: FleetLimits.leasedKinds)
        return state.withLock { state in
            let elapsedMinutes = state.lastSample.map { Double(max(1, now - $0)) / 60e9 } ?? 0
            state.lastSample = now
            var fresh: [Key: Double] = [:]
            if elapsedMinutes > 0 {
                for sample in samples {
                    fresh[Key(scope: sample.scope, limit: .requestsPerMinute)] = Double(sample.requests) / elapsedMinutes
                    fresh[Key(scope: sample.scope, limit: .tokensPerMinute)] = Double(sample.tokens) / elapsedMinutes
                }
            }
            // An average over about the last ten seconds, whatever the flush interval: a
            // quiet agent's demand is not zero between its calls, and a burst shows within
            // a few seconds.
            let weight = elapsedMinutes > 0 ? exp(-elapsedMinutes * 60 / Self.demandTimeConstantSeconds) : 1
            for key in Set(state.demand.keys).union(fresh.keys) {
                let smoothed = state.demand[key].map { weight * $0 + (1 - weight) * (fresh[key] ?? 0) } ?? (fresh[key] ?? 0)
                state.demand[key] = smoothed < 0.01 ? nil : smoothed
            }
            var demands: [LeaseDemand] = []
            for (key, perMinute) in state.demand {
                guard let limits = engine.boundLimits[key.scope] else { continue }
                let value = key.limit == .requestsPerMinute ? limits.requestsPerMinute : limits.tokensPerMinute
                guard let value else { continue }
                demands.append(LeaseDemand(scopeKind: key.scope.kind.rawValue, scope: key.scope.name, limit: key.limit.rawValue,
                                           perMinute: perMinute, limitValue: value))
            }
            return demands.sorted { ($0.scopeKind, $0.scope, $0.limit) < ($1.scopeKind, $1.scope, $1.limit) }
        }
    }

    /// Takes new grants and drops expired ones; returns the scopes whose local limits
    /// changed, to be bound again.
    func update(_ grants: [LeaseGrant], now: Int64) -> Set<Scope> {
        state.withLock { state in
            var changed: Set<Scope> = []
            for grant in grants {
                guard let kind = Scope.Kind(rawValue: grant.scopeKind), let limit = LeaseLimit(rawValue: grant.limit) else { continue }
                let key = Key(scope: Scope(kind, grant.scope), limit: limit)
                let renewed = Grant(perMinute: max(0, grant.perMinute), expiresAt: now + Int64(max(1, grant.validSeconds)) * 1_000_000_000)
                if state.grants[key]?.perMinute != renewed.perMinute { changed.insert(key.scope) }
                state.grants[key] = renewed
            }
            for (key, grant) in state.grants where grant.expiresAt <= now {
                state.grants[key] = nil
                changed.insert(key.scope)
            }
            return changed
        }
    }

    /// Binds `scopes` again at their current local limits.
    func apply(_ scopes: Set<Scope>, engine: PolicyEngine, limiter: Limiter, now: Int64) {
        guard !scopes.isEmpty else { return }
        let local = localLimits(now: now)
        for scope in scopes {
            guard let limits = engine.boundLimits[scope] else { continue }
            _ = limiter.bind(scope, limits: local(scope, limits))
        }
    }

    /// Shares held now, for metrics and tests.
    public func held(now: Int64) -> [(scope: Scope, limit: String, perMinute: Int)] {
        state.withLock { state in
            state.grants.compactMap { key, grant in
                grant.expiresAt > now ? (key.scope, key.limit.rawValue, grant.perMinute) : nil
            }
        }
    }
}
