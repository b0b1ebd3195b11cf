import SluicePolicy

/// Whether a scope's limits are enforced by agents or only observed by the control plane.
public enum LimitMode: String, Sendable, CaseIterable {
    case enforce
    /// Observed only: counted, alerted on, never refused.
    case alert
}

/// A spike alert: the control plane posts a notice when a scope's spend or request count
/// over the last `window_hours` (the current hour included) is above `factor` times its
/// average per window over the `baseline_hours` before, and at least `minimum`.
public struct SpikeRuleDocument: Codable, Sendable, Equatable {
    /// `spend` (US dollars) or `requests`.
    public var metric: String
    public var factor: Double
    public var windowHours: Int
    public var baselineHours: Int
    /// The least a window must reach to count as a spike, in the metric's unit; nil is the
    /// metric's default (``defaultMinimum``), so a scope waking from nothing is not a spike.
    public var minimum: Double?

    public static let metrics = ["spend", "requests"]

    public init(
        metric: String, factor: Double, windowHours: Int = 1, baselineHours: Int = 24,
        minimum: Double? = nil
    ) {
        self.metric = metric
        self.factor = factor
        self.windowHours = windowHours
        self.baselineHours = baselineHours
        self.minimum = minimum
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case metric, factor
        case windowHours = "window_hours"
        case baselineHours = "baseline_hours"
        case minimum
    }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            metric: try container.decode(String.self, forKey: .metric),
            factor: try container.decode(Double.self, forKey: .factor),
            windowHours: try container.decodeIfPresent(Int.self, forKey: .windowHours) ?? 1,
            baselineHours: try container.decodeIfPresent(Int.self, forKey: .baselineHours) ?? 24,
            minimum: try container.decodeIfPresent(Double.self, forKey: .minimum))
    }

    /// One US dollar of spend, or 100 requests, in the window.
    public var defaultMinimum: Double { metric == "spend" ? 1 : 100 }

    func validate(at path: String) throws(WireError) {
        guard Self.metrics.contains(metric) else {
            throw WireError("\(path).metric must be spend or requests")
        }
        guard factor.isFinite, factor > 1, factor <= 1000 else {
            throw WireError("\(path).factor must be more than 1 and at most 1000")
        }
        guard (1...24).contains(windowHours) else {
            throw WireError("\(path).window_hours must be 1 to 24")
        }
        guard (windowHours...720).contains(baselineHours) else {
            throw WireError("\(path).baseline_hours must be from window_hours (\(windowHours)) to 720")
        }
        if let minimum, !(minimum.isFinite && minimum >= 0 && minimum <= 1e12) {
            throw WireError("\(path).minimum must be a non-negative number")
        }
    }
}

extension LimitsDocument {
    /// The checks on `mode`, `soft_budget_percent` and `spike`: part of the one compiler, so
    /// the admin API refuses what agents would, with the field's path.
    func checkAlerting(at path: String, alerting: Bool) throws(WireError) {
        let named: [(String, Bool)] = [
            ("mode", mode != nil), ("soft_budget_percent", softBudgetPercent != nil),
            ("spike", spike != nil),
        ]
        if !alerting, let field = named.first(where: \.1)?.0 {
            throw WireError("\(path).\(field) applies to teams, projects, keys and services only")
        }
        if let mode, LimitMode(rawValue: mode) == nil {
            throw WireError("\(path).mode must be enforce or alert")
        }
        if let percent = softBudgetPercent {
            guard (1...100).contains(percent) else {
                throw WireError("\(path).soft_budget_percent must be 1 to 100")
            }
            guard dailySpendUSD != nil || monthlySpendUSD != nil else {
                throw WireError("\(path).soft_budget_percent needs daily_spend_usd or monthly_spend_usd")
            }
        }
        try spike?.validate(at: "\(path).spike")
        guard isAlertOnly else { return }
        // An agent enforces rates from its own buckets and reports none of them, so the
        // control plane could never see a rate crossed: refusing says so, where accepting
        // would promise an alert that never comes.
        for (field, value) in [
            ("requests_per_minute", requestsPerMinute), ("tokens_per_minute", tokensPerMinute),
            ("max_parallel_requests", maxParallelRequests),
        ] where value != nil {
            throw WireError(
                "\(path).\(field) cannot be alert-only: rates are seen only by each agent; use spike for a rate alert"
            )
        }
    }

    /// A write's `mode: alert` with nothing to observe: the scope would escape every limit,
    /// defaults included, with no alert to show for it. Checked where the admin writes, not
    /// in the compiler: bundles leave `spike` out, so an agent may see `mode` alone.
    static func alertProblems(_ limits: LimitsDocument?) -> [AdmissionProblem] {
        guard let limits, limits.isAlertOnly,
            limits.dailySpendUSD == nil, limits.monthlySpendUSD == nil, limits.requestsPerDay == nil,
            limits.spike == nil
        else { return [] }
        return [
            AdmissionProblem(
                path: "limits.mode",
                message:
                    "alert needs daily_spend_usd, monthly_spend_usd, requests_per_day or spike to observe")
        ]
    }
}

extension PolicyDocument {
    /// The document as agents are sent it: every scope's `soft_budget_percent` and `spike`
    /// left out (only the control plane reads them), so bundles that use them still read
    /// to agents that predate them. `mode` stays: agents must know not to enforce.
    public func forAgents() -> PolicyDocument {
        var document = self
        for index in document.teams.indices {
            document.teams[index].limits = document.teams[index].limits?.forAgents
        }
        for index in document.projects.indices {
            document.projects[index].limits = document.projects[index].limits?.forAgents
        }
        for index in document.services.indices {
            document.services[index].limits = document.services[index].limits?.forAgents
        }
        for index in document.keys.indices {
            document.keys[index].limits = document.keys[index].limits?.forAgents
        }
        return document
    }
}
