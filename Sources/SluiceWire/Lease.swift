/// An agent's lease renewal (`POST /v1/agent/leases`), sent once per flush cycle: its
/// demand for every fleet-wide limit it has seen calls under or holds a share of.
public struct LeaseRequest: Codable, Sendable, Equatable {
    /// Tells apart pods that share an agent id (the spool's epoch).
    public var instance: String
    public var demands: [LeaseDemand]

    public init(instance: String, demands: [LeaseDemand]) {
        self.instance = instance
        self.demands = demands
    }

    /// Refuses a request outside the wire format's bounds, naming the field.
    public func validate() throws(WireError) {
        guard !instance.isEmpty, instance.utf8.count <= 100 else { throw WireError("instance must be 1 to 100 bytes") }
        guard demands.count <= 10_000 else { throw WireError("a renewal holds at most 10000 demands") }
        for (index, demand) in demands.enumerated() {
            guard let limit = LeaseLimit(rawValue: demand.limit) else {
                throw WireError(
                    "demands[\(index)].limit must be requests_per_minute, tokens_per_minute,"
                        + " requests_per_day, daily_spend or monthly_spend"
                )
            }
            guard demand.perMinute.isFinite, demand.perMinute >= 0 else {
                throw WireError("demands[\(index)].per_minute must be a non-negative number")
            }
            guard demand.scope.utf8.count <= 200, demand.scopeKind.utf8.count <= 20 else {
                throw WireError("demands[\(index)].scope is longer than 200 bytes")
            }
            guard (0...(limit.isSpend ? Int(Int64.max / 2) : 1_000_000_000)).contains(demand.limitValue) else {
                throw WireError("demands[\(index)].limit_value is out of range")
            }
            if let own = demand.ownSpent, !(0...Int(Int64.max / 2)).contains(own) {
                throw WireError("demands[\(index)].own_spent is out of range")
            }
            if let held = demand.held, !(0...1_000_000_000).contains(held) {
                throw WireError("demands[\(index)].held is out of range")
            }
        }
    }
}

/// The limits leases split: rates (a share per minute) and quotas of a calendar window
/// (requests per day, and budgets in pico-USD: a share of what the fleet has left in the
/// window).
public enum LeaseLimit: String, Sendable, CaseIterable {
    case requestsPerMinute = "requests_per_minute"
    case tokensPerMinute = "tokens_per_minute"
    case requestsPerDay = "requests_per_day"
    case dailySpend = "daily_spend"
    case monthlySpend = "monthly_spend"

    public var isSpend: Bool { self == .dailySpend || self == .monthlySpend }
    /// A quota of a calendar window: its share is a cap on the agent's own use in the window.
    public var isQuota: Bool { isSpend || self == .requestsPerDay }
    /// Whether the window is the day (else the month).
    public var isDaily: Bool { self == .dailySpend || self == .requestsPerDay }
}

/// Demand for one limit of one scope, per minute (admitted and refused alike): requests,
/// tokens, or estimated pico-USD for a budget.
public struct LeaseDemand: Codable, Sendable, Equatable {
    public var scopeKind: String
    public var scope: String
    public var limit: String
    public var perMinute: Double
    /// The fleet limit as this agent's policy states it. The control plane splits the
    /// smallest value its active agents report, so a policy change being rolled out never
    /// grants more than either version allows.
    public var limitValue: Int
    /// For a quota: what this agent has used in the current window (pico-USD for a budget,
    /// requests for requests per day), calls in flight included.
    public var ownSpent: Int?
    /// For a rate: what this agent's bucket holds now, in whole requests or tokens. A bucket
    /// keeps what it holds when its share shrinks, so the control plane trims the others'
    /// bursts until it is spent.
    public var held: Int?

    public init(
        scopeKind: String, scope: String, limit: String, perMinute: Double, limitValue: Int, ownSpent: Int? = nil,
        held: Int? = nil
    ) {
        self.scopeKind = scopeKind
        self.scope = scope
        self.limit = limit
        self.perMinute = perMinute
        self.limitValue = limitValue
        self.ownSpent = ownSpent
        self.held = held
    }

    enum CodingKeys: String, CodingKey {
        case scopeKind = "scope_kind"
        case scope, limit
        case perMinute = "per_minute"
        case limitValue = "limit_value"
        case ownSpent = "own_spent"
        case held
    }
}

/// This agent's share of one fleet-wide limit, valid for `validSeconds` from when the agent
/// receives it (a duration rather than a time, so clocks need not agree). `perMinute` is a
/// rate for requests and tokens; for a quota it is the most this agent may have used in
/// the current window (pico-USD, or requests), its own use included.
public struct LeaseGrant: Codable, Sendable, Equatable {
    public var scopeKind: String
    public var scope: String
    public var limit: String
    public var perMinute: Int
    public var validSeconds: Int
    /// For a rate: the most this agent's bucket may fill to, when less than `perMinute`
    /// (other agents still hold part of the limit in their buckets). Absent: `perMinute`.
    public var burst: Int?

    public init(scopeKind: String, scope: String, limit: String, perMinute: Int, validSeconds: Int, burst: Int? = nil) {
        self.scopeKind = scopeKind
        self.scope = scope
        self.limit = limit
        self.perMinute = perMinute
        self.validSeconds = validSeconds
        self.burst = burst
    }

    enum CodingKeys: String, CodingKey {
        case scopeKind = "scope_kind"
        case scope, limit
        case perMinute = "per_minute"
        case validSeconds = "valid_seconds"
        case burst
    }
}

/// The answer to a renewal: a grant for every demanded limit the policy has.
public struct LeaseAnswer: Codable, Sendable, Equatable {
    public var grants: [LeaseGrant]
    /// Agents sharing each granted limit, by `kind/scope/limit`, for metrics and tests.
    public var activeAgents: [String: Int]

    public init(grants: [LeaseGrant], activeAgents: [String: Int] = [:]) {
        self.grants = grants
        self.activeAgents = activeAgents
    }

    enum CodingKeys: String, CodingKey {
        case grants
        case activeAgents = "active_agents"
    }
}
