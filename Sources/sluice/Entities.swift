import ArgumentParser
import Foundation
import SluicePolicy

struct Teams: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "teams", abstract: "Teams: who spends.",
        subcommands: [Create.self, List.self, Get.self, Update.self, Delete.self])
    static let columns = ["name", "allowed_models", "denied_models", "limits"]

    /// A team's JSON from the command-line options shared by create and update.
    static func body(name: String, models: String?, deny: String?, limits: LimitOptions) -> [String: Any] {
        var body: [String: Any] = ["name": name, "denied_models": list(deny) ?? []]
        if let allowed = list(models) { body["allowed_models"] = allowed }
        if let limits = limits.json { body["limits"] = limits }
        return body
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a team (or replace it with --replace).")
        @Argument var name: String
        @Option(help: "Comma-separated aliases the team may use.") var models: String?
        @Option(help: "Comma-separated aliases the team may not use.") var deny: String?
        @Flag(help: "Replace an existing team instead of failing.") var replace = false
        @OptionGroup var limits: LimitOptions
        @OptionGroup var connection: Connection

        func run() async throws {
            try await perform {
                let body = Teams.body(name: name, models: models, deny: deny, limits: limits)
                let data = try await connection.client().send(
                    replace ? "PUT" : "POST", replace ? "/v1/admin/teams/\(pathSegment(name))" : "/v1/admin/teams",
                    body: try jsonBody(body))
                try Printer.show(data, format: try connection.format(), columns: Teams.columns)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: """
                Change only the settings given (--models '' removes the allowlist; --clear removes a setting). \
                Use create --replace to replace the whole team.
                """)
        @Argument var name: String
        @Option(help: "Comma-separated aliases the team may use.") var models: String?
        @Option(help: "Comma-separated aliases the team may not use.") var deny: String?
        @OptionGroup var limits: LimitOptions
        @OptionGroup var clear: ClearOptions
        @OptionGroup var connection: Connection

        func run() async throws {
            try await perform {
                let data = try await connection.client().send(
                    "PATCH", "/v1/admin/teams/\(pathSegment(name))",
                    body: try jsonBody(try patchBody(models: models, deny: deny, limits: limits, clear: clear)))
                try Printer.show(data, format: try connection.format(), columns: Teams.columns)
            }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/teams"), format: try connection.format(),
                    columns: Teams.columns)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        @Argument var name: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/teams/\(pathSegment(name))"),
                    format: try connection.format(), columns: Teams.columns)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        @Argument var name: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try await connection.client().send("DELETE", "/v1/admin/teams/\(pathSegment(name))")
                print("deleted team \(name)")
            }
        }
    }
}

struct Projects: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projects", abstract: "Projects: a team's applications.",
        subcommands: [Create.self, List.self, Get.self, Update.self, Delete.self])
    static let columns = ["name", "team", "allowed_models", "denied_models", "limits"]

    struct Create: AsyncParsableCommand {
        @Argument var name: String
        @Option(help: "The team it belongs to.") var team: String
        @Option(help: "Comma-separated aliases it may use.") var models: String?
        @OptionGroup var limits: LimitOptions
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                var body: [String: Any] = ["name": name, "team": team]
                if let allowed = list(models) { body["allowed_models"] = allowed }
                if let limits = limits.json { body["limits"] = limits }
                try Printer.show(
                    try await connection.client().send("POST", "/v1/admin/projects", body: try jsonBody(body)),
                    format: try connection.format(), columns: Projects.columns)
            }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/projects"), format: try connection.format(),
                    columns: Projects.columns)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        @Argument var name: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/projects/\(pathSegment(name))"),
                    format: try connection.format(), columns: Projects.columns)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change only the settings given (--models '' removes the allowlist; --clear removes a setting).")
        @Argument var name: String
        @Option(help: "Move the project to this team (its keys must be moved too).") var team: String?
        @Option(help: "Comma-separated aliases it may use.") var models: String?
        @Option(help: "Comma-separated aliases it may not use.") var deny: String?
        @OptionGroup var limits: LimitOptions
        @OptionGroup var clear: ClearOptions
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                let body = try patchBody(
                    team.map { ["team": $0] } ?? [:], models: models, deny: deny, limits: limits, clear: clear)
                let data = try await connection.client().send(
                    "PATCH", "/v1/admin/projects/\(pathSegment(name))", body: try jsonBody(body))
                try Printer.show(data, format: try connection.format(), columns: Projects.columns)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        @Argument var name: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try await connection.client().send("DELETE", "/v1/admin/projects/\(pathSegment(name))")
                print("deleted project \(name)")
            }
        }
    }
}

