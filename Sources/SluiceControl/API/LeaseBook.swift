import Foundation
import SluicePolicy
import SluiceWire
import Synchronization

/// Shares of fleet-wide limits among the agents enforcing them.
///
/// Every renewal records the agent's demand per limit; an agent that has not renewed within
/// the lease time is no longer counted. Each renewal is answered with the agent's share,
/// split (``LeaseSplit``, max-min fair) among the agents active on that limit at that
/// moment: of the rate for requests and tokens per minute, and of what the fleet has left
/// of a quota (requests per day, a daily or monthly budget: the quota minus the use in the
/// usage rollups, in the settings' time zone). A rate's grant also says how far the agent's
/// bucket may fill (its burst): what the limit leaves after the other agents' buckets, at
/// the most each may hold.
///
/// On SQLite (one replica) demand lives in this process's memory and every renewal is
/// answered with a split made there and then. On PostgreSQL (any number of replicas) each
/// renewal records its claims in the database and is answered with the grants allocated so
/// far; one replica at a time (``LeaseCoordinator``) allocates every claim's grant with
/// ``LeaseAllocation``, each second (see docs/sync.md).
public final class LeaseBook: Sendable {
    private let store: any Store
    /// The shared database, when claims and grants live there.
    private let shared: PostgresStore?
    private let state = Mutex<State>(State())

    private struct Claim {
        var demand: Double
        var limitValue: Int
        var seenAt: ContinuousClock.Instant
        /// Quotas only: the agent's own use in the window, and the cap last granted.
        var own = 0
        var cap = 0
        /// Quotas only: the cap the agent enforces until the answer to this renewal reaches
        /// it (the one granted before, or its fallback before its first grant).
        var enforcing = 0
        /// Rates only: what the agent's bucket held when it renewed, and the burst granted.
        /// Its bucket holds at most the larger until it renews again: a bucket above its
        /// size does not refill.
        var held: Int?
        var burst = 0
    }

    private struct State {
        /// `kind/scope/limit` → instance → claim.
        var claims: [String: [String: Claim]] = [:]
        /// `kind/scope/limit` → when its oldest claim was seen.
        var oldestClaim: [String: ContinuousClock.Instant] = [:]
        /// Settings as of a policy version, and when the version was last read.
        var settings:
            (
                version: Int64, checkedAt: ContinuousClock.Instant, leaseSeconds: Int, minimumPercent: Int,
                zone: TimeZoneRules, fallback: LeaseFallback
            )?
        /// When each agent instance last renewed: how many are active.
        var lastRenewal: [String: ContinuousClock.Instant] = [:]
        /// Fleet use per scope in a window, read at most once a second.
        var spend: [SpendWindow: (readAt: ContinuousClock.Instant, byName: [String: WindowUse])] = [:]
        /// Shared mode: agent instances with live claims, as last counted in the database.
        var sharedActive: Int?
    }

    /// What a scope's calls used in a window, by the rollups.
    private struct WindowUse {
        var requests: Int64 = 0
        var costPicoUSD: Int64 = 0
    }

    private struct SpendWindow: Hashable {
        var dimension: UsageQuery.Dimension
        var start: Int64
    }

    public init(store: any Store) {
        self.store = store
        shared = store as? PostgresStore
    }

