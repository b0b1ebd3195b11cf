/// How a fleet-wide limit is shared among the agents enforcing it.
///
/// A rate (requests or tokens per minute) is split max-min fair (``rate(capacity:claims:minimumPercent:)``):
/// an agent wanting no more than an even split gets all it wants; what is left is split
/// evenly among the agents that want more, again giving all it wants to any that wants
/// less than that, and so on (water-filling). When the fleet wants less than the limit,
/// every agent gets its want and the spare is split evenly, as headroom.
///
/// What an agent wants is its demand, steered by what its bucket holds: each agent keeps a
/// reserve of a quarter minute of its demand, so a quiet agent is not refused between
/// renewals, and asks for more while below it and less while above. Its rate then matches
/// its demand on average, and the capacity a fixed headroom would leave to fill a quiet
/// agent's full bucket goes to the agents that want it.
///
/// A quota (requests per day, a budget) is split in proportion to demand above a floor
/// (``quota(capacity:claims:minimumPercent:)``): it is an amount for the rest of a window,
/// not a rate, so recent demand weighs what each agent will need.
///
/// Shares are whole units and add up to exactly the capacity: never more than the limit
/// leaves the control plane.
public enum LeaseSplit {
    /// One agent's demand for a limit, in units per minute (admitted plus refused), and
    /// for a rate what its bucket holds now (whole units), when it says.
    public struct Claim: Sendable, Equatable {
        public var agent: String
        public var demand: Double
        public var held: Double?

        public init(agent: String, demand: Double, held: Double? = nil) {
            self.agent = agent
            self.demand = demand
            self.held = held
        }
    }

    /// The reserve an agent's bucket is steered to, in minutes of its demand.
    public static let reserveMinutes = 0.25
    /// How fast a bucket is steered back to its reserve: the gap is closed over this long.
    public static let steeringMinutes = 0.25
    /// What an agent that does not say what its bucket holds wants beyond its demand.
    public static let headroom = 1.25

    /// What one claim wants per minute: its demand steered by its bucket toward the
    /// reserve, and never less than `idleFloor`.
    public static func want(_ claim: Claim, idleFloor: Double) -> Double {
        let demand = claim.demand.isFinite ? max(0, claim.demand) : 0
        guard let held = claim.held, held.isFinite else { return max(demand * headroom, idleFloor) }
        let steered = demand + (demand * reserveMinutes - max(0, held)) / steeringMinutes
        return max(steered, idleFloor)
    }

    /// Shares of a rate `capacity` for `claims`, max-min fair, by agent. An idle agent's
    /// floor is a tenth of `minimumPercent` (0 to 100) of an even split.
    public static func rate(capacity: Int, claims: [Claim], minimumPercent: Int) -> [String: Int] {
        guard !claims.isEmpty, capacity > 0 else {
            return Dictionary(claims.map { ($0.agent, 0) }, uniquingKeysWith: { first, _ in first })
        }
        return apportion(
            rateShares(capacity: capacity, claims: claims, minimumPercent: minimumPercent), capacity: capacity,
            agents: claims.map(\.agent))
    }

    /// `agent`'s share in ``rate(capacity:claims:minimumPercent:)``, without working out every
    /// other agent's whole units: one renewal needs one share, and a limit may have
    /// thousands of agents.
    public static func rate(of agent: String, capacity: Int, claims: [Claim], minimumPercent: Int) -> Int {
        guard !claims.isEmpty, capacity > 0 else { return 0 }
        let shares = rateShares(capacity: capacity, claims: claims, minimumPercent: minimumPercent)
        var whole = 0
        for index in claims.indices where claims[index].agent == agent {
            guard let units = apportioned(index, shares, capacity: capacity, agents: claims.lazy.map(\.agent)) else {
                return apportion(shares, capacity: capacity, agents: claims.map(\.agent))[agent] ?? 0
            }
            whole += units
        }
        return whole
    }

    /// Max-min fair shares of `capacity` before rounding to whole units.
    private static func rateShares(capacity: Int, claims: [Claim], minimumPercent: Int) -> [Double] {
        let total = Double(capacity)
        let count = Double(claims.count)
        let idleFloor = total / count * Double(min(100, max(0, minimumPercent))) / 1_000
        let wants = claims.map { want($0, idleFloor: idleFloor) }
        let wanted = wants.reduce(0, +)
        if wanted <= total {
            let spare = (total - wanted) / count
            return wants.map { $0 + spare }
        }
        let level = waterLevel(wants, capacity: total)
        return wants.map { min($0, level) }
    }

    /// How much of a quota share an agent is granted beyond its use at one renewal: what its
    /// demand needs for ``quotaHorizonMinutes``, at least a twentieth of its share, and at
    /// most the share. The rest stays unclaimed, so an agent that starts later (or a new
    /// replica of a service) is granted its share at its first renewal instead of waiting for
    /// the first agent to give back what it held. Unclaimed budget costs nothing: an agent
    /// renews every flush, long before it could spend what it holds.
    public static func quotaIncrement(share: Int, demand: Double) -> Int {
        let needed = (demand.isFinite ? max(0, demand) : 0) * quotaHorizonMinutes
        let wanted = max(needed, Double(share) / 20)
        return wanted >= Double(share) ? share : max(0, Int(wanted.rounded(.up)))
    }

