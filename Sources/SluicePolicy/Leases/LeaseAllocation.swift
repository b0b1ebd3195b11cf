/// Every agent's share of one fleet-wide limit at once, as one elected control-plane replica
/// computes them for all replicas (see docs/sync.md): the same splits as ``LeaseSplit``, with
/// what each agent may still be enforcing counted, so that the limit holds while new grants
/// are on their way.
///
/// An agent learns its new grant only at its next renewal; until then it enforces the one it
/// was last given (its *delivered* grant). So an agent occupies the larger of that and what
/// it holds or has used, and a grant may grow only into room no other agent occupies.
public enum LeaseAllocation {
    /// One agent's claim on a limit.
    public struct Holder: Sendable, Equatable {
        public var agent: String
        /// Units per minute asked (admitted and refused).
        public var demand: Double
        /// Rates: what its bucket held at its last renewal.
        public var held: Int?
        /// Quotas: its own use in the window.
        public var own: Int
        /// What it enforces now: a rate's bucket size or a quota's cap (nil before its first).
        public var delivered: Int?

        public init(agent: String, demand: Double, held: Int? = nil, own: Int = 0, delivered: Int? = nil) {
            self.agent = agent
            self.demand = demand
            self.held = held
            self.own = own
            self.delivered = delivered
        }
    }

    /// A rate share and, when less than the share, how far the bucket may fill.
    public struct RateGrant: Sendable, Equatable {
        public var perMinute: Int
        public var burst: Int?

        public init(perMinute: Int, burst: Int? = nil) {
            self.perMinute = perMinute
            self.burst = burst
        }
    }

    /// Rate shares of `limit` per minute, max-min fair (``LeaseSplit/rate(capacity:claims:minimumPercent:)``),
    /// with bursts such that the buckets together never hold more than the limit: each
    /// agent occupies the larger of what its bucket held and the size it enforces, and
    /// bursts grow only into the room left, shared in proportion to how far each is short.
    public static func rates(limit: Int, holders: [Holder], minimumPercent: Int) -> [String: RateGrant] {
        let shares = LeaseSplit.rate(
            capacity: limit,
            claims: holders.map { .init(agent: $0.agent, demand: $0.demand, held: $0.held.map(Double.init)) },
            minimumPercent: minimumPercent)
        let occupied = holders.map { max($0.held ?? 0, $0.delivered ?? 0) }
        let targets = holders.map { shares[$0.agent] ?? 0 }
        let sizes = grow(occupied: occupied, targets: targets, room: limit - occupied.reduce(0, +))
        var grants: [String: RateGrant] = [:]
        for (index, holder) in holders.enumerated() {
            let size = min(targets[index], sizes[index])
            grants[holder.agent] = RateGrant(perMinute: targets[index], burst: size < targets[index] ? size : nil)
        }
        return grants
    }

    /// Caps on each agent's own use of a quota of `limit` (requests in a day, pico-USD in a
    /// day or month), of which the fleet has used `used` by the rollups. Agents no longer
    /// active used what the rollups show beyond the active agents' own use. Each agent's
    /// target is its own use plus its share (``LeaseSplit/quota(capacity:claims:minimumPercent:)``)
    /// of what nobody has used; a cap above what the agent occupies (its use, or the cap it
    /// enforces) grows only into the room left, and one below it is given back (never below
    /// its use).
    public static func quotas(limit: Int, used: Int, holders: [Holder], minimumPercent: Int) -> [String: Int] {
        let activeOwn = holders.map(\.own).reduce(0, +)
        let departed = max(0, used - activeOwn)
        let unspent = max(0, limit - departed - activeOwn)
        let shares = LeaseSplit.quota(
            capacity: unspent, claims: holders.map { .init(agent: $0.agent, demand: $0.demand) },
            minimumPercent: minimumPercent)
        let occupied = holders.map { max($0.own, $0.delivered ?? 0) }
        let targets = holders.map {
            $0.own + LeaseSplit.quotaIncrement(share: shares[$0.agent] ?? 0, demand: $0.demand)
        }
        let room = limit - departed - occupied.reduce(0, +)
        let grown = grow(occupied: occupied, targets: targets, room: room)
        var caps: [String: Int] = [:]
        for (index, holder) in holders.enumerated() {
            caps[holder.agent] =
                targets[index] <= occupied[index] ? max(holder.own, targets[index]) : grown[index]
        }
        return caps
    }

    /// Sizes at least `occupied`, at most `targets` where those are larger, growing by no more
    /// than `room` in all: each short agent gets room in proportion to its shortfall.
    static func grow(occupied: [Int], targets: [Int], room: Int) -> [Int] {
        let gaps = zip(occupied, targets).map { max(0, $1 - $0) }
        let wanted = gaps.reduce(0, +)
        // Nobody short (wanted 0) needs nothing, even with the fleet over its limit (room < 0):
        // dividing by it would make NaN, which no share can be.
        guard wanted > room, wanted > 0 else { return zip(occupied, gaps).map { $0 + $1 } }
        let available = max(0, room)
        var extras = gaps.map { min($0, Int((Double(available) * Double($0) / Double(wanted)).rounded(.down))) }
        // Beyond 2^53 (budgets in pico-USD) doubles round: never hand out more than the room.
        var excess = extras.reduce(0, +) - available
        while excess > 0, let largest = extras.indices.max(by: { extras[$0] < extras[$1] }) {
            let taken = min(extras[largest], excess)
            extras[largest] -= taken
            excess -= taken
        }
        return zip(occupied, extras).map { $0 + $1 }
    }
}
