import SluicePolicy

/// LiteLLM's `max_budget` + `budget_duration` as the Sluice budget it is: a daily or a
/// monthly spend limit, nothing else. The agent's LiteLLM config loader and the control
/// plane's LiteLLM admin API both read budgets through this, so the two accept the same
/// durations and refuse the rest with the same reason.
public enum LiteLLMBudget {
    /// The limits holding `budget` (USD) for `duration`; throws, saying why, for a lifetime
    /// budget (no duration) or a period Sluice does not reset on.
    public static func limits(_ budget: Double, duration: String?) throws(WireError) -> LimitsDocument {
        guard let duration else {
            throw WireError(
                "max_budget: without budget_duration it is a lifetime budget, which Sluice does not keep;"
                    + " give budget_duration 1d (daily) or 30d / 1mo (monthly)")
        }
        switch duration {
        case "1d", "24h": return LimitsDocument(dailySpendUSD: budget)
        case "30d", "1mo", "31d": return LimitsDocument(monthlySpendUSD: budget)
        default:
            throw WireError(
                "budget_duration: \(Identifier.quoted(duration)) is not a budget Sluice keeps; budgets reset daily"
                    + " (1d) or monthly (30d, 1mo) in settings.time_zone")
        }
    }
}