    /// Records `request`'s demands for `agentID` and answers with its shares.
    public func renew(agentID: String, request: LeaseRequest, now: ContinuousClock.Instant = .now) async throws
        -> LeaseAnswer
    {
        try request.validate()
        let (leaseSeconds, minimumPercent, zone, fallback) = try await settings()
        let instance = "\(agentID)/\(request.instance)"
        if let shared {
            return try await renewShared(
                shared, instance: instance, request: request, leaseSeconds: leaseSeconds, fallback: fallback)
        }
        let horizon = now - .seconds(leaseSeconds)
        var fleetSpent: [String: Int] = [:]
        for demand in request.demands {
            guard let limit = LeaseLimit(rawValue: demand.limit), limit.isQuota,
                let dimension = UsageQuery.Dimension(rawValue: demand.scopeKind), !dimension.isTime
            else { continue }
            let used = try await fleetUse(dimension, daily: limit.isDaily, zone: zone, now: now)[demand.scope]
            fleetSpent["\(demand.scopeKind)/\(demand.scope)/\(demand.limit)"] =
                Int(limit.isSpend ? used?.costPicoUSD ?? 0 : used?.requests ?? 0)
        }
        return state.withLock { state in
            state.lastRenewal[instance] = now
            if state.lastRenewal.count > 10_000 { state.lastRenewal = state.lastRenewal.filter { $0.value >= horizon } }
            var answer = LeaseAnswer(grants: [])
            for demand in request.demands {
                let key = "\(demand.scopeKind)/\(demand.scope)/\(demand.limit)"
                // Taken out while it changes, so the table is not copied.
                var claims = state.claims.removeValue(forKey: key) ?? [:]
                let own = demand.ownSpent ?? 0
                let previous = claims[instance]
                // Until this answer arrives the agent uses what it held before: its last
                // grant, or before its first the fallback's cap on its own use.
                let enforcing = previous?.cap ?? Self.fallbackCap(demand, fallback: fallback)
                claims[instance] = Claim(
                    demand: demand.perMinute, limitValue: demand.limitValue, seenAt: now, own: own,
                    cap: max(previous?.cap ?? 0, own), enforcing: enforcing, held: demand.held,
                    burst: previous?.burst ?? 0)
                // Sweeping every claim at every renewal would cost the square of the agents
                // on a limit; a sweep is due only once its oldest claim may have expired.
                if let oldest = state.oldestClaim[key], oldest < horizon {
                    claims = claims.filter { $0.value.seenAt >= horizon }
                }
                state.oldestClaim[key] = claims.values.lazy.map(\.seenAt).min()
                let limitValue = claims.values.lazy.map(\.limitValue).min() ?? 0
                let grant: Int
                var burst: Int?
                if let spent = fleetSpent[key] {
                    grant = Self.quotaCap(
                        for: instance, in: &claims, quota: limitValue, fleetUsed: spent,
                        minimumPercent: minimumPercent)
                } else {
                    grant = LeaseSplit.rate(
                        of: instance, capacity: limitValue,
                        claims: claims.map {
                            .init(agent: $0.key, demand: $0.value.demand, held: $0.value.held.map(Double.init))
                        },
                        minimumPercent: minimumPercent)
                    let trimmed = Self.burst(for: instance, in: &claims, rate: grant, limit: limitValue)
                    burst = trimmed < grant ? trimmed : nil
                }
                state.claims[key] = claims
                answer.grants.append(
                    LeaseGrant(
                        scopeKind: demand.scopeKind, scope: demand.scope, limit: demand.limit,
                        perMinute: grant, validSeconds: leaseSeconds, burst: burst))
                answer.activeAgents[key] = claims.count
            }
            // Forget limits nobody has claimed for a lease time.
            if state.claims.count > 10_000 {
                state.claims = state.claims.filter { $0.value.values.contains { $0.seenAt >= horizon } }
                state.oldestClaim = state.oldestClaim.filter { state.claims[$0.key] != nil }
            }
            return answer
        }
    }

    /// Shared mode: records the claims and answers with the grants allocated so far. A claim
    /// seen for the first time is recorded as enforcing the fallback's cap (quotas) or what
    /// its bucket holds (rates); it has no grant until the next allocation, within a second,
    /// and the agent asks again within a second of its first calls.
    private func renewShared(
        _ shared: PostgresStore, instance: String, request: LeaseRequest, leaseSeconds: Int, fallback: LeaseFallback
    ) async throws -> LeaseAnswer {
        let claims = request.demands.map { demand in
            let isQuota = LeaseLimit(rawValue: demand.limit)?.isQuota ?? false
            return LeaseClaimRecord(
                key: "\(demand.scopeKind)/\(demand.scope)/\(demand.limit)", instance: instance,
                demand: demand.perMinute, limitValue: Int64(demand.limitValue), held: demand.held.map(Int64.init),
                own: Int64(demand.ownSpent ?? 0),
                delivered: isQuota ? Int64(Self.fallbackCap(demand, fallback: fallback)) : demand.held.map(Int64.init))
        }
        let grants = try await shared.recordLeaseClaims(claims)
        var answer = LeaseAnswer(grants: [])
        for demand in request.demands {
            guard let grant = grants["\(demand.scopeKind)/\(demand.scope)/\(demand.limit)"] else { continue }
            answer.grants.append(
                LeaseGrant(
                    scopeKind: demand.scopeKind, scope: demand.scope, limit: demand.limit,
                    perMinute: Int(grant.amount), validSeconds: leaseSeconds, burst: grant.burst.map(Int.init)))
        }
        return answer
    }

