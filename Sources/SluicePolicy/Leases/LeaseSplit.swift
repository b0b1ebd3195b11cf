/// How a fleet-wide per-minute limit is shared among the agents enforcing it.
///
/// Each active agent first gets a floor, so a quiet agent is never starved by busy ones:
/// a percentage of an even split, but no more than its demand plus a quarter (a floor it
/// does not use would be capacity nobody gets) and no less than a tenth of the full floor
/// (so an idle agent can serve its next calls before its next renewal). What is left goes
/// to the agents in proportion to their demand beyond their floor. When the fleet wants
/// less than the limit, every agent gets its demand and the spare is split evenly, as
/// headroom for bursts. Shares are whole units and add up to exactly the capacity: never
/// more than the limit leaves the control plane.
public enum LeaseSplit {
    /// One agent's demand for a limit, in units per minute (admitted plus refused).
    public struct Claim: Sendable, Equatable {
        public var agent: String
        public var demand: Double

        public init(agent: String, demand: Double) {
            self.agent = agent
            self.demand = demand
        }
    }

    /// Shares of `capacity` for `claims`, by agent. `minimumPercent` of an even split is
    /// every agent's floor (0 to 100).
    public static func split(capacity: Int, claims: [Claim], minimumPercent: Int) -> [String: Int] {
        guard !claims.isEmpty, capacity > 0 else {
            return Dictionary(claims.map { ($0.agent, 0) }, uniquingKeysWith: { first, _ in first })
        }
        let total = Double(capacity)
        let count = Double(claims.count)
        let fullFloor = total / count * Double(min(100, max(0, minimumPercent))) / 100
        let demands = claims.map { $0.demand.isFinite ? max(0, $0.demand) : 0 }
        let floors = demands.map { min(fullFloor, max($0 * 1.25, fullFloor / 10)) }
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
/// and daily and monthly spend (a share of what the fleet has left in the window). End
/// users' limits, requests per day and parallel calls are not leased.
public enum FleetLimits {
    public static let leasedKinds: Set<Scope.Kind> = [.key, .project, .team, .service, .model]

    /// One agent's hold on each fleet-wide limit of a scope: nil where it holds no lease.
    public struct Shares: Sendable, Equatable {
        public var requestsPerMinute: Int?
        public var tokensPerMinute: Int?
        /// The most this agent may have spent in the current day (its own spend when the
        /// lease was granted, plus the amount granted).
        public var dailySpendCap: Cost?
        public var monthlySpendCap: Cost?

        public init(
            requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, dailySpendCap: Cost? = nil,
            monthlySpendCap: Cost? = nil
        ) {
            self.requestsPerMinute = requestsPerMinute
            self.tokensPerMinute = tokensPerMinute
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
        }
        if let tpm = limits.tokensPerMinute {
            local.tokensPerMinute = shares.tokensPerMinute ?? rates.capacity(forLimit: tpm)
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
