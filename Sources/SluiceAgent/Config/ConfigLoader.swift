import SluicePolicy
import Yams

/// Why a configuration file was refused. The message names the file's path to the bad
/// field; it never contains a credential.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reads a LiteLLM-compatible `config.yaml`: `model_list` entries with `model_name`,
/// `litellm_params` (`model`, `api_base`, `api_key`, `rpm`, `tpm`, …) and `model_info`
/// prices, plus Sluice's own `sluice_settings`. Unknown fields produce warnings, not errors.
public struct ConfigLoader {
    public let environment: [String: String]

    public init(environment: [String: String]) {
        self.environment = environment
    }

    /// Known LiteLLM sections the agent has no use for: ignored with one warning each, so a
    /// LiteLLM file still loads. Any other unknown top-level key is an error: a misspelt
    /// `sluice_policy` must not start an open, keyless, unlimited agent.
    static let ignoredSections: Set<String> = ["litellm_settings", "general_settings", "environment_variables", "callback_settings",
                                               "guardrails", "credential_list", "mcp_servers", "files_settings", "assistant_settings",
                                               "vector_store_registry", "include", "search_tools", "prompts"]
    static let sections: Set<String> = ["model_list", "router_settings", "sluice_settings", "sluice_policy", "sluice_identity"]
    static let identityFields: Set<String> = ["service", "namespace", "service_account"]
    static let settingsFields: Set<String> = ["max_request_body_bytes", "max_json_depth", "connect_timeout_seconds",
                                              "first_byte_timeout_seconds", "idle_timeout_seconds", "drain_timeout_seconds",
                                              "request_read_timeout_seconds", "max_connections"]
    static let knownParams: Set<String> = ["model", "api_base", "api_key", "rpm", "tpm", "ssl_verify", "weight", "timeout", "stream_timeout",
                                           "api_version"]
    static let knownInfo: Set<String> = ["input_cost_per_token", "output_cost_per_token", "id", "mode", "base_model",
                                         "max_output_tokens", "max_tokens"]

    public func load(yaml: String) throws(ConfigError) -> AgentConfiguration {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError("the file is not valid YAML: \(error)")
        }
        guard let root, let top = root.mapping else { throw ConfigError("the file must be a YAML mapping with a model_list") }
        var warnings: [String] = []
        var settings = AgentSettings()
        var aliases: [String: (deployments: [Deployment], price: Price?, maxOutput: Int?)] = [:]
        var order: [String] = []
        var sawModelList = false
        var policyNode: Node?
        var identity = IdentityOverrides()
        var router = RouterSettings()