    /// Shared mode, on the replica holding the allocation lock: every live claim's grant,
    /// allocated with ``LeaseAllocation`` from the claims' demand, held buckets, own use and
    /// delivered grants, and the rollups for quotas.
    func allocate(_ session: LeaseLeaderSession, now: ContinuousClock.Instant = .now) async throws {
        let (leaseSeconds, minimumPercent, zone, _) = try await settings()
        let claims = try await session.liveClaims(activeSeconds: leaseSeconds)
        var grants: [StoredLeaseGrant] = []
        for (key, group) in Dictionary(grouping: claims, by: \.key) {
            guard let (kind, scope, limit) = Self.parse(key) else { continue }
            let limitValue = Int(group.map(\.limitValue).min() ?? 0)
            let holders = group.map {
                LeaseAllocation.Holder(
                    agent: $0.instance, demand: $0.demand, held: $0.held.map(Int.init), own: Int($0.own),
                    delivered: $0.delivered.map(Int.init))
            }
            if limit.isQuota {
                guard let dimension = UsageQuery.Dimension(rawValue: kind), !dimension.isTime else { continue }
                let use = try await fleetUse(dimension, daily: limit.isDaily, zone: zone, now: now)[scope]
                let used = Int(limit.isSpend ? use?.costPicoUSD ?? 0 : use?.requests ?? 0)
                let caps = LeaseAllocation.quotas(
                    limit: limitValue, used: used, holders: holders, minimumPercent: minimumPercent)
                for (agent, cap) in caps {
                    grants.append(StoredLeaseGrant(key: key, instance: agent, amount: Int64(cap), burst: nil))
                }
            } else {
                let rates = LeaseAllocation.rates(limit: limitValue, holders: holders, minimumPercent: minimumPercent)
                for (agent, rate) in rates {
                    grants.append(
                        StoredLeaseGrant(
                            key: key, instance: agent, amount: Int64(rate.perMinute), burst: rate.burst.map(Int64.init)
                        ))
                }
            }
        }
        try await session.grant(grants)
        let active = Set(claims.map(\.instance)).count
        state.withLock { $0.sharedActive = active }
    }

    /// Shared mode, on the other replicas: how many agents hold claims, for bundles.
    func refreshActiveAgents() async throws {
        guard let shared else { return }
        let (leaseSeconds, _, _, _) = try await settings()
        let active = try await shared.activeLeaseInstances(withinSeconds: leaseSeconds)
        state.withLock { $0.sharedActive = active }
    }

    /// `kind/scope/limit`, where the scope may itself hold slashes (a service's namespace).
    private static func parse(_ key: String) -> (kind: String, scope: String, limit: LeaseLimit)? {
        guard let first = key.firstIndex(of: "/"), let last = key.lastIndex(of: "/"), first < last,
            let limit = LeaseLimit(rawValue: String(key[key.index(after: last)...]))
        else { return nil }
        return (String(key[..<first]), String(key[key.index(after: first)..<last]), limit)
    }

    /// Agent instances that renewed within the lease time: what a bundle tells a new agent
    /// to divide a limit by until its own lease arrives.
    public func activeAgents(now: ContinuousClock.Instant = .now) -> Int {
        state.withLock { state in
            if let active = state.sharedActive { return active }
            let horizon = now - .seconds(state.settings?.leaseSeconds ?? 15)
            return state.lastRenewal.values.filter { $0 >= horizon }.count
        }
    }

    /// How long settings read for one policy version are used before the version is read again.
    static let settingsRecheck: Duration = .seconds(1)

    private func settings() async throws -> (
        leaseSeconds: Int, minimumPercent: Int, zone: TimeZoneRules, fallback: LeaseFallback
    ) {
        let now = ContinuousClock.now
        let cached = state.withLock { $0.settings }
        // Renewals arrive hundreds a second: the version is asked for at most once a second.
        if let cached, now - cached.checkedAt < Self.settingsRecheck {
            return (cached.leaseSeconds, cached.minimumPercent, cached.zone, cached.fallback)
        }
        let version = try await store.policyVersion()
        if let cached, cached.version == version {
            state.withLock { $0.settings?.checkedAt = now }
            return (cached.leaseSeconds, cached.minimumPercent, cached.zone, cached.fallback)
        }
        let settings = try await store.settings()
        let zone = TimeZones.rules(named: settings.timeZone) ?? .utc
        let fallback = settings.fallback ?? .fraction(0.1)
        state.withLock {
            $0.settings = (version, now, settings.leaseSeconds, settings.leaseMinimumSharePercent, zone, fallback)
        }
        return (settings.leaseSeconds, settings.leaseMinimumSharePercent, zone, fallback)
    }

