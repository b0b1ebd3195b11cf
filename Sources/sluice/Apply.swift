import ArgumentParser
import Foundation
import SluicePolicy
import SluiceWire
import Yams

/// A declarative policy file. Each section present is made to match exactly (entities not
/// listed are deleted); a section left out is not touched. Keys are not here: their secrets
/// are issued by `sluice keys create`, never written in files.
struct PolicyFile: Codable {
    var teams: [TeamDocument]?
    var projects: [ProjectDocument]?
    var services: [ServiceDocument]?
    var models: [ModelDocument]?
    var endUsers: [EndUserDocument]?
    var settings: SettingsDocument?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case teams, projects, services, models, settings
        case endUsers = "end_users"
    }

    init(
        teams: [TeamDocument]? = nil, projects: [ProjectDocument]? = nil, services: [ServiceDocument]? = nil,
        models: [ModelDocument]? = nil, endUsers: [EndUserDocument]? = nil, settings: SettingsDocument? = nil
    ) {
        self.teams = teams
        self.projects = projects
        self.services = services
        self.models = models
        self.endUsers = endUsers
        self.settings = settings
    }

    init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        teams = try container.decodeIfPresent([TeamDocument].self, forKey: .teams)
        projects = try container.decodeIfPresent([ProjectDocument].self, forKey: .projects)
        services = try container.decodeIfPresent([ServiceDocument].self, forKey: .services)
        models = try container.decodeIfPresent([ModelDocument].self, forKey: .models)
        endUsers = try container.decodeIfPresent([EndUserDocument].self, forKey: .endUsers)
        settings = try container.decodeIfPresent(SettingsDocument.self, forKey: .settings)
    }

    /// Reads a policy file strictly: an unknown field anywhere is an error naming its path.
    static func parse(_ text: String) throws -> PolicyFile {
        do {
            return try YAMLDecoder().decode(PolicyFile.self, from: text, userInfo: [.sluiceStrictFields: true])
        } catch let error as DecodingError {
            throw AdminClient.Failure(description: WireCoding.describe(error))
        }
    }
}

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make the control plane's policy match a YAML file: shows the changes, then applies them.")
    @Option(name: .shortAndLong, help: "The policy file (YAML).") var file: String
    @Flag(help: "Show the changes without applying them.") var dryRun = false
    @OptionGroup var connection: Connection

    func run() async throws {
        try await perform {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw AdminClient.Failure(description: "cannot read \(file)")
            }
            let desired: PolicyFile
            do {
                desired = try PolicyFile.parse(text)
            } catch {
                throw AdminClient.Failure(description: "\(file) is not a valid policy file: \(error)")
            }
            let client = try connection.client()
            let plan = try await PolicyPlan.make(desired: desired, client: client, kinds: PolicyPlan.Kind.allCases)
            try await plan.run(client: client, dryRun: dryRun)
        }
    }
}

/// The changes that make the server match a file, in an order references allow.
struct PolicyPlan {
    enum Kind: String, CaseIterable {
        case teams, projects, services, models, settings
        case endUsers = "end-users"
    }

    enum Change {
        case create(kind: Kind, name: String, body: Data)
        case update(kind: Kind, name: String, body: Data, fields: [String])
        case delete(kind: Kind, name: String)
        case settings(body: Data, fields: [String])
    }

    var changes: [Change] = []

