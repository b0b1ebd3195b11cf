/// The limits one scope (a key, project, team, service, end user or model) is held to.
/// A nil field is no limit. Every call must fit every limit of every scope it touches.
public struct Limits: Sendable, Hashable {
    public var requestsPerMinute: Int?
    public var tokensPerMinute: Int?
    public var requestsPerDay: Int?
    public var maxParallelRequests: Int?
    /// Spend per calendar day in the policy's time zone.
    public var dailySpend: Cost?
    /// Spend per calendar month in the policy's time zone.
    public var monthlySpend: Cost?
    /// How many requests the bucket may hold when that is less than `requestsPerMinute`: a
    /// leased share whose burst the control plane trimmed because other agents still hold
    /// what they were granted before. Never set by configuration.
    public var requestBurst: Int?
    /// The same for `tokensPerMinute`.
    public var tokenBurst: Int?
    /// The scope's limits are observed and alerted on by the control plane, never enforced
    /// (`mode: alert`): no value above is set, yet the scope counts as limited, so a key's
    /// defaults do not step in for what its administrator chose to leave unenforced.
    public var alertOnly: Bool

    public init(
        requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, requestsPerDay: Int? = nil,
        maxParallelRequests: Int? = nil, dailySpend: Cost? = nil, monthlySpend: Cost? = nil, alertOnly: Bool = false
    ) {
        self.alertOnly = alertOnly
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.requestsPerDay = requestsPerDay
        self.maxParallelRequests = maxParallelRequests
        self.dailySpend = dailySpend
        self.monthlySpend = monthlySpend
    }

    public static let none = Limits()

    public var isEmpty: Bool { self == .none }

    /// Has a spend budget, so a call to an unpriced model cannot be held to it.
    public var hasSpendLimit: Bool { dailySpend != nil || monthlySpend != nil }

    /// Fields set here win; the rest come from `other`. Used to fold `rate_limits` shorthand
    /// into a scope's own `limits`.
    public func overlaid(on other: Limits) -> Limits {
        Limits(
            requestsPerMinute: requestsPerMinute ?? other.requestsPerMinute,
            tokensPerMinute: tokensPerMinute ?? other.tokensPerMinute,
            requestsPerDay: requestsPerDay ?? other.requestsPerDay,
            maxParallelRequests: maxParallelRequests ?? other.maxParallelRequests,
            dailySpend: dailySpend ?? other.dailySpend,
            monthlySpend: monthlySpend ?? other.monthlySpend)
    }
}

/// Which of a scope's limits a decision is about. The raw value is the configuration name,
/// which is also what denials and metrics call it.
public enum LimitKind: String, Sendable, CaseIterable {
    case requestsPerMinute = "requests_per_minute"
    case tokensPerMinute = "tokens_per_minute"
    case requestsPerDay = "requests_per_day"
    case maxParallelRequests = "max_parallel_requests"
    case dailySpend = "daily_spend_usd"
    case monthlySpend = "monthly_spend_usd"
}

/// Why a limit written in configuration was refused.
public struct LimitParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Limits {
    /// Parses the request-rate shorthand of LiteLLM-style seed files: `200` (per minute),
    /// `200/min`, `200/minute`, `1000/day`, `1000/d`. Whitespace around the parts is allowed.
    public static func parseRate(_ text: String) throws(LimitParseError) -> Limits {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let count = Int(parts[0].trimmingSpaces), count > 0 else {
            throw LimitParseError(
                "\"\(text.prefix(40))\" is not a rate: use N, N/min or N/day with N a positive whole number")
        }
        guard parts.count == 2 else { return Limits(requestsPerMinute: count) }
        switch parts[1].trimmingSpaces.lowercased() {
        case "m", "min", "minute": return Limits(requestsPerMinute: count)
        case "d", "day": return Limits(requestsPerDay: count)
        default:
            throw LimitParseError("\"\(text.prefix(40))\" has an unknown period: use /min or /day")
        }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var result = self
        while result.first == " " { result.removeFirst() }
        while result.last == " " { result.removeLast() }
        return result
    }
}