    /// What an agent enforces for a quota before its first grant: the fallback's cap.
    private static func fallbackCap(_ demand: LeaseDemand, fallback: LeaseFallback) -> Int {
        guard let limit = LeaseLimit(rawValue: demand.limit), limit.isQuota else { return 0 }
        if limit.isSpend {
            return Int(fallback.spendCap(forBudget: Cost(picoUSD: Int64(demand.limitValue)))?.picoUSD ?? 0)
        }
        return fallback.countCap(forQuota: demand.limitValue) ?? demand.limitValue
    }

    /// How far `instance`'s bucket may fill under a rate share of `rate`: what the limit
    /// leaves after the other agents' buckets, each counted at the most it may hold (the
    /// larger of what it held when it renewed and its burst). A share that shrank keeps what
    /// its bucket held, so until that is spent the others' bursts are trimmed; the fleet's
    /// buckets together never hold more than the limit, beyond one call per agent (a full
    /// bucket admits one call whatever its size).
    private static func burst(for instance: String, in claims: inout [String: Claim], rate: Int, limit: Int) -> Int {
        var others = 0
        for (agent, claim) in claims where agent != instance { others += max(claim.held ?? 0, claim.burst) }
        let burst = max(0, min(rate, limit - others))
        claims[instance]?.burst = burst
        return burst
    }

    /// The cap on `instance`'s own use in a quota's window (pico-USD of a budget, or
    /// requests of a daily count).
    ///
    /// Caps are granted so that, together with what agents no longer active used, they
    /// never add up to more than the quota: an agent gets its share (by ``LeaseSplit``) of
    /// what nobody has used yet, but no more than what the other agents' caps leave, and
    /// never less than it has already used. Agents holding more than their share give it
    /// back when they renew, so caps follow demand within a few cycles. Another agent counts
    /// at the most it may use: its use, its new cap, or the cap it enforces until that
    /// answer reaches it (a cap given back is not handed out again while it is still held).
    private static func quotaCap(
        for instance: String, in claims: inout [String: Claim], quota budget: Int, fleetUsed fleetSpent: Int,
        minimumPercent: Int
    ) -> Int {
        let activeOwn = claims.values.map(\.own).reduce(0, +)
        // Use in the rollups beyond what active agents report is by agents gone away.
        let departed = max(0, fleetSpent - activeOwn)
        let unspent = max(0, budget - departed - activeOwn)
        let shares = LeaseSplit.quota(
            capacity: unspent, claims: claims.map { .init(agent: $0.key, demand: $0.value.demand) },
            minimumPercent: minimumPercent)
        let own = claims[instance]?.own ?? 0
        var others = 0
        for (agent, claim) in claims where agent != instance { others += max(claim.cap, claim.own, claim.enforcing) }
        let available = budget - departed - others
        let increment = LeaseSplit.quotaIncrement(share: shares[instance] ?? 0, demand: claims[instance]?.demand ?? 0)
        let cap = max(own, min(own + increment, available))
        claims[instance]?.cap = cap
        return cap
    }

    /// Usage was applied through this process: quotas' use is read afresh.
    public func usageArrived() {
        state.withLock { $0.spend.removeAll() }
    }

    /// The fleet's requests and spend by scope name in the day or month containing now,
    /// from the rollups (as the budget watcher reads them). Cached until usage arrives here,
    /// and for at most a second (another replica may have taken some).
    private func fleetUse(
        _ dimension: UsageQuery.Dimension, daily: Bool, zone: TimeZoneRules, now: ContinuousClock.Instant
    ) async throws -> [String: WindowUse] {
        let seconds = Int64(Date().timeIntervalSince1970)
        let start = daily ? zone.startOfDay(containing: seconds) : zone.startOfMonth(containing: seconds)
        let end = daily ? zone.startOfNextDay(after: seconds) : zone.startOfNextMonth(after: seconds)
        let window = SpendWindow(dimension: dimension, start: start)
        if let cached = state.withLock({ $0.spend[window] }), now - cached.readAt < .seconds(1) { return cached.byName }
        let rows = try await store.usage(UsageQuery(groupBy: [dimension], from: start - start % 3600, to: end))
        var byName: [String: WindowUse] = [:]
        for row in rows {
            let name = row.group[dimension.rawValue] ?? ""
            byName[name, default: WindowUse()].requests += row.requests
            byName[name, default: WindowUse()].costPicoUSD += row.costPicoUSD
        }
        state.withLock { $0.spend[window] = (now, byName) }
        return byName
    }
}