    /// With `prune`, entities of a section that the file does not list are deleted (`apply`);
    /// without, they are left alone (`models import`).
    static func make(desired: PolicyFile, client: AdminClient, kinds: [Kind], prune: Bool = true) async throws
        -> PolicyPlan
    {
        var plan = PolicyPlan()
        var deletions: [Change] = []
        func reconcile<Document: Codable>(_ kind: Kind, _ wanted: [Document]?, name: (Document) -> String) async throws
        {
            guard kinds.contains(kind), let wanted else { return }
            let current = try WireCoding.decoder.decode(
                [Document].self, from: try await client.send("GET", "/v1/admin/\(kind.rawValue)"))
            let currentByName = Dictionary(current.map { (name($0), $0) }, uniquingKeysWith: { first, _ in first })
            let wantedNames = Set(wanted.map(name))
            for document in wanted {
                let body = try WireCoding.encoder.encode(document)
                if let existing = currentByName[name(document)] {
                    let fields = try changedFields(try WireCoding.encoder.encode(existing), body)
                    if !fields.isEmpty {
                        plan.changes.append(.update(kind: kind, name: name(document), body: body, fields: fields))
                    }
                } else {
                    plan.changes.append(.create(kind: kind, name: name(document), body: body))
                }
            }
            for existing in current where prune && !wantedNames.contains(name(existing)) {
                deletions.insert(.delete(kind: kind, name: name(existing)), at: 0)
            }
        }
        // Models first: teams, projects, services and settings name them, and every write is
        // checked for dangling references. Deletions come out in the reverse order.
        try await reconcile(.models, desired.models) { $0.alias }
        try await reconcile(.teams, desired.teams) { $0.name }
        try await reconcile(.projects, desired.projects) { $0.name }
        try await reconcile(.services, desired.services) { $0.name }
        try await reconcile(.endUsers, desired.endUsers) { $0.name }
        if kinds.contains(.settings), let settings = desired.settings {
            let current = try await client.send("GET", "/v1/admin/settings")
            let body = try WireCoding.encoder.encode(settings)
            let fields = try changedFields(current, body)
            if !fields.isEmpty { plan.changes.append(.settings(body: body, fields: fields)) }
        }
        // Deletions last, dependents first (reverse of creation order).
        plan.changes += deletions
        return plan
    }

    /// Top-level fields whose JSON differs.
    static func changedFields(_ old: Data, _ new: Data) throws -> [String] {
        let before = try JSONSerialization.jsonObject(with: old) as? [String: Any] ?? [:]
        let after = try JSONSerialization.jsonObject(with: new) as? [String: Any] ?? [:]
        return Set(before.keys).union(after.keys).sorted().filter { key in
            let left = before[key].flatMap {
                try? JSONSerialization.data(withJSONObject: ["v": $0], options: [.sortedKeys])
            }
            let right = after[key].flatMap {
                try? JSONSerialization.data(withJSONObject: ["v": $0], options: [.sortedKeys])
            }
            return left != right
        }
    }

    func run(client: AdminClient, dryRun: Bool) async throws {
        if changes.isEmpty {
            print("no changes: the control plane already matches")
            return
        }
        for change in changes {
            switch change {
            case .create(let kind, let name, _): print("+ \(kind.rawValue.dropLast()) \(name)")
            case .update(let kind, let name, _, let fields):
                print("~ \(kind.rawValue.dropLast()) \(name): \(fields.joined(separator: ", "))")
            case .delete(let kind, let name): print("- \(kind.rawValue.dropLast()) \(name)")
            case .settings(_, let fields): print("~ settings: \(fields.joined(separator: ", "))")
            }
        }
        guard !dryRun else {
            print("(dry run: nothing changed)")
            return
        }
        for change in changes {
            switch change {
            case .create(let kind, _, let body): try await client.send("POST", "/v1/admin/\(kind.rawValue)", body: body)
            case .update(let kind, let name, let body, _):
                try await client.send(
                    "PUT", "/v1/admin/\(kind.rawValue)/\(kind == .services ? servicePath(name) : pathSegment(name))",
                    body: body)
            case .delete(let kind, let name):
                try await client.send(
                    "DELETE", "/v1/admin/\(kind.rawValue)/\(kind == .services ? servicePath(name) : pathSegment(name))")
            case .settings(let body, _): try await client.send("PUT", "/v1/admin/settings", body: body)
            }
        }
        print("applied \(changes.count) change\(changes.count == 1 ? "" : "s")")
    }
}

/// Reads a LiteLLM `config.yaml` `model_list` into catalog entries. Provider keys are
/// referenced, never copied: `api_key: os.environ/NAME` becomes `credential_ref: NAME`; a
/// literal key is left behind with a warning (the control plane never holds provider keys).
enum LiteLLMImport {
    /// `litellm_params` fields the import carries over.
    static let importedParams: Set<String> = ["model", "api_base", "api_key", "weight", "rpm", "tpm", "api_version"]
    /// Fields that would change the destination or the credentials of calls: refused, since
    /// leaving them out silently would make the deployment do something else than the file says.
    static let securityParams: Set<String> = [
        "base_url", "api_host", "extra_headers", "headers", "organization",
        "aws_access_key_id", "aws_secret_access_key", "vertex_credentials", "azure_ad_token",
    ]

