import SluicePolicy
import SluiceWire
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
    static let ignoredSections: Set<String> = [
        "litellm_settings", "general_settings", "environment_variables", "callback_settings",
        "guardrails", "credential_list", "mcp_servers", "files_settings", "assistant_settings",
        "vector_store_registry", "include", "search_tools", "prompts",
    ]
    static let sections: Set<String> = [
        "model_list", "router_settings", "sluice_settings", "sluice_policy", "sluice_identity",
    ]
    static let strictSections: Set<String> = ["sluice_settings", "sluice_policy", "sluice_identity"]
    static let identityFields: Set<String> = ["service", "namespace", "service_account"]
    static let settingsFields: Set<String> = [
        "max_request_body_bytes", "max_json_depth", "connect_timeout_seconds",
        "first_byte_timeout_seconds", "idle_timeout_seconds", "drain_timeout_seconds",
        "request_read_timeout_seconds", "max_connections", "key_headers", "trusted_identity",
    ]
    static let knownParams: Set<String> = [
        "model", "api_base", "api_key", "rpm", "tpm", "ssl_verify", "weight", "timeout", "stream_timeout",
        "api_version",
    ]
    static let knownInfo: Set<String> = [
        "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
        "cache_creation_input_token_cost", "output_cost_per_reasoning_token", "id", "mode", "base_model",
        "max_output_tokens", "max_tokens", "access_groups",
    ]

    /// Parses and checks a LiteLLM-style config (`model_list`, `router_settings`,
    /// `sluice_settings`, `sluice_policy`). Unknown fields and dangling references are errors
    /// naming the field path; `os.environ/NAME` values are read from the loader's environment.
    public func load(yaml: String) throws(ConfigError) -> AgentConfiguration {
        let composed: Node?
        do {
            // No tag resolver: every value here is read through `.string`, `.int`, `.float` or
            // `.bool`, which parse the scalar's text whatever its tag, and keys are matched as
            // text. Yams's default resolver compiles seven ICU regular expressions on first
            // use, which was what kept ICU's pages resident in an idle agent.
            composed = try Yams.compose(yaml: yaml, .basic)
        } catch {
            throw ConfigError("the file is not valid YAML: \(error)")
        }
        guard let composed, let top = composed.mapping else {
            throw ConfigError("the file must be a YAML mapping with a model_list")
        }
        var warnings: [String] = []
        var settings = AgentSettings()
        var models = ModelList()
        var sawModelList = false
        var policyNode: Node?
        var identity = IdentityOverrides()
        var router: RouterDocument?
        /// What `litellm_settings` says of retries and fallbacks: `router_settings` wins.
        var liteLLMRouter = RouterDocument()
        var proxySettings = LiteLLMProxySettings()

        let references = EnvironmentReferences(environment: environment)
        for (keyNode, node) in top {
            let key = keyNode.string ?? ""
            // Sluice's own sections are strict (every field is used): read every reference.
            let value = Self.strictSections.contains(key) ? try references.resolve(node, at: key) : node
            switch key {
            case "model_list":
                sawModelList = true
                guard let entries = value.sequence else { throw ConfigError("model_list must be a list") }
                for (index, entry) in entries.enumerated() {
                    try parseEntry(entry, index: index, into: &models, warnings: &warnings)
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
                    throw ConfigError(
                        "unknown top-level field \(Identifier.quoted(key))"
                            + Suggestion.hint(for: key, among: Self.sections.union(Self.ignoredSections)))
                }
                // Named field by field, so nobody believes a LiteLLM setting took effect here.
                if let fields = value.mapping, !fields.isEmpty {
                    for (field, entry) in fields {
                        let name = field.string ?? "?"
                        // Read only by a reader that takes the field: an unused one's reference
                        // is never looked up.
                        let value = { () throws(ConfigError) -> Node in
                            try references.resolve(entry, at: "\(key).\(name)")
                        }
                        if key == "litellm_settings",
                            try liteLLMRouterSetting(name, value, into: &liteLLMRouter, warnings: &warnings)
                        {
                            continue
                        }
                        if try proxySettings.read(name, in: key, value, warnings: &warnings) { continue }
                        warnings.append("\(key).\(name) is not supported by the agent; ignored")
                    }
                } else {
                    warnings.append("\(key) is a LiteLLM section the agent does not use; ignored")
                }
            }
        }
        guard sawModelList else { throw ConfigError("the file has no model_list") }

        // The file becomes the same document a control plane would send, checked by the
        // same compiler and reference check; only the YAML's shape is read here.
        var document = PolicyDocument(version: 0, issuedAt: 0, models: models.documents)
        var keyPepper: Secret?
        var staticKeys = try StaticKeys(environment: environment, readFile: readWholeFile)
        // A master key is a static token: a LiteLLM file with one requires a key, as LiteLLM does.
        proxySettings.addMasterKey(to: &staticKeys)
        if let policyNode {
            let section = try PolicySection(policyNode)
            try section.apply(to: &document)
            keyPepper = section.keyPepper
            staticKeys.entries = section.staticKeys + staticKeys.entries
            if proxySettings.masterKey != nil { LiteLLMProxySettings.addMasterKeyTeam(to: &document) }
        } else if !staticKeys.entries.isEmpty {
            // Static tokens without a policy section: callers must present one of them, and
            // the teams and projects they name exist (without limits), there being nowhere
            // else to declare them.
            document.services = [ServiceDocument(name: "*", keyless: false)]
            for entry in staticKeys.entries where !document.teams.contains(where: { $0.name == entry.team }) {
                document.teams.append(TeamDocument(name: entry.team))
            }
            for entry in staticKeys.entries {
                guard let project = entry.project, !document.projects.contains(where: { $0.name == project })
                else { continue }
                document.projects.append(ProjectDocument(name: project, team: entry.team))
            }
        } else {
            warnings.append(
                "there is no sluice_policy section: every caller is served without a key"
                    + (proxySettings.maxBudget == nil ? " and without limits" : ", under litellm_settings.max_budget"))
            document.services = [ServiceDocument(name: "*", keyless: true)]
        }
        try proxySettings.applyBudget(to: &document)
        if liteLLMRouter != RouterDocument() {
            var merged = router ?? RouterDocument()
            merged.numRetries = merged.numRetries ?? liteLLMRouter.numRetries
            merged.fallbacks = merged.fallbacks ?? liteLLMRouter.fallbacks
            merged.contextWindowFallbacks = merged.contextWindowFallbacks ?? liteLLMRouter.contextWindowFallbacks
            merged.contentPolicyFallbacks = merged.contentPolicyFallbacks ?? liteLLMRouter.contentPolicyFallbacks
            router = merged
        }
        document.settings.router = router
        var staticFingerprint = ""
        if !staticKeys.entries.isEmpty {
            // Without a configured pepper the tokens are hashed under one made for this
            // process: nothing outside it holds their hashes.
            let pepper = keyPepper ?? Secret(randomPepper())
            keyPepper = pepper
            let keys = staticKeys.keys(hasher: KeyHasher(pepper: pepper))
            for key in keys where document.keys.contains(where: { $0.id == key.id }) {
                throw ConfigError("static key id \(key.id) is also a key in sluice_policy.keys")
            }
            document.keys += keys
            staticFingerprint = StaticKeys.fingerprint(keys)
        }
        let context = PolicyDocument.LocalContext(
            keyPepper: keyPepper,
            credential: { [environment, inline = models.inlineCredentials] name in
                inline[name] ?? environment[name].flatMap { $0.isEmpty ? nil : Secret($0) }
            },
            timeZone: { [environment] name in resolveTimeZone(name, environment: environment) })
        // A file is checked whole before it is used: a bad entry is named here rather than
        // left out, since the admin is at hand when the agent starts or reloads.
        let admitted = document.admit(in: context, knownAliases: models.skippedAliases)
        let problems = document.grammarProblems() + admitted.problems
        guard problems.isEmpty, let compiled = admitted.compiled else { throw ConfigError(models.refusal(problems)) }
        var policy = compiled.policy
        policy.version = contentVersion(yaml + staticFingerprint)
        warnings += compiled.warnings.map(models.filePath)
        return AgentConfiguration(policy: policy, settings: settings, identity: identity, warnings: warnings)
    }

    /// One `model_list` entry, added to its alias in `models`; nothing for a provider the
    /// agent does not speak (with a warning). Value rules are the compiler's.
    private func parseEntry(_ entry: Node, index: Int, into models: inout ModelList, warnings: inout [String])
        throws(ConfigError)
    {
        let at = "model_list[\(index)]"
        guard let mapping = entry.mapping else { throw ConfigError("\(at) must be a mapping") }
        guard let alias = mapping["model_name"]?.string, !alias.isEmpty else {
            throw ConfigError("\(at).model_name is missing")
        }
        guard let unresolved = mapping["litellm_params"]?.mapping else {
            throw ConfigError("\(at).litellm_params is missing")
        }
        let references = EnvironmentReferences(environment: environment)
        let params = try references.resolve(unresolved, used: Self.knownParams, at: "\(at).litellm_params")
        for (keyNode, _) in mapping {
            let key = keyNode.string ?? ""
            if !["model_name", "litellm_params", "model_info"].contains(key) {
                warnings.append("\(at).\(key) is not used by the agent; ignored")
            }
        }
        for (keyNode, _) in params where !Self.knownParams.contains(keyNode.string ?? "") {
            warnings.append("\(at).litellm_params.\(keyNode.string ?? "?") is not used by the agent; ignored")
        }
        /// A text parameter (`os.environ/NAME` already read, as in every used value but the key).
        func text(_ name: String) throws(ConfigError) -> String? { params[name]?.string }
        guard let model = try text("model"), !model.isEmpty else {
            throw ConfigError("\(at).litellm_params.model is missing")
        }
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
            warnings.append(
                "\(at) (\(alias)): provider \"\(provider)\" is not supported by this agent yet; deployment skipped")
            models.skip(alias)
            return
        }
        guard !upstreamModel.isEmpty else { throw ConfigError("\(at).litellm_params.model names no upstream model") }
        guard let base = try text("api_base") ?? dialect.defaultAPIBase else {
            throw ConfigError(
                "\(at).litellm_params.api_base is required for \(provider)/ (https://NAME.openai.azure.com)")
        }
        var caFile: String?
        if let verify = params["ssl_verify"] {
            if let flag = verify.bool {
                guard flag else {
                    throw ConfigError(
                        "\(at).litellm_params.ssl_verify: false is refused; "
                            + "give the path of a CA bundle to trust instead"
                    )
                }
            } else if verify.string != nil {
                caFile = try text("ssl_verify")
            }
        }
        func whole(_ name: String) throws(ConfigError) -> Int? {
            guard let node = params[name] else { return nil }
            guard let value = node.int else { throw ConfigError("\(at).litellm_params.\(name) must be a whole number") }
            return value
        }
        var deployment = DeploymentDocument(
            provider: provider, apiBase: base, upstreamModel: upstreamModel, weight: try whole("weight") ?? 1,
            rpm: try whole("rpm"), tpm: try whole("tpm"), apiVersion: try text("api_version"), caFile: caFile,
            timeoutSeconds: params["timeout"]?.float ?? params["stream_timeout"]?.float)
        if let raw = params["api_key"]?.string, !raw.isEmpty {
            if raw.hasPrefix("os.environ/") {
                deployment.credentialRef = String(raw.dropFirst("os.environ/".count))
            } else {
                deployment.credentialRef = models.holdInline(Secret(raw))
            }
        }

        var price: ModelPrices?
        var maxOutputTokens: Int?
        var accessGroups: [String] = []
        if let unresolvedInfo = mapping["model_info"]?.mapping {
            let info = try references.resolve(unresolvedInfo, used: Self.knownInfo, at: "\(at).model_info")
            if let node = info["access_groups"] {
                guard let groups = node.sequence?.compactMap(\.string), groups.count == node.sequence?.count else {
                    throw ConfigError("\(at).model_info.access_groups must be a list of names")
                }
                accessGroups = groups
            }
            if let node = info["max_output_tokens"] ?? info["max_tokens"] {
                guard let tokens = node.int else {
                    throw ConfigError("\(at).model_info.max_output_tokens must be a whole number")
                }
                maxOutputTokens = tokens
            }
            for (keyNode, _) in info where !Self.knownInfo.contains(keyNode.string ?? "") {
                warnings.append("\(at).model_info.\(keyNode.string ?? "?") is not used by the agent; ignored")
            }
            func cost(_ name: String) throws(ConfigError) -> Double? {
                guard let node = info[name] else { return nil }
                guard let value = node.float else { throw ConfigError("\(at).model_info.\(name) must be a number") }
                return value
            }
            let prices = ModelPrices(
                input: try cost("input_cost_per_token"), output: try cost("output_cost_per_token"),
                cacheRead: try cost("cache_read_input_token_cost"),
                cacheCreation: try cost("cache_creation_input_token_cost"),
                reasoning: try cost("output_cost_per_reasoning_token"))
            if prices != ModelPrices() { price = prices }
        }
        if let conflict = models.add(
            deployment, alias: alias, origin: at, price: price, maxOutputTokens: maxOutputTokens,
            accessGroups: accessGroups)
        {
            warnings.append(conflict)
        }
    }

    /// The `litellm_settings` fields that mean the same here as in `router_settings`
    /// (`num_retries` and the fallback tables); false for any other field.
    private func liteLLMRouterSetting(
        _ name: String, _ value: () throws(ConfigError) -> Node, into router: inout RouterDocument,
        warnings: inout [String]
    ) throws(ConfigError) -> Bool {
        let at = "litellm_settings.\(name)"
        switch name {
        case "num_retries":
            guard let count = try value().int else { throw ConfigError("\(at) must be a whole number") }
            router.numRetries = count
        case "fallbacks": router.fallbacks = try fallbackTable(try value(), at: at)
        case "context_window_fallbacks": router.contextWindowFallbacks = try fallbackTable(try value(), at: at)
        case "content_policy_fallbacks": router.contentPolicyFallbacks = try fallbackTable(try value(), at: at)
        default: return false
        }
        return true
    }

    /// `router_settings`, as LiteLLM writes it: `routing_strategy`, `num_retries`,
    /// `retry_after` (the first backoff), `max_retry_backoff`, `allowed_fails`,
    /// `cooldown_time`, and `fallbacks` / `context_window_fallbacks` /
    /// `content_policy_fallbacks` as lists of one-entry mappings (`- gpt-4o: [claude-sonnet]`).
    /// Read into the wire's `RouterDocument`; ranges are the compiler's.
    private func parseRouter(_ node: Node, warnings: inout [String]) throws(ConfigError) -> RouterDocument {
        guard let mapping = node.mapping else { throw ConfigError("router_settings must be a mapping") }
        let references = EnvironmentReferences(environment: environment)
        var router = RouterDocument()
        for (keyNode, entry) in mapping {
            let key = keyNode.string ?? ""
            /// The field with its `os.environ/NAME` read: only the cases that use it ask.
            func value() throws(ConfigError) -> Node { try references.resolve(entry, at: "router_settings.\(key)") }
            func number() throws(ConfigError) -> Double {
                guard let number = try value().float else {
                    throw ConfigError("router_settings.\(key) must be a number of seconds")
                }
                return number
            }
            func count() throws(ConfigError) -> Int {
                guard let count = try value().int else {
                    throw ConfigError("router_settings.\(key) must be a whole number")
                }
                return count
            }
            switch key {
            case "routing_strategy":
                guard let name = try value().string else {
                    throw ConfigError("router_settings.routing_strategy must be a string")
                }
                router.routingStrategy = name
            case "num_retries": router.numRetries = try count()
            case "retry_after": router.retryAfter = try number()
            case "max_retry_backoff": router.maxRetryBackoff = try number()
            case "allowed_fails": router.allowedFails = try count()
            case "cooldown_time": router.cooldownTime = try number()
            case "fallbacks": router.fallbacks = try fallbackTable(try value(), at: "router_settings.fallbacks")
            case "context_window_fallbacks":
                router.contextWindowFallbacks = try fallbackTable(
                    try value(), at: "router_settings.context_window_fallbacks")
            case "content_policy_fallbacks":
                router.contentPolicyFallbacks = try fallbackTable(
                    try value(), at: "router_settings.content_policy_fallbacks")
            case "model_group_alias":
                (router.modelGroupAlias, router.hiddenGroupAliases) = try groupAliases(try value())
            default: warnings.append("router_settings.\(key) is not used by the agent; ignored")
            }
        }
        return router
    }

    /// `{name: alias}` or LiteLLM's `{name: {model: alias, hidden: true}}`, and the hidden names.
    private func groupAliases(_ node: Node) throws(ConfigError) -> ([String: String], [String]?) {
        let at = "router_settings.model_group_alias"
        guard let mapping = node.mapping else { throw ConfigError("\(at) must map names to aliases") }
        var table: [String: String] = [:]
        var hidden: [String] = []
        for (nameNode, value) in mapping {
            let name = nameNode.string ?? ""
            let path = "\(at).\(Identifier.quoted(name))"
            if let target = value.string {
                table[name] = target
            } else if let entry = value.mapping {
                for (key, _) in entry where !["model", "hidden"].contains(key.string ?? "") {
                    throw ConfigError("\(path).\(Identifier.quoted(key.string ?? "?")) is unknown (model, hidden)")
                }
                guard let target = entry["model"]?.string else { throw ConfigError("\(path).model is missing") }
                table[name] = target
                if let flag = entry["hidden"] {
                    guard let value = flag.bool else { throw ConfigError("\(path).hidden must be true or false") }
                    if value { hidden.append(name) }
                }
            } else {
                throw ConfigError("\(path) must be an alias name or {model, hidden}")
            }
        }
        return (table, hidden.isEmpty ? nil : hidden.sorted())
    }

    /// `[{alias: [fallback, …]}, …]`, or one mapping of alias to list.
    private func fallbackTable(_ node: Node, at path: String) throws(ConfigError) -> [String: [String]] {
        var entries: [(Node, Node)] = []
        if let list = node.sequence {
            for item in list {
                guard let mapping = item.mapping else {
                    throw ConfigError("\(path) must be a list of {alias: [fallback, …]} mappings")
                }
                entries.append(contentsOf: mapping.map { ($0.key, $0.value) })
            }
        } else if let mapping = node.mapping {
            entries = mapping.map { ($0.key, $0.value) }
        } else {
            throw ConfigError("\(path) must be a list of {alias: [fallback, …]} mappings")
        }
        var table: [String: [String]] = [:]
        for (keyNode, value) in entries {
            guard let alias = keyNode.string, !alias.isEmpty else {
                throw ConfigError("\(path) has an entry without an alias")
            }
            let targets: [String]
            if let single = value.string {
                targets = [single]
            } else if let list = value.sequence {
                var names: [String] = []
                for item in list {
                    guard let name = item.string, !name.isEmpty else {
                        throw ConfigError("\(path).\(alias) must list alias names")
                    }
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
            guard let text = value.string, !text.isEmpty else {
                throw ConfigError("sluice_identity.\(key) must be a non-empty string")
            }
            switch key {
            case "service": identity.service = text
            case "namespace": identity.namespace = text
            case "service_account": identity.serviceAccount = text
            default:
                throw ConfigError(
                    "sluice_identity.\(Identifier.quoted(key)) is unknown"
                        + Suggestion.hint(for: key, among: Self.identityFields))
            }
        }
        return identity
    }

    /// Headers that carry something else, or that Sluice itself reads or strips: a key is
    /// never taken from them.
    static let reservedHeaders: Set<String> = [
        "host", "content-type", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer",
        "keep-alive", "proxy-authorization", "cookie", "accept", "user-agent", "x-forwarded-for",
        "x-forwarded-client-cert", "x-request-id", "traceparent",
    ]

    /// `sluice_settings.key_headers`: one to eight header names.
    private func keyHeaders(_ value: Node) throws(ConfigError) -> [String] {
        let at = "sluice_settings.key_headers"
        guard let entries = value.sequence, (1...8).contains(entries.count) else {
            throw ConfigError("\(at) must be a list of one to eight header names")
        }
        var names: [String] = []
        for (index, entry) in entries.enumerated() {
            guard let name = entry.string?.lowercased(), !name.isEmpty,
                name.utf8.allSatisfy({
                    $0 == UInt8(ascii: "-") || (0x30...0x39).contains($0) || (0x61...0x7A).contains($0)
                })
            else { throw ConfigError("\(at)[\(index)] must be a header name (letters, digits, -)") }
            guard !Self.reservedHeaders.contains(name), !name.hasPrefix("x-sluice-") else {
                throw ConfigError("\(at)[\(index)]: \(name) carries something else; a key is never read from it")
            }
            guard !names.contains(name) else { throw ConfigError("\(at)[\(index)]: \(name) is listed twice") }
            names.append(name)
        }
        return names
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
                guard let bytes = value.int, bytes > 0 else {
                    throw ConfigError("sluice_settings.max_request_body_bytes must be positive")
                }
                settings.maxRequestBodyBytes = bytes
            case "max_json_depth":
                guard let depth = value.int, (2...512).contains(depth) else {
                    throw ConfigError("sluice_settings.max_json_depth must be 2...512")
                }
                settings.maxJSONDepth = depth
            case "connect_timeout_seconds": settings.connectTimeoutSeconds = try seconds()
            case "first_byte_timeout_seconds": settings.firstByteTimeoutSeconds = try seconds()
            case "idle_timeout_seconds": settings.idleTimeoutSeconds = try seconds()
            case "drain_timeout_seconds": settings.drainTimeoutSeconds = try seconds()
            case "request_read_timeout_seconds": settings.requestReadTimeoutSeconds = try seconds()
            case "max_connections":
                guard let count = value.int, count > 0 else {
                    throw ConfigError("sluice_settings.max_connections must be positive")
                }
                settings.maxConnections = count
            case "key_headers":
                settings.keyHeaders = try keyHeaders(value)
            case "trusted_identity":
                settings.trustedIdentity = try TrustedIdentitySettings.parse(value)
            default:
                throw ConfigError(
                    "sluice_settings.\(Identifier.quoted(key)) is unknown"
                        + Suggestion.hint(for: key, among: Self.settingsFields))
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

/// `model_list` gathered by alias into the wire's model documents, remembering where each
/// deployment came from so the compiler's messages can name the file's own path.
struct ModelList {
    private(set) var documents: [ModelDocument] = []
    /// Aliases seen only with providers the agent skips: defined, so a list naming them is
    /// not a dangling reference, but not served.
    private(set) var skippedAliases: Set<String> = []
    /// Literal `api_key`s, under made-up references no environment variable has.
    private(set) var inlineCredentials: [String: Secret] = [:]
    private var origins: [(documentPath: String, filePath: String)] = []

    mutating func skip(_ alias: String) {
        if !documents.contains(where: { $0.alias == alias }) { skippedAliases.insert(alias) }
    }

    mutating func holdInline(_ secret: Secret) -> String {
        let reference = "SLUICE_INLINE_API_KEY_\(inlineCredentials.count)"
        inlineCredentials[reference] = secret
        return reference
    }

    /// Adds a deployment; returns a warning when its price differs from the alias's.
    mutating func add(
        _ deployment: DeploymentDocument, alias: String, origin: String, price: ModelPrices?,
        maxOutputTokens: Int?, accessGroups: [String] = []
    ) -> String? {
        skippedAliases.remove(alias)
        let index: Int
        if let found = documents.firstIndex(where: { $0.alias == alias }) {
            index = found
        } else {
            documents.append(ModelDocument(alias: alias, deployments: []))
            index = documents.count - 1
            origins.append(("models.\(Identifier.quoted(alias))", "model_list entry \(Identifier.quoted(alias))"))
        }
        let path = "models.\(Identifier.quoted(alias)).deployments[\(documents[index].deployments.count)]"
        origins.append((path, "\(origin).litellm_params"))
        documents[index].deployments.append(deployment)
        for group in accessGroups where !(documents[index].accessGroups ?? []).contains(group) {
            documents[index].accessGroups = (documents[index].accessGroups ?? []) + [group]
        }
        if let tokens = maxOutputTokens {
            documents[index].maxOutputTokens = min(documents[index].maxOutputTokens ?? tokens, tokens)
        }
        guard let price else { return nil }
        let model = documents[index]
        if model.priceFields.isEmpty {
            price.apply(to: &documents[index])
            return nil
        }
        var priced = model
        price.apply(to: &priced)
        guard priced.priceFields.map(\.usd) != model.priceFields.map(\.usd)
            || priced.priceFields.map(\.name) != model.priceFields.map(\.name)
        else { return nil }
        return "\(origin): \(alias) has differing prices across deployments; the first is used"
    }

    /// Why a file is refused: each entry's first problem, under the file's paths. The
    /// compiler's word on what a bundle would disable with the entry is left out (the file
    /// is refused whole), and so are the CLI commands that would fix a control plane.
    func refusal(_ problems: [AdmissionProblem]) -> String {
        var entries: Set<String> = []
        var shown: [String] = []
        for problem in problems {
            let text = problem.statement
            // `keys."k1": …` and `keys."k1".team: …` are one entry's problem, said twice.
            let entry = text.split(separator: ":", maxSplits: 1).first.map {
                $0.split(separator: ".").prefix(2).joined(separator: ".")
            }
            guard entries.insert(entry ?? text).inserted else { continue }
            shown.append(filePath(text))
        }
        return shown.prefix(5).joined(separator: "; ") + (shown.count > 5 ? " (and \(shown.count - 5) more)" : "")
    }

    /// A compiler message with the document's path for a deployment or alias replaced by
    /// the file's (`model_list[2].litellm_params.api_base`), and policy paths put under
    /// `sluice_policy`.
    func filePath(_ message: String) -> String {
        // Longest first: a deployment's path starts with its alias's.
        for (documentPath, filePath) in origins.sorted(by: { $0.documentPath.count > $1.documentPath.count })
        where message.hasPrefix(documentPath) {
            let rest = message.dropFirst(documentPath.count)
            if rest.hasPrefix(".limits") { return "sluice_policy.\(message)" }
            return filePath + rest
        }
        if message.hasPrefix("settings.router.") {
            return "router_settings." + message.dropFirst("settings.router.".count)
        }
        if message.hasPrefix("settings.") { return "sluice_policy." + message.dropFirst("settings.".count) }
        for section in ["teams.", "projects.", "services.", "keys.", "end_users."] where message.hasPrefix(section) {
            return "sluice_policy.\(message)"
        }
        return message
    }
}

/// A `model_info`'s prices, as given (USD per token).
struct ModelPrices: Equatable {
    var input: Double?
    var output: Double?
    var cacheRead: Double?
    var cacheCreation: Double?
    var reasoning: Double?

    /// Sets the alias's prices. With one plain rate given the other is $0, as LiteLLM reads
    /// it; with neither, both stay absent and the compiler refuses the refinements alone.
    func apply(to model: inout ModelDocument) {
        let plain = input != nil || output != nil
        model.inputCostPerToken = plain ? input ?? 0 : nil
        model.outputCostPerToken = plain ? output ?? 0 : nil
        model.cacheReadInputTokenCost = cacheRead
        model.cacheCreationInputTokenCost = cacheCreation
        model.outputCostPerReasoningToken = reasoning
    }
}
