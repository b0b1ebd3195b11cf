import ArgumentParser
import Foundation

/// The `sluice` command: the control plane's admin API from a shell.
@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract:
            "Manage Sluice's control plane: teams, projects, services, models, keys, end users, settings and usage.",
        discussion: "Set SLUICE_URL (default http://127.0.0.1:8080) and SLUICE_ADMIN_TOKEN.",
        subcommands: [
            Teams.self, Projects.self, Services.self, Models.self, Keys.self, EndUsers.self, Agents.self,
            Settings.self, Usage.self, Audit.self, Apply.self, Export.self,
        ])
}

struct Connection: ParsableArguments {
    @Option(help: "The control plane's URL (otherwise SLUICE_URL).")
    var url: String?

    @Option(help: "A file holding the admin token (otherwise SLUICE_ADMIN_TOKEN).")
    var tokenFile: String?

    @Option(help: "table or json.")
    var output: String = "table"

    func client() throws -> AdminClient { try AdminClient.fromEnvironment(url: url, tokenFile: tokenFile) }

    func format() throws -> OutputFormat {
        guard let format = OutputFormat(rawValue: output) else {
            throw ValidationError("--output must be table or json")
        }
        return format
    }
}

/// Runs `body`, printing a failure as one line on stderr with exit status 1.
func perform(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let failure as AdminClient.Failure {
        FileHandle.standardError.write(Data("sluice: \(failure.description)\n".utf8))
        throw ExitCode(1)
    }
}

/// `--limit-style` options shared by every command that sets limits.
struct LimitOptions: ParsableArguments {
    @Option(help: "Requests per minute.") var rpm: Int?
    @Option(help: "Tokens per minute.") var tpm: Int?
    @Option(
        name: .customLong("rpd"), help: "Requests per day, shared by the fleet (each agent holds a leased share).")
    var requestsPerDay: Int?
    @Option(help: "Calls in flight at once, on each agent (not shared by the fleet).") var maxParallel: Int?
    @Option(help: "Daily budget in USD.") var dailyBudget: Double?
    @Option(help: "Monthly budget in USD.") var monthlyBudget: Double?
    @Option(help: "enforce, or alert: budgets and the daily quota are alerted on, never enforced (docs/alerts.md).")
    var mode: String?
    @Option(help: "Post a notice when spend crosses this percentage of a budget (1 to 100).")
    var softBudgetPercent: Int?
    @Option(
        help: ArgumentHelp(
            "A spike alert, as metric=spend|requests,factor=N[,window_hours=H][,baseline_hours=H][,minimum=X].",
            valueName: "fields"))
    var spike: String?

    var json: [String: Any]? {
        var limits: [String: Any] = [:]
        if let rpm { limits["requests_per_minute"] = rpm }
        if let tpm { limits["tokens_per_minute"] = tpm }
        if let requestsPerDay { limits["requests_per_day"] = requestsPerDay }
        if let maxParallel { limits["max_parallel_requests"] = maxParallel }
        if let dailyBudget { limits["daily_spend_usd"] = dailyBudget }
        if let monthlyBudget { limits["monthly_spend_usd"] = monthlyBudget }
        if let mode { limits["mode"] = mode }
        if let softBudgetPercent { limits["soft_budget_percent"] = softBudgetPercent }
        if let spike { limits["spike"] = Self.fields(spike) }
        return limits.isEmpty ? nil : limits
    }

    /// `name=value,…` as a JSON object: numbers as numbers, the rest as strings. The
    /// control plane checks the names and values, and names the field it refuses.
    static func fields(_ text: String) -> [String: Any] {
        var object: [String: Any] = [:]
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            let value = pair.count == 2 ? pair[1] : ""
            object[pair[0]] = Double(value).map { $0 == $0.rounded() && abs($0) < 1e15 ? Int($0) as Any : $0 } ?? value
        }
        return object
    }
}

/// What an `update` changes: the fields given, and `--clear NAME` for each field to clear,
/// sent as a JSON merge patch (`null` clears).
struct ClearOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Clear a setting (rpm, tpm, rpd, max-parallel, daily-budget, monthly-budget, limits, models, deny,"
                + " …); repeat for more.")
    )
    var clear: [String] = []

    /// `--clear NAME` → the field it sets to null, for every entity with limits and model lists.
    static let common: [String: String] = [
        "rpm": "limits.requests_per_minute", "tpm": "limits.tokens_per_minute", "rpd": "limits.requests_per_day",
        "max-parallel": "limits.max_parallel_requests", "daily-budget": "limits.daily_spend_usd",
        "monthly-budget": "limits.monthly_spend_usd", "limits": "limits", "models": "allowed_models",
        "deny": "denied_models", "mode": "limits.mode", "soft-budget-percent": "limits.soft_budget_percent",
        "spike": "limits.spike",
    ]

    /// Sets every cleared field of `body` to null; an unknown name is an error listing the known ones.
    func apply(to body: inout [String: Any], fields: [String: String] = Self.common) throws {
        for name in clear {
            guard let field = fields[name] else {
                throw ValidationError(
                    "--clear takes one of \(fields.keys.sorted().joined(separator: ", ")), not \(name)")
            }
            if field.hasPrefix("limits.") {
                var limits = body["limits"] as? [String: Any] ?? [:]
                limits[String(field.dropFirst("limits.".count))] = NSNull()
                body["limits"] = limits
            } else {
                body[field] = NSNull()
            }
        }
    }
}

/// An update's merge patch from its options. `--models ''` clears the allowlist (any model),
/// never "no model at all"; `--deny ''` empties the denylist; limits given are merged into
/// the stored ones. `fields` are the entity's own other changes.
func patchBody(
    _ fields: [String: Any] = [:], models: String?, deny: String?, limits: LimitOptions,
    clear: ClearOptions, clearable: [String: String] = ClearOptions.common
) throws -> [String: Any] {
    var body = fields
    if let allowed = list(models) { body["allowed_models"] = allowed.isEmpty ? NSNull() : allowed }
    if let denied = list(deny) { body["denied_models"] = denied }
    if let limits = limits.json { body["limits"] = limits }
    try clear.apply(to: &body, fields: clearable)
    guard !body.isEmpty else { throw ValidationError("nothing to change: give a setting or --clear") }
    return body
}

func jsonBody(_ object: [String: Any]) throws -> Data {
    try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
}

func list(_ text: String?) -> [String]? {
    text.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
}