    /// The catalog entries, and what was left out (printed by the caller).
    static func models(fromFile path: String) throws -> [ModelDocument] {
        var skipped: [String] = []
        let models = try models(fromFile: path, skipped: &skipped)
        for line in skipped { FileHandle.standardError.write(Data("sluice: \(line)\n".utf8)) }
        if !skipped.isEmpty {
            FileHandle.standardError.write(
                Data("sluice: \(skipped.count) field(s) or entries were not imported\n".utf8))
        }
        return models
    }

    static func models(fromFile path: String, skipped: inout [String]) throws -> [ModelDocument] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw AdminClient.Failure(description: "cannot read \(path)")
        }
        guard let root = (try? Yams.compose(yaml: text)) ?? nil, let entries = root["model_list"]?.sequence else {
            throw AdminClient.Failure(description: "\(path) has no model_list")
        }
        var models: [String: ModelDocument] = [:]
        var order: [String] = []
        for (index, entry) in entries.enumerated() {
            guard let alias = entry["model_name"]?.string, let params = entry["litellm_params"],
                let model = params["model"]?.string
            else {
                throw AdminClient.Failure(description: "model_list[\(index)] needs model_name and litellm_params.model")
            }
            let at = "model_list[\(index)] (\(alias))"
            let parts = model.split(separator: "/", maxSplits: 1).map(String.init)
            let provider = parts.count == 2 ? parts[0] : "openai"
            let upstream = parts.count == 2 ? parts[1] : model
            guard let dialect = ProviderDialect(rawValue: provider) else {
                skipped.append(
                    "\(at): provider \(provider) is not supported (openai, anthropic, azure, gemini); not imported")
                continue
            }
            // Never a guess: a base URL sends the provider key to that host.
            guard let apiBase = params["api_base"]?.string ?? dialect.defaultAPIBase else {
                throw AdminClient.Failure(
                    description: "\(at): an \(provider)/ deployment needs litellm_params.api_base")
            }
            var credential: String?
            if let key = params["api_key"]?.string, !key.isEmpty {
                if key.hasPrefix("os.environ/") {
                    credential = String(key.dropFirst("os.environ/".count))
                } else {
                    skipped.append(
                        "\(at).litellm_params.api_key: a literal key is not imported; "
                            + "give agents the key in an environment variable and use os.environ/NAME")
                }
            }
            for field in (params.mapping?.keys.compactMap(\.string) ?? []).sorted()
            where !Self.importedParams.contains(field) {
                guard !Self.securityParams.contains(field) else {
                    throw AdminClient.Failure(
                        description: "\(at).litellm_params.\(field) changes where or how calls are sent, "
                            + "and Sluice has no such setting: remove it, or the import would widen what the "
                                + "deployment does"
                    )
                }
                skipped.append("\(at).litellm_params.\(field): not supported by Sluice; left out")
            }
            let deployment = DeploymentDocument(
                provider: provider, apiBase: apiBase,
                upstreamModel: upstream, credentialRef: credential, weight: params["weight"]?.int ?? 1,
                rpm: params["rpm"]?.int, tpm: params["tpm"]?.int,
                apiVersion: dialect == .azure ? params["api_version"]?.string : nil)
            if models[alias] == nil {
                order.append(alias)
                let info = entry["model_info"]
                // A price that is not a number is refused, never dropped: dropped, the alias
                // would be unpriced, or priced at the plain rate where a cheaper one was meant.
                func price(_ name: String) throws -> Double? {
                    guard let node = info?[name] else { return nil }
                    guard let value = node.float else {
                        throw AdminClient.Failure(description: "\(at).model_info.\(name) must be a number")
                    }
                    return value
                }
                models[alias] = ModelDocument(
                    alias: alias, deployments: [], inputCostPerToken: try price("input_cost_per_token"),
                    outputCostPerToken: try price("output_cost_per_token"),
                    cacheReadInputTokenCost: try price("cache_read_input_token_cost"),
                    cacheCreationInputTokenCost: try price("cache_creation_input_token_cost"),
                    outputCostPerReasoningToken: try price("output_cost_per_reasoning_token"),
                    maxOutputTokens: info?["max_output_tokens"]?.int)
            }
            models[alias]!.deployments.append(deployment)
        }
        return order.map { models[$0]! }
    }
}