struct Services: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "services", abstract: "Service identities (namespace/service) and their settings.",
        subcommands: [Set.self, Update.self, List.self, Get.self, Delete.self])
    static let columns = ["name", "keyless", "allowed_models", "denied_models", "limits"]

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or replace a service's settings (all of them: use update to change some).")
        @Argument(help: "namespace/service") var name: String
        @Flag(help: "Callers without a virtual key are served as the service itself.") var keyless = false
        @Option(help: "Comma-separated aliases it may use.") var models: String?
        @OptionGroup var limits: LimitOptions
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                var body: [String: Any] = ["name": name, "keyless": keyless]
                if let allowed = list(models) { body["allowed_models"] = allowed }
                if let limits = limits.json { body["limits"] = limits }
                let client = try connection.client()
                let exists = (try? await client.send("GET", "/v1/admin/services/\(servicePath(name))")) != nil
                let data = try await client.send(
                    exists ? "PUT" : "POST", exists ? "/v1/admin/services/\(servicePath(name))" : "/v1/admin/services",
                    body: try jsonBody(body))
                try Printer.show(data, format: try connection.format(), columns: Services.columns)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change only the settings given (--models '' removes the allowlist; --clear removes a setting).")
        @Argument(help: "namespace/service") var name: String
        @Flag(inversion: .prefixedNo, help: "Whether callers without a virtual key are served as the service itself.")
        var keyless: Bool?
        @Option(help: "Comma-separated aliases it may use.") var models: String?
        @Option(help: "Comma-separated aliases it may not use.") var deny: String?
        @OptionGroup var limits: LimitOptions
        @OptionGroup var clear: ClearOptions
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                let body = try patchBody(
                    keyless.map { ["keyless": $0] } ?? [:], models: models, deny: deny, limits: limits, clear: clear)
                let data = try await connection.client().send(
                    "PATCH", "/v1/admin/services/\(servicePath(name))", body: try jsonBody(body))
                try Printer.show(data, format: try connection.format(), columns: Services.columns)
            }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/services"), format: try connection.format(),
                    columns: Services.columns)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        @Argument(help: "namespace/service") var name: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/services/\(servicePath(name))"),
                    format: try connection.format(), columns: Services.columns)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        @Argument var name: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try await connection.client().send("DELETE", "/v1/admin/services/\(servicePath(name))")
                print("deleted service \(name)")
            }
        }
    }
}

/// An alias's per-token prices, as `models create` and `models update` take them.
struct PriceOptions: ParsableArguments {
    @Option(help: "USD per input token.") var inputCost: Double?
    @Option(help: "USD per output token.") var outputCost: Double?
    @Option(help: "USD per prompt token read from the provider's cache (default: the input price).")
    var cacheReadCost: Double?
    @Option(help: "USD per prompt token written to the provider's cache (default: the input price).")
    var cacheCreationCost: Double?
    @Option(help: "USD per reasoning token, where priced apart (default: the output price).")
    var reasoningCost: Double?

    /// The given prices under their `model_info` names.
    var fields: [String: Any] {
        var fields: [String: Any] = [:]
        if let inputCost { fields["input_cost_per_token"] = inputCost }
        if let outputCost { fields["output_cost_per_token"] = outputCost }
        if let cacheReadCost { fields["cache_read_input_token_cost"] = cacheReadCost }
        if let cacheCreationCost { fields["cache_creation_input_token_cost"] = cacheCreationCost }
        if let reasoningCost { fields["output_cost_per_reasoning_token"] = reasoningCost }
        return fields
    }
}

struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models", abstract: "The model catalog: aliases, deployments and prices.",
        subcommands: [Create.self, List.self, Get.self, Update.self, Delete.self, Import.self])
    static let columns = [
        "alias", "deployments.0.upstream_model", "input_cost_per_token", "output_cost_per_token", "limits",
    ]

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/models"), format: try connection.format(),
                    columns: Models.columns)
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an alias with one deployment.")
        @Argument var alias: String
        @Option(help: "openai (and compatible servers), anthropic, azure or gemini.") var provider = "openai"
        @Option(help: "Upstream base URL (default: the provider's own; azure needs one).") var apiBase: String?
        @Option(help: "The model name the provider knows (for azure: the deployment name).") var upstreamModel: String
        @Option(help: "Environment variable on the agents holding the provider key.") var credentialRef: String?
        @Option(help: "Azure's api-version.") var apiVersion: String?
        @OptionGroup var prices: PriceOptions
        @Option(help: "What a call without max_tokens reserves.") var maxOutputTokens: Int?
        @Flag(help: "Replace an existing alias instead of failing.") var replace = false
        @OptionGroup var connection: Connection

        func run() async throws {
            try await perform {
                guard let dialect = ProviderDialect(rawValue: provider) else {
                    throw ValidationError("--provider must be openai, anthropic, azure or gemini, not \(provider)")
                }
                guard let base = apiBase ?? dialect.defaultAPIBase else {
                    throw ValidationError(
                        "--provider \(provider) needs --api-base (each Azure resource has its own URL)")
                }
                var deployment: [String: Any] = [
                    "provider": provider, "api_base": base, "upstream_model": upstreamModel,
                ]
                if let credentialRef { deployment["credential_ref"] = credentialRef }
                if let apiVersion { deployment["api_version"] = apiVersion }
                var body: [String: Any] = ["alias": alias, "deployments": [deployment]]
                body.merge(prices.fields) { $1 }
                if let maxOutputTokens { body["max_output_tokens"] = maxOutputTokens }
                let data = try await connection.client().send(
                    replace ? "PUT" : "POST", replace ? "/v1/admin/models/\(pathSegment(alias))" : "/v1/admin/models",
                    body: try jsonBody(body))
                try Printer.show(data, format: try connection.format(), columns: Models.columns)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: """
                Change only an alias's prices, output reserve or limits (deployments stay as they are; \
                create --replace replaces them).
                """)
        @Argument var alias: String
        @OptionGroup var prices: PriceOptions
        @Option(help: "What a call without max_tokens reserves.") var maxOutputTokens: Int?
        @OptionGroup var limits: LimitOptions
        @OptionGroup var clear: ClearOptions
        @OptionGroup var connection: Connection

        static let clearable = ClearOptions.common.filter { $0.value.hasPrefix("limits") }.merging([
            "input-cost": "input_cost_per_token", "output-cost": "output_cost_per_token",
            "cache-read-cost": "cache_read_input_token_cost", "cache-creation-cost": "cache_creation_input_token_cost",
            "reasoning-cost": "output_cost_per_reasoning_token", "max-output-tokens": "max_output_tokens",
        ]) { $1 }

        func run() async throws {
            try await perform {
                var fields = prices.fields
                if let maxOutputTokens { fields["max_output_tokens"] = maxOutputTokens }
                let body = try patchBody(
                    fields, models: nil, deny: nil, limits: limits, clear: clear, clearable: Self.clearable)
                let data = try await connection.client().send(
                    "PATCH", "/v1/admin/models/\(pathSegment(alias))", body: try jsonBody(body))
                try Printer.show(data, format: try connection.format(), columns: Models.columns)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        @Argument var alias: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/models/\(pathSegment(alias))"),
                    format: try connection.format(), columns: Models.columns)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        @Argument var alias: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try await connection.client().send("DELETE", "/v1/admin/models/\(pathSegment(alias))")
                print("deleted model \(alias)")
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: """
                Import a LiteLLM config.yaml's model_list: creates or replaces the aliases it names. \
                Other aliases stay unless --prune is given.
                """)
        @Option(name: .shortAndLong, help: "The LiteLLM config.yaml.") var file: String
        @Flag(help: "Show what would change without changing it (the same plan the import applies).") var dryRun = false
        @Flag(help: "Also delete the aliases the file does not name.") var prune = false
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                let models = try LiteLLMImport.models(fromFile: file)
                let plan = try await PolicyPlan.make(
                    desired: PolicyFile(models: models), client: try connection.client(), kinds: [.models], prune: prune
                )
                try await plan.run(client: try connection.client(), dryRun: dryRun)
            }
        }
    }
}
