import ArgumentParser
import Foundation

/// The `sluice` command: the control plane's admin API from a shell.
@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Manage Sluice's control plane: teams, projects, services, models, keys, settings and usage.",
        discussion: "Set SLUICE_URL (default http://127.0.0.1:8080) and SLUICE_ADMIN_TOKEN.",
        subcommands: [Teams.self, Projects.self, Services.self, Models.self, Keys.self, Usage.self, Apply.self])
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
        guard let format = OutputFormat(rawValue: output) else { throw ValidationError("--output must be table or json") }
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
    @Option(name: .customLong("rpd"), help: "Requests per day.") var requestsPerDay: Int?
    @Option(help: "Calls in flight at once.") var maxParallel: Int?
    @Option(help: "Daily budget in USD.") var dailyBudget: Double?
    @Option(help: "Monthly budget in USD.") var monthlyBudget: Double?

    var json: [String: Any]? {
        var limits: [String: Any] = [:]
        if let rpm { limits["requests_per_minute"] = rpm }
        if let tpm { limits["tokens_per_minute"] = tpm }
        if let requestsPerDay { limits["requests_per_day"] = requestsPerDay }
        if let maxParallel { limits["max_parallel_requests"] = maxParallel }
        if let dailyBudget { limits["daily_spend_usd"] = dailyBudget }
        if let monthlyBudget { limits["monthly_spend_usd"] = monthlyBudget }
        return limits.isEmpty ? nil : limits
    }
}

func jsonBody(_ object: [String: Any]) throws -> Data {
    try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
}

func list(_ text: String?) -> [String]? {
    text.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
}
