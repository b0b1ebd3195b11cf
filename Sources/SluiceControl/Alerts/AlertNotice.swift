import Foundation
import SluiceWire

/// What an alert webhook receives: which scope crossed which rule, by how much, in which
/// window. Fields that do not apply to an event are left out.
///
/// Events: `soft_budget_reached`, `budget_exhausted` (enforced: agents now refuse the
/// scope), `budget_exceeded` (`mode: alert`: counted, never refused), `quota_exceeded`
/// (an alert-only `requests_per_day`), and `spike`.
public struct AlertNotice: Codable, Sendable, Equatable {
    public var event: String
    public var scopeKind: String
    public var scope: String
    /// The rule: `daily_spend_usd`, `monthly_spend_usd`, `requests_per_day`, or `spike`.
    public var limit: String
    /// `enforce` or `alert`.
    public var mode: String
    public var budgetUSD: Double?
    public var spentUSD: Double?
    public var percent: Int?
    public var quota: Int64?
    public var requests: Int64?
    /// A spike's metric (`spend` or `requests`), the window's value, the baseline's average
    /// per window, and the factor it was held to.
    public var metric: String?
    public var value: Double?
    public var baseline: Double?
    public var factor: Double?
    public var windowStart: Int64
    public var windowEnd: Int64

    public init(
        event: String, scopeKind: String, scope: String, limit: String, mode: LimitMode, windowStart: Int64,
        windowEnd: Int64
    ) {
        self.event = event
        self.scopeKind = scopeKind
        self.scope = scope
        self.limit = limit
        self.mode = mode.rawValue
        self.windowStart = windowStart
        self.windowEnd = windowEnd
    }

    enum CodingKeys: String, CodingKey {
        case event
        case scopeKind = "scope_kind"
        case scope, limit, mode
        case budgetUSD = "budget_usd"
        case spentUSD = "spent_usd"
        case percent, quota, requests, metric, value, baseline, factor
        case windowStart = "window_start"
        case windowEnd = "window_end"
    }

    /// Names the notice across replicas: one post per scope, rule, event and window.
    var key: String { "\(event):\(scopeKind):\(scope):\(limit):\(windowStart)" }

    /// One line for a chat channel (the `slack` format).
    var text: String {
        let who = "\(scopeKind) `\(scope)`"
        let observed = mode == LimitMode.alert.rawValue ? " (alert only, not enforced)" : ""
        switch event {
        case "soft_budget_reached":
            return "Sluice: \(who) has spent \(dollars(spentUSD)) of its \(dollars(budgetUSD)) \(period) budget"
                + " (\(percent ?? 0) %)"
        case "budget_exhausted":
            return "Sluice: \(who) has spent its \(dollars(budgetUSD)) \(period) budget (\(dollars(spentUSD)));"
                + " its calls are refused until the window ends"
        case "budget_exceeded":
            return "Sluice: \(who) is over its \(dollars(budgetUSD)) \(period) budget at \(dollars(spentUSD))"
                + " (\(percent ?? 0) %)\(observed)"
        case "quota_exceeded":
            return "Sluice: \(who) has made \(requests ?? 0) requests today, over its quota of \(quota ?? 0)\(observed)"
        case "spike":
            let shown = metric == "spend" ? dollars(value) : "\(Int64(value ?? 0)) requests"
            let usual = metric == "spend" ? dollars(baseline) : String(format: "%.1f requests", baseline ?? 0)
            let hours = (windowEnd - windowStart + 3599) / 3600
            return "Sluice: \(who) \(metric == "spend" ? "spend" : "traffic") spike: \(shown) in \(hours) h,"
                + " more than \(factor.map { String(format: "%g", $0) } ?? "?")× its usual \(usual)"
        default:
            return "Sluice: \(event) for \(who)"
        }
    }

    private var period: String { limit == "monthly_spend_usd" ? "monthly" : "daily" }

    private func dollars(_ amount: Double?) -> String { String(format: "$%.2f", amount ?? 0) }
}