        for (keyNode, value) in top {
            let key = keyNode.string ?? ""
            switch key {
            case "model_list":
                sawModelList = true
                guard let entries = value.sequence else { throw ConfigError("model_list must be a list") }
                for (index, entry) in entries.enumerated() {
                    guard let parsed = try parseEntry(entry, index: index, warnings: &warnings) else { continue }
                    if aliases[parsed.deployment.alias] == nil {
                        order.append(parsed.deployment.alias)
                        aliases[parsed.deployment.alias] = ([], nil, nil)
                    }
                    aliases[parsed.deployment.alias]!.deployments.append(parsed.deployment)
                    if let maxOutput = parsed.maxOutputTokens {
                        let current = aliases[parsed.deployment.alias]!.maxOutput
                        aliases[parsed.deployment.alias]!.maxOutput = min(current ?? maxOutput, maxOutput)
                    }
                    if let price = parsed.price {
                        if let existing = aliases[parsed.deployment.alias]!.price, existing != price {
                            warnings.append("model_list[\(index)]: \(parsed.deployment.alias) has differing prices across deployments; the first is used")
                        } else {
                            aliases[parsed.deployment.alias]!.price = price
                        }
                    }
                }
            case "sluice_settings":
                settings = try parseSettings(value, warnings: &warnings)
            case "sluice_policy":
                policyNode = value
            case "router_settings":
                router = try parseRouter(value, warnings: &warnings)
            case "sluice_identity":
                identity = try parseIdentity(value, warnings: &warnings)
            default:
                guard Self.ignoredSections.contains(key) else {
                    throw ConfigError("unknown top-level field \(Identifier.quoted(key))"
                        + Suggestion.hint(for: key, among: Self.sections.union(Self.ignoredSections)))
                }
                warnings.append("\(key) is a LiteLLM section the agent does not use; ignored")
            }
        }
        guard sawModelList else { throw ConfigError("the file has no model_list") }
        let catalog = Catalog(order.map { name in
            ModelAlias(name: name, deployments: aliases[name]!.deployments, price: aliases[name]!.price,
                       maxOutputTokens: aliases[name]!.maxOutput)
        }, router: router)
        do {
            try router.validate(against: catalog)
        } catch {
            throw ConfigError(error.message)
        }
        let version = contentVersion(yaml)
        var policy: Policy
        if let policyNode {
            policy = try PolicyLoader(environment: environment, catalog: catalog).load(policyNode, version: version, warnings: &warnings)
        } else {
            warnings.append("there is no sluice_policy section: every caller is served without a key and without limits")
            policy = .open(catalog: catalog)
            policy.version = version
        }
        return AgentConfiguration(policy: policy, settings: settings, identity: identity, warnings: warnings)
    }

    private func parseEntry(_ entry: Node, index: Int, warnings: inout [String]) throws(ConfigError)
        -> (deployment: Deployment, price: Price?, maxOutputTokens: Int?)? {
        let at = "model_list[\(index)]"
        guard let mapping = entry.mapping else { throw ConfigError("\(at) must be a mapping") }
        guard let alias = mapping["model_name"]?.string, !alias.isEmpty else { throw ConfigError("\(at).model_name is missing") }
        guard let params = mapping["litellm_params"]?.mapping else { throw ConfigError("\(at).litellm_params is missing") }
        for (keyNode, _) in mapping {
            let key = keyNode.string ?? ""
            if !["model_name", "litellm_params", "model_info"].contains(key) {
                warnings.append("\(at).\(key) is not used by the agent; ignored")
            }
        }
        for (keyNode, _) in params where !Self.knownParams.contains(keyNode.string ?? "") {
            warnings.append("\(at).litellm_params.\(keyNode.string ?? "?") is not used by the agent; ignored")
        }
        guard let model = params["model"]?.string, !model.isEmpty else { throw ConfigError("\(at).litellm_params.model is missing") }
        let provider: String
        let upstreamModel: String
        if let slash = model.firstIndex(of: "/") {
            provider = String(model[..<slash])
            upstreamModel = String(model[model.index(after: slash)...])
        } else {
            provider = "openai"
            upstreamModel = model
        }
        guard let dialect = ProviderDialect(rawValue: provider) else {
            warnings.append("\(at) (\(alias)): provider \"\(provider)\" is not supported by this agent yet; deployment skipped")
            return nil
        }
        guard !upstreamModel.isEmpty else { throw ConfigError("\(at).litellm_params.model names no upstream model") }

        guard let base = params["api_base"]?.string ?? dialect.defaultAPIBase else {
            throw ConfigError("\(at).litellm_params.api_base is required for \(provider)/ (https://NAME.openai.azure.com)")
        }
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(parsing: base)
        } catch {
            throw ConfigError("\(at).litellm_params.\(error.message)")
        }
        var apiVersion: String?
        if dialect == .azure {
            guard Deployment.isURLSafeName(upstreamModel) else {
                throw ConfigError("\(at).litellm_params.model: the Azure deployment name must be letters, digits and - . _ only")
            }
            let version = params["api_version"]?.string ?? ProviderDialect.defaultAzureAPIVersion
            guard Deployment.isValidAPIVersion(version) else {
                throw ConfigError("\(at).litellm_params.api_version must be letters, digits, - and . (like 2024-10-21)")
            }
            apiVersion = version
        }
        if dialect == .gemini, !Deployment.isURLSafeName(upstreamModel) {
            throw ConfigError("\(at).litellm_params.model: the Gemini model name goes into the URL and must be letters, digits and - . _ only")
        }
        let credential = try resolveCredential(params["api_key"], at: "\(at).litellm_params.api_key")

        var caFile: String?
        if let verify = params["ssl_verify"] {
            if let flag = verify.bool {
                guard flag else {
                    throw ConfigError("\(at).litellm_params.ssl_verify: false is refused; give the path of a CA bundle to trust instead")
                }
            } else if let path = verify.string {
                caFile = path
            }
        }
        let weight = params["weight"]?.int ?? 1
        guard weight >= 1 else { throw ConfigError("\(at).litellm_params.weight must be at least 1") }
        let rpm = try positiveInt(params["rpm"], at: "\(at).litellm_params.rpm")
        let tpm = try positiveInt(params["tpm"], at: "\(at).litellm_params.tpm")
        let timeout = params["timeout"]?.float ?? params["stream_timeout"]?.float

        var price: Price?
        var maxOutputTokens: Int?
        if let info = mapping["model_info"]?.mapping {
            maxOutputTokens = try positiveInt(info["max_output_tokens"] ?? info["max_tokens"], at: "\(at).model_info.max_output_tokens")
            for (keyNode, _) in info where !Self.knownInfo.contains(keyNode.string ?? "") {
                warnings.append("\(at).model_info.\(keyNode.string ?? "?") is not used by the agent; ignored")
            }
            let input = info["input_cost_per_token"]?.float
            let output = info["output_cost_per_token"]?.float
            if input != nil || output != nil {
                do {
                    price = try Price(inputUSDPerToken: input ?? 0, outputUSDPerToken: output ?? 0)
                } catch {
                    throw ConfigError("\(at).model_info: \(error.message)")
                }
            }
        }
        let deployment = Deployment(alias: alias, dialect: dialect, upstreamModel: upstreamModel, endpoint: endpoint,
                                    credential: credential, caFile: caFile, weight: weight,
                                    requestsPerMinute: rpm, tokensPerMinute: tpm, timeoutSeconds: timeout, apiVersion: apiVersion)
        return (deployment, price, maxOutputTokens)
    }

    /// `os.environ/NAME` reads the environment; anything else is the key itself.
    private func resolveCredential(_ node: Node?, at path: String) throws(ConfigError) -> Secret {
        guard let raw = node?.string else { return Secret("") }
        if raw.hasPrefix("os.environ/") {
            let name = String(raw.dropFirst("os.environ/".count))
            guard let value = environment[name], !value.isEmpty else {
                throw ConfigError("\(path) refers to the environment variable \(name), which is not set")
            }
            return Secret(value)
        }
        return Secret(raw)
    }

    private func positiveInt(_ node: Node?, at path: String) throws(ConfigError) -> Int? {
        guard let node else { return nil }
        guard let value = node.int, value > 0 else { throw ConfigError("\(path) must be a positive whole number") }
        return value
    }

    /// `router_settings`, as LiteLLM writes it: `routing_strategy`, `num_retries`,
    /// `retry_after` (the first backoff), `allowed_fails`, `cooldown_time`, and
    /// `fallbacks` / `context_window_fallbacks` / `content_policy_fallbacks` as lists of
    /// one-entry mappings (`- gpt-4o: [claude-sonnet]`).
    private func parseRouter(_ node: Node, warnings: inout [String]) throws(ConfigError) -> RouterSettings {
        guard let mapping = node.mapping else { throw ConfigError("router_settings must be a mapping") }
        var router = RouterSettings()
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            func number() throws(ConfigError) -> Double {
                guard let number = value.float, number >= 0, number.isFinite else {
                    throw ConfigError("router_settings.\(key) must be a number of seconds, 0 or more")
                }
                return number
            }
            func count() throws(ConfigError) -> Int {
                guard let count = value.int, count >= 0 else { throw ConfigError("router_settings.\(key) must be a whole number, 0 or more") }
                return count
            }
            switch key {
            case "routing_strategy":
                guard let name = value.string, let strategy = RoutingStrategy(configName: name) else {
                    throw ConfigError("router_settings.routing_strategy must be one of \(RoutingStrategy.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                router.strategy = strategy
            case "num_retries": router.numRetries = try count()
            case "retry_after": router.retryBackoffSeconds = try number()
            case "max_retry_backoff": router.maxBackoffSeconds = try number()
            case "allowed_fails": router.allowedFails = try count()
            case "cooldown_time": router.cooldownSeconds = try number()
            case "fallbacks": router.fallbacks = try fallbackTable(value, at: "router_settings.fallbacks")
            case "context_window_fallbacks": router.contextWindowFallbacks = try fallbackTable(value, at: "router_settings.context_window_fallbacks")
            case "content_policy_fallbacks": router.contentPolicyFallbacks = try fallbackTable(value, at: "router_settings.content_policy_fallbacks")
            default: warnings.append("router_settings.\(key) is not used by the agent; ignored")
            }
        }
        return router
    }

    /// `[{alias: [fallback, …]}, …]`, or one mapping of alias to list.
    private func fallbackTable(_ node: Node, at path: String) throws(ConfigError) -> [String: [String]] {
        var entries: [(Node, Node)] = []
        if let list = node.sequence {
            for item in list {
                guard let mapping = item.mapping else { throw ConfigError("\(path) must be a list of {alias: [fallback, …]} mappings") }
                entries.append(contentsOf: mapping.map { ($0.key, $0.value) })
            }
        } else if let mapping = node.mapping {
            entries = mapping.map { ($0.key, $0.value) }
        } else {
            throw ConfigError("\(path) must be a list of {alias: [fallback, …]} mappings")
        }
        var table: [String: [String]] = [:]
        for (keyNode, value) in entries {
            guard let alias = keyNode.string, !alias.isEmpty else { throw ConfigError("\(path) has an entry without an alias") }
            let targets: [String]
            if let single = value.string {
                targets = [single]
            } else if let list = value.sequence {
                var names: [String] = []
                for item in list {
                    guard let name = item.string, !name.isEmpty else { throw ConfigError("\(path).\(alias) must list alias names") }
                    names.append(name)
                }
                targets = names
            } else {
                throw ConfigError("\(path).\(alias) must list alias names")
            }
            guard table[alias] == nil else { throw ConfigError("\(path) names \(alias) twice") }
            table[alias] = targets
        }
        return table
    }

    /// `sluice_identity`: who this agent serves, when not given by the Downward API
    /// environment (which wins where both are set).
    private func parseIdentity(_ node: Node, warnings: inout [String]) throws(ConfigError) -> IdentityOverrides {
        guard let mapping = node.mapping else { throw ConfigError("sluice_identity must be a mapping") }
        var identity = IdentityOverrides()
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            guard let text = value.string, !text.isEmpty else { throw ConfigError("sluice_identity.\(key) must be a non-empty string") }
            switch key {
            case "service": identity.service = text
            case "namespace": identity.namespace = text
            case "service_account": identity.serviceAccount = text
            default:
                throw ConfigError("sluice_identity.\(Identifier.quoted(key)) is unknown" + Suggestion.hint(for: key, among: Self.identityFields))
            }
        }
        return identity
    }

    private func parseSettings(_ node: Node, warnings: inout [String]) throws(ConfigError) -> AgentSettings {
        guard let mapping = node.mapping else { throw ConfigError("sluice_settings must be a mapping") }
        var settings = AgentSettings()
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            func seconds() throws(ConfigError) -> Double {
                guard let number = value.float, number > 0, number.isFinite else {
                    throw ConfigError("sluice_settings.\(key) must be a positive number of seconds")
                }
                return number
            }
            switch key {
            case "max_request_body_bytes":
                guard let bytes = value.int, bytes > 0 else { throw ConfigError("sluice_settings.max_request_body_bytes must be positive") }
                settings.maxRequestBodyBytes = bytes
            case "max_json_depth":
                guard let depth = value.int, (2...512).contains(depth) else { throw ConfigError("sluice_settings.max_json_depth must be 2...512") }
                settings.maxJSONDepth = depth
            case "connect_timeout_seconds": settings.connectTimeoutSeconds = try seconds()
            case "first_byte_timeout_seconds": settings.firstByteTimeoutSeconds = try seconds()
            case "idle_timeout_seconds": settings.idleTimeoutSeconds = try seconds()
            case "drain_timeout_seconds": settings.drainTimeoutSeconds = try seconds()
            case "request_read_timeout_seconds": settings.requestReadTimeoutSeconds = try seconds()
            case "max_connections":
                guard let count = value.int, count > 0 else { throw ConfigError("sluice_settings.max_connections must be positive") }
                settings.maxConnections = count
            default:
                throw ConfigError("sluice_settings.\(Identifier.quoted(key)) is unknown" + Suggestion.hint(for: key, among: Self.settingsFields))
            }
        }
        return settings
    }
}

/// A short stable version for a configuration: FNV-1a of its text, in hex. Two agents with
/// the same file report the same policy version.
func contentVersion(_ text: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}
