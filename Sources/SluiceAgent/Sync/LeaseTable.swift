import Foundation
import SluicePolicy
import SluiceWire
import Synchronization

/// This agent's shares of fleet-wide limits, and the demand it reports for them.
///
/// A named scope's requests and tokens per minute, requests per day and daily and monthly
/// budgets are enforced with the buckets and windows of the policy engine: at this agent's
/// leased share while the lease is valid, at the policy's fallback otherwise (before the
/// first lease, or once one expired unrenewed). A quota's share (requests per day, a
/// budget) is a cap on this agent's own use in the window. A rate share that shrinks keeps
/// what the bucket holds; the agent reports it, and the control plane trims the other
/// agents' bursts until it is spent.
public final class LeaseTable: Sendable {
    struct Key: Hashable {
        var scope: Scope
        var limit: LeaseLimit
    }

    private struct Grant {
        /// Per minute for a rate; requests for requests per day; pico-USD for a budget.
        var amount: Int
        /// For a rate: the bucket's size when trimmed below `amount`.
        var burst: Int?
        var expiresAt: Int64
        /// For a budget: the local spend cap, good in the window it was granted in.
        var cap: Cost?
        /// For a quota: the window it was granted in.
        var window: Int64
    }

    /// The calendar windows `now` falls in, in the policy's time zone.
    struct Windows {
        var day: Int64
        var month: Int64
    }

    private struct State {
        var grants: [Key: Grant] = [:]
        var fallback: LeaseFallback = .fraction(0.1)
        /// For rates: an even share among the agents the last bundle named active.
        var rateFallback: LeaseFallback = .fraction(0.1)
        /// What callers asked, as a count decaying with the demand time constant.
        var demand: [Key: Double] = [:]
        var lastSample: Int64?
        /// When demand was first counted (the first policy): how much history there is.
        var countingSince: Int64?
    }

    private let state = Mutex<State>(State())
    /// The time constant of the demand average.
    static let demandTimeConstantSeconds = 10.0
    /// The least history a demand rate is corrected for: a call in the first 100 ms is not
    /// read as 600 a minute.
    static let shortestHistorySeconds = 2.0

    public init() {}

    /// The policy's fallback, and how many agents held leases when the bundle was built;
    /// takes effect for engines built after it (reloads). Rates fall back to an even share
    /// among those agents and this one; budgets, where going over costs money, to the
    /// configured fallback.
    func setFallback(_ fallback: LeaseFallback, activeAgents: Int?, now: Int64) {
        state.withLock { state in
            // Demand is counted from the first policy on, so the first renewal has a rate.
            state.lastSample = state.lastSample ?? now
            state.countingSince = state.countingSince ?? now
            state.fallback = fallback
            state.rateFallback = fallback.fairShare(amongActiveAgents: activeAgents)
        }
    }

    /// What this agent enforces for a scope whose policy limits are `limits`, at `now`.
    func localLimits(now: Int64, windows: Windows) -> (Scope, Limits) -> Limits {
        let (grants, fallback, rateFallback) = state.withLock { ($0.grants, $0.fallback, $0.rateFallback) }
        return { scope, limits in
            guard FleetLimits.leasedKinds.contains(scope.kind) else { return limits }
            func grant(_ limit: LeaseLimit) -> Grant? {
                grants[Key(scope: scope, limit: limit)].flatMap { $0.expiresAt > now ? $0 : nil }
            }
            let daily = grant(.dailySpend).flatMap { $0.window == windows.day ? $0.cap : nil }
            let monthly = grant(.monthlySpend).flatMap { $0.window == windows.month ? $0.cap : nil }
            let dailyRequests = grant(.requestsPerDay).flatMap { $0.window == windows.day ? $0.amount : nil }
            let requests = grant(.requestsPerMinute)
            let tokens = grant(.tokensPerMinute)
            let shares = FleetLimits.Shares(
                requestsPerMinute: requests?.amount, tokensPerMinute: tokens?.amount, requestBurst: requests?.burst,
                tokenBurst: tokens?.burst, dailyRequestCap: dailyRequests, dailySpendCap: daily,
                monthlySpendCap: monthly)
            return FleetLimits.local(limits, shares: shares, fallback: fallback, rateFallback: rateFallback)
        }
    }