    /// How many minutes of an agent's demand a quota grant covers.
    public static let quotaHorizonMinutes = 2.0

    /// Shares of a quota `capacity` for `claims`, by agent.
    ///
    /// Each active agent first gets a floor, so a quiet agent is never starved by busy ones:
    /// `minimumPercent` of an even split, but no more than its demand plus a quarter (a
    /// floor it does not use would be capacity nobody gets) and no less than a tenth of the
    /// full floor (so an idle agent can serve its next calls before its next renewal). What
    /// is left goes to the agents in proportion to their demand beyond their floor. When the
    /// fleet wants less than the limit, every agent gets its demand and the spare is split
    /// evenly.
    public static func quota(capacity: Int, claims: [Claim], minimumPercent: Int) -> [String: Int] {
        guard !claims.isEmpty, capacity > 0 else {
            return Dictionary(claims.map { ($0.agent, 0) }, uniquingKeysWith: { first, _ in first })
        }
        let total = Double(capacity)
        let count = Double(claims.count)
        let fullFloor = total / count * Double(min(100, max(0, minimumPercent))) / 100
        let demands = claims.map { $0.demand.isFinite ? max(0, $0.demand) : 0 }
        let floors = demands.map { min(fullFloor, max($0 * headroom, fullFloor / 10)) }
        let pool = total - floors.reduce(0, +)
        let needs = zip(demands, floors).map { max(0, $0 - $1) }
        let needed = needs.reduce(0, +)
        var shares: [Double]
        if needed >= pool, needed > 0 {
            shares = zip(floors, needs).map { $0 + pool * $1 / needed }
        } else {
            let spare = (pool - needed) / count
            shares = zip(floors, needs).map { $0 + $1 + spare }
        }
        return apportion(shares, capacity: capacity, agents: claims.map(\.agent))
    }

    /// The level λ at which `wants` capped at λ add up to `capacity` (wants add up to more).
    private static func waterLevel(_ wants: [Double], capacity: Double) -> Double {
        let sorted = wants.sorted()
        var left = capacity
        for (index, want) in sorted.enumerated() {
            let even = left / Double(sorted.count - index)
            if want >= even { return even }
            left -= want
        }
        return sorted.last ?? 0
    }

    /// The whole units ``apportion(_:capacity:agents:)`` gives the share at `index`, found by
    /// counting the shares ranked before it instead of sorting them all; nil when the shares
    /// round to more than `capacity` (capacities beyond 2^53), which only the whole
    /// apportionment settles.
    private static func apportioned(
        _ index: Int, _ shares: [Double], capacity: Int, agents: some Collection<String>
    ) -> Int? {
        var left = capacity
        for share in shares { left -= Int(share.rounded(.down)) }
        guard left >= 0 else { return nil }
        let whole = Int(shares[index].rounded(.down))
        let remainder = shares[index] - shares[index].rounded(.down)
        let name = agents[agents.index(agents.startIndex, offsetBy: index)]
        var rank = 0
        for (other, agent) in zip(shares.indices, agents) where other != index {
            let otherRemainder = shares[other] - shares[other].rounded(.down)
            // The order of a stable sort by remainder (larger first), then by name.
            if otherRemainder != remainder ? otherRemainder > remainder : agent != name ? agent < name : other < index {
                rank += 1
            }
        }
        // The units left over go round the ranked shares, one each, as often as they last.
        return whole + left / shares.count + (rank < left % shares.count ? 1 : 0)
    }

    /// Whole units summing to `capacity`: each share rounded down, then the units left over
    /// go to the largest remainders (ties by agent name, so the answer is repeatable).
    private static func apportion(_ shares: [Double], capacity: Int, agents: [String]) -> [String: Int] {
        var whole = shares.map { Int($0.rounded(.down)) }
        var left = capacity - whole.reduce(0, +)
        // Capacities beyond 2^53 (spend in pico-USD) lose precision as doubles: never hand
        // out more than there is.
        while left < 0, let largest = whole.indices.max(by: { whole[$0] < whole[$1] }), whole[largest] > 0 {
            let taken = min(whole[largest], -left)
            whole[largest] -= taken
            left += taken
        }
        let order = shares.indices.sorted { left, right in
            let a = shares[left] - shares[left].rounded(.down)
            let b = shares[right] - shares[right].rounded(.down)
            return a != b ? a > b : agents[left] < agents[right]
        }
        var position = 0
        while left > 0, !order.isEmpty {
            whole[order[position % order.count]] += 1
            left -= 1
            position += 1
        }
        var result: [String: Int] = [:]
        for (index, agent) in agents.enumerated() { result[agent, default: 0] += whole[index] }
        return result
    }
}

/// What an agent enforces for a fleet-wide limit it holds no valid lease for (before its
/// first lease, or when one expired because the control plane could not be reached).
public enum LeaseFallback: Sendable, Equatable {
    /// This fraction of the fleet limit (0 < fraction ≤ 1), at least 1 per minute.
    case fraction(Double)
    /// Nothing: calls under the limit are refused until a lease arrives.
    case zero
    /// No limit at all on this agent.
    case unlimited

    /// What an agent without a lease enforces when it knows how many other agents hold one:
    /// for `fraction`, an even share among them and itself (the whole limit for the first
    /// agent, a half beside one other) instead of the fixed fraction, so a new or scaled-up
    /// agent neither drops to a tenth nor takes more than its part. `zero` and `unlimited`
    /// are what the operator chose and stay.
    public func fairShare(amongActiveAgents active: Int?) -> LeaseFallback {
        guard case .fraction = self, let active, active >= 0 else { return self }
        return .fraction(1 / Double(active + 1))
    }

    /// The local cap for a fleet budget of `budget`, or nil for no cap.
    public func spendCap(forBudget budget: Cost) -> Cost? {
        switch self {
        case .fraction(let fraction): Cost(picoUSD: Int64((Double(budget.picoUSD) * fraction).rounded(.down)))
        case .zero: .zero
        case .unlimited: nil
        }
    }

    /// The local cap on this agent's own count in a window for a fleet quota of `limit`
    /// (requests per day), or nil for no cap: rounded down like a budget, since a fleet
    /// quota is not a rate and may be small.
    public func countCap(forQuota limit: Int) -> Int? {
        switch self {
        case .fraction(let fraction): Int((Double(limit) * fraction).rounded(.down))
        case .zero: 0
        case .unlimited: nil
        }
    }

    /// The per-minute capacity for a fleet limit of `limit`, or nil for no limit.
    public func capacity(forLimit limit: Int) -> Int? {
        switch self {
        case .fraction(let fraction): max(1, Int((Double(limit) * fraction).rounded(.down)))
        case .zero: 0
        case .unlimited: nil
        }
    }
}

/// The limits that are shared by the fleet and split by leases, on named scopes (keys,
/// projects, teams, services, models): requests and tokens per minute (a share of the rate)
/// and requests per day and daily and monthly spend (a share of what the fleet has left in
/// the window). End users' limits and parallel calls are not leased.
public enum FleetLimits {
    public static let leasedKinds: Set<Scope.Kind> = [.key, .project, .team, .service, .model]

    /// One agent's hold on each fleet-wide limit of a scope: nil where it holds no lease.
    public struct Shares: Sendable, Equatable {
        public var requestsPerMinute: Int?
        public var tokensPerMinute: Int?
        /// Bucket sizes below the rate, when the control plane trimmed them.
        public var requestBurst: Int?
        public var tokenBurst: Int?
        /// The most requests this agent may have admitted in the current day.
        public var dailyRequestCap: Int?
        /// The most this agent may have spent in the current day (its own spend when the
        /// lease was granted, plus the amount granted).
        public var dailySpendCap: Cost?
        public var monthlySpendCap: Cost?

        public init(
            requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, requestBurst: Int? = nil,
            tokenBurst: Int? = nil, dailyRequestCap: Int? = nil, dailySpendCap: Cost? = nil,
            monthlySpendCap: Cost? = nil
        ) {
            self.requestsPerMinute = requestsPerMinute
            self.tokensPerMinute = tokensPerMinute
            self.requestBurst = requestBurst
            self.tokenBurst = tokenBurst
            self.dailyRequestCap = dailyRequestCap
            self.dailySpendCap = dailySpendCap
            self.monthlySpendCap = monthlySpendCap
        }
    }

    /// `limits` as one agent enforces it: its leased shares where it holds them, the
    /// fallback for the rest (`rateFallback` for rates, when it differs).
    public static func local(
        _ limits: Limits, shares: Shares, fallback: LeaseFallback, rateFallback: LeaseFallback? = nil
    ) -> Limits {
        var local = limits
        let rates = rateFallback ?? fallback
        if let rpm = limits.requestsPerMinute {
            local.requestsPerMinute = shares.requestsPerMinute ?? rates.capacity(forLimit: rpm)
            local.requestBurst = shares.requestsPerMinute == nil ? nil : shares.requestBurst
        }
        if let tpm = limits.tokensPerMinute {
            local.tokensPerMinute = shares.tokensPerMinute ?? rates.capacity(forLimit: tpm)
            local.tokenBurst = shares.tokensPerMinute == nil ? nil : shares.tokenBurst
        }
        if let perDay = limits.requestsPerDay {
            local.requestsPerDay = shares.dailyRequestCap ?? fallback.countCap(forQuota: perDay)
        }
        if let daily = limits.dailySpend {
            local.dailySpend = shares.dailySpendCap ?? fallback.spendCap(forBudget: daily)
        }
        if let monthly = limits.monthlySpend {
            local.monthlySpend = shares.monthlySpendCap ?? fallback.spendCap(forBudget: monthly)
        }
        return local
    }
}