    /// True when callers have asked something of a scope with a fleet-wide limit this agent
    /// holds no valid lease for: its first calls run on the fallback, so the lease is asked
    /// for now rather than at the next flush.
    func wantsLease(limiter: Limiter, engine: PolicyEngine, now: Int64) -> Bool {
        let asked = limiter.scopesWithDemand(kinds: FleetLimits.leasedKinds)
        guard !asked.isEmpty else { return false }
        let leased = state.withLock { state in Set(state.grants.filter { $0.value.expiresAt > now }.keys.map(\.scope)) }
        return asked.contains { scope in
            guard !leased.contains(scope), let limits = engine.boundLimits[scope] else { return false }
            return LeaseLimit.allCases.contains { Self.value(of: $0, in: limits) != nil }
        }
    }

    /// Samples what callers asked of each fleet-limited scope since the last renewal and
    /// returns the demands to report: smoothed, per minute, with the limit as the policy in
    /// force states it, what a quota has used of its window and what a rate's bucket holds.
    func demands(
        limiter: Limiter, engine: PolicyEngine, now: Int64, use: (Scope) -> Limiter.ScopeUse?
    ) -> [LeaseDemand] {
        let samples = limiter.takeDemand(kinds: FleetLimits.leasedKinds)
        return state.withLock { state in
            let elapsedSeconds = state.lastSample.map { Double(max(1, now - $0)) / 1e9 } ?? 0
            state.lastSample = now
            state.countingSince = state.countingSince ?? now
            var fresh: [Key: Double] = [:]
            for sample in samples {
                fresh[Key(scope: sample.scope, limit: .requestsPerMinute)] = Double(sample.requests)
                fresh[Key(scope: sample.scope, limit: .tokensPerMinute)] = Double(sample.tokens)
                fresh[Key(scope: sample.scope, limit: .requestsPerDay)] = Double(sample.requests)
                fresh[Key(scope: sample.scope, limit: .dailySpend)] = Double(sample.cost.picoUSD)
                fresh[Key(scope: sample.scope, limit: .monthlySpend)] = Double(sample.cost.picoUSD)
            }
            // A rate over about the last ten seconds, whatever the flush interval: a count
            // that decays with that time constant, divided by it. A quiet agent's demand is
            // not zero between its calls, a burst shows within a few seconds, and a first
            // call is not read as a rate from the few milliseconds before it: the count is
            // corrected only for the history there is (at least two seconds).
            let tau = Self.demandTimeConstantSeconds
            let decay = exp(-elapsedSeconds / tau)
            let history = max(Self.shortestHistorySeconds, Double(now - (state.countingSince ?? now)) / 1e9)
            let perMinuteOfCount = 60 / tau / (1 - exp(-history / tau))
            var rates: [Key: Double] = [:]
            for key in Set(state.demand.keys).union(fresh.keys) {
                let count = (state.demand[key] ?? 0) * decay + (fresh[key] ?? 0)
                let perMinute = count * perMinuteOfCount
                state.demand[key] = perMinute < 0.01 ? nil : count
                if perMinute >= 0.01 { rates[key] = perMinute }
            }
            var demands: [LeaseDemand] = []
            for (key, perMinute) in rates {
                guard let limits = engine.boundLimits[key.scope], let value = Self.value(of: key.limit, in: limits)
                else { continue }
                let scopeUse = use(key.scope)
                var own: Int?
                var held: Int?
                switch key.limit {
                case .requestsPerMinute: held = scopeUse?.requestsHeld
                case .tokensPerMinute: held = scopeUse?.tokensHeld
                case .requestsPerDay: own = scopeUse?.dayRequests ?? 0
                case .dailySpend: own = Int((scopeUse?.daySpend ?? .zero).picoUSD)
                case .monthlySpend: own = Int((scopeUse?.monthSpend ?? .zero).picoUSD)
                }
                demands.append(
                    LeaseDemand(
                        scopeKind: key.scope.kind.rawValue, scope: key.scope.name, limit: key.limit.rawValue,
                        perMinute: perMinute, limitValue: value, ownSpent: own, held: held))
            }
            return demands.sorted { ($0.scopeKind, $0.scope, $0.limit) < ($1.scopeKind, $1.scope, $1.limit) }
        }
    }

    private static func value(of limit: LeaseLimit, in limits: Limits) -> Int? {
        switch limit {
        case .requestsPerMinute: limits.requestsPerMinute
        case .tokensPerMinute: limits.tokensPerMinute
        case .requestsPerDay: limits.requestsPerDay
        case .dailySpend: limits.dailySpend.map { Int($0.picoUSD) }
        case .monthlySpend: limits.monthlySpend.map { Int($0.picoUSD) }
        }
    }

    /// Takes new grants and drops expired ones; returns the scopes whose local limits
    /// changed, to be bound again. A quota's grant is a cap on this agent's use in the
    /// window it was granted in.
    func update(_ grants: [LeaseGrant], now: Int64, windows: Windows) -> Set<Scope> {
        state.withLock { state in
            var changed: Set<Scope> = []
            for grant in grants {
                guard let kind = Scope.Kind(rawValue: grant.scopeKind), let limit = LeaseLimit(rawValue: grant.limit)
                else { continue }
                let key = Key(scope: Scope(kind, grant.scope), limit: limit)
                var renewed = Grant(
                    amount: max(0, grant.perMinute), burst: limit.isQuota ? nil : grant.burst.map { max(0, $0) },
                    expiresAt: now + Int64(max(1, grant.validSeconds)) * 1_000_000_000, cap: nil, window: 0)
                if limit.isQuota { renewed.window = limit.isDaily ? windows.day : windows.month }
                if limit.isSpend { renewed.cap = Cost(picoUSD: Int64(renewed.amount)) }
                let previous = state.grants[key]
                if previous?.amount != renewed.amount || previous?.cap != renewed.cap
                    || previous?.burst != renewed.burst
                {
                    changed.insert(key.scope)
                }
                state.grants[key] = renewed
            }
            for (key, grant) in state.grants where grant.expiresAt <= now {
                state.grants[key] = nil
                changed.insert(key.scope)
            }
            return changed
        }
    }

    /// Binds `scopes` again at their current local limits. A scope still holding a rate
    /// share keeps what its buckets hold (the control plane counts it); one fallen back
    /// is cut to the fallback.
    func apply(_ scopes: Set<Scope>, engine: PolicyEngine, limiter: Limiter, now: Int64, windows: Windows) {
        guard !scopes.isEmpty else { return }
        let local = localLimits(now: now, windows: windows)
        let leased = state.withLock { state in
            Set(state.grants.filter { !$0.key.limit.isQuota && $0.value.expiresAt > now }.keys.map(\.scope))
        }
        for scope in scopes {
            guard let limits = engine.boundLimits[scope] else { continue }
            _ = limiter.bind(scope, limits: local(scope, limits), fleet: limits, keepingLevels: leased.contains(scope))
        }
    }

    /// Shares held now, for metrics and tests: a rate per minute, or a budget's amount in
    /// pico-USD.
    public func held(now: Int64) -> [(scope: Scope, limit: String, perMinute: Int)] {
        state.withLock { state in
            state.grants.compactMap { key, grant in
                grant.expiresAt > now ? (key.scope, key.limit.rawValue, grant.amount) : nil
            }
        }
    }
}
