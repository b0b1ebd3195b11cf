import SluicePolicy
import SluiceWire
import Yams

/// The `sluice_policy` section of the agent's YAML, decoded into the wire documents the
/// control plane and bundles use. This reader only decodes: it refuses unknown fields and
/// wrong types with the path to the field, and leaves every rule (limit ranges, hashes,
/// names, references, time zones, patterns) to the one compiler, `PolicyDocument.compile`.
struct PolicySection {
    var keyPepper: Secret?
    var teams: [TeamDocument] = []
    var projects: [ProjectDocument] = []
    var services: [ServiceDocument] = []
    var keys: [KeyDocument] = []
    /// `static_keys`: tokens given in the file (or by `os.environ/NAME`), hashed at load.
    var staticKeys: [StaticKeys.Entry] = []
    var endUsers: [EndUserDocument] = []
    /// Per-alias limits (`models: {gpt-4o: {limits: …}}`).
    var modelLimits: [(alias: String, limits: LimitsDocument)] = []
    var settings = SettingsDocument()
    /// `rate_limits`, applied once the aliases are known (a bare name may be one).
    var rateLimits: [(name: String, rate: Limits)] = []

    static let sections: Set<String> = [
        "key_pepper", "time_zone", "unpriced_models", "default_max_output_tokens", "only_allow_models",
        "prompt_filters", "guardrails", "pass_through",
        "default_limits", "end_user_default_limits", "rate_limits", "teams", "projects", "services", "keys",
        "end_users",
        "models", "static_keys",
    ]

    /// Reads the section, its `os.environ/NAME` references already read by the loader.
    init(_ node: Node) throws(ConfigError) {
        let reader = Reader()
        guard let top = node.mapping else { throw ConfigError("sluice_policy must be a mapping") }
        for (keyNode, value) in top {
            let key = keyNode.string ?? ""
            let at = "sluice_policy.\(key)"
            switch key {
            case "key_pepper":
                keyPepper = try reader.secret(value, at: at)
            case "time_zone":
                settings.timeZone = try reader.text(value, at: at)
            case "unpriced_models":
                settings.unpricedModels = try reader.text(value, at: at)
            case "default_max_output_tokens":
                settings.defaultMaxOutputTokens = try reader.whole(value, at: at)
            case "only_allow_models":
                settings.onlyAllowModels = try reader.names(value, at: at)
            case "prompt_filters":
                settings.promptFilters = try reader.promptFilters(value, at: at)
            case "guardrails":
                settings.guardrails = try reader.guardrails(value, at: at)
            case "pass_through":
                settings.passThrough = try reader.passThroughs(value, at: at)
            case "default_limits":
                settings.defaultLimits = try reader.limits(value, at: at)
            case "end_user_default_limits":
                settings.endUserDefaultLimits = try reader.limits(value, at: at)
            case "rate_limits":
                for (name, entry) in try reader.namedEntries(value, at: at) {
                    do {
                        rateLimits.append((name, try Limits.parseRate(entry.string ?? "")))
                    } catch {
                        throw ConfigError("\(at).\(Identifier.quoted(name)): \(error.message)")
                    }
                }
            case "teams":
                for (name, entry) in try reader.namedEntries(value, at: at) {
                    let path = "\(at).\(Identifier.quoted(name))"
                    let fields = try reader.fields(
                        entry, at: path, known: ["allowed_models", "denied_models", "limits", "prompt_filters"])
                    teams.append(
                        TeamDocument(
                            name: name,
                            allowedModels: try fields["allowed_models"].map { node throws(ConfigError) in
                                try reader.names(node, at: "\(path).allowed_models")
                            },
                            deniedModels: try reader.names(fields["denied_models"], at: "\(path).denied_models"),
                            limits: try reader.limits(fields["limits"], at: "\(path).limits"),
                            promptFilters: try reader.promptFilters(
                                fields["prompt_filters"], at: "\(path).prompt_filters")))
                }
            case "projects":
                for (name, entry) in try reader.namedEntries(value, at: at) {
                    let path = "\(at).\(Identifier.quoted(name))"
                    let fields = try reader.fields(
                        entry, at: path, known: ["team", "allowed_models", "denied_models", "limits"])
                    guard let team = fields["team"] else { throw ConfigError("\(path).team is missing") }
                    projects.append(
                        ProjectDocument(
                            name: name, team: try reader.text(team, at: "\(path).team"),
                            allowedModels: try fields["allowed_models"].map { node throws(ConfigError) in
                                try reader.names(node, at: "\(path).allowed_models")
                            },
                            deniedModels: try reader.names(fields["denied_models"], at: "\(path).denied_models"),
                            limits: try reader.limits(fields["limits"], at: "\(path).limits")))
                }
            case "services":
                for (name, entry) in try reader.namedEntries(value, at: at) {
                    let path = "\(at).\(Identifier.quoted(name))"
                    let fields = try reader.fields(
                        entry, at: path, known: ["keyless", "allowed_models", "denied_models", "limits"])
                    services.append(
                        ServiceDocument(
                            name: name, keyless: try reader.keyless(fields["keyless"], at: "\(path).keyless"),
                            allowedModels: try fields["allowed_models"].map { node throws(ConfigError) in
                                try reader.names(node, at: "\(path).allowed_models")
                            },
                            deniedModels: try reader.names(fields["denied_models"], at: "\(path).denied_models"),
                            limits: try reader.limits(fields["limits"], at: "\(path).limits")))
                }
            case "keys":
                guard let entries = value.sequence else { throw ConfigError("\(at) must be a list") }
                for (index, entry) in entries.enumerated() {
                    keys.append(try reader.key(entry, at: "\(at)[\(index)]"))
                }
            case "static_keys":
                guard let entries = value.sequence else { throw ConfigError("\(at) must be a list") }
                for (index, entry) in entries.enumerated() {
                    let path = "\(at)[\(index)]"
                    let fields = try reader.fields(entry, at: path, known: ["id", "token", "team", "project"])
                    guard let id = fields["id"], let token = fields["token"], let team = fields["team"] else {
                        throw ConfigError("\(path) needs id, token and team")
                    }
                    let secret = try reader.secret(token, at: "\(path).token")
                    try StaticKeys.checkLength(secret.reveal(), origin: "\(path).token")
                    staticKeys.append(
                        StaticKeys.Entry(
                            id: try reader.text(id, at: "\(path).id"), token: secret,
                            team: try reader.text(team, at: "\(path).team"),
                            project: try fields["project"].map { node throws(ConfigError) in
                                try reader.text(node, at: "\(path).project")
                            }, origin: path))
                }
            case "end_users":
                for (name, entry) in try reader.namedEntries(value, at: at) {
                    // A limits mapping, which may also say `blocked: true`.
                    let path = "\(at).\(Identifier.quoted(name))"
                    var blocked = false
                    var limitsNode = entry
                    if let mapping = entry.mapping, let flag = mapping["blocked"] {
                        guard let value = flag.bool else { throw ConfigError("\(path).blocked must be true or false") }
                        blocked = value
                        let rest = mapping.filter { $0.key.string != "blocked" }.map { ($0.key, $0.value) }
                        limitsNode = .mapping(Node.Mapping(rest))
                    }
                    endUsers.append(
                        EndUserDocument(
                            name: name, limits: try reader.limits(limitsNode, at: path) ?? LimitsDocument(),
                            blocked: blocked))
                }
            case "models":
                for (name, entry) in try reader.namedEntries(value, at: at) {
                    let fields = try reader.fields(entry, at: "\(at).\(Identifier.quoted(name))", known: ["limits"])
                    modelLimits.append(
                        (
                            name,
                            try reader.limits(fields["limits"], at: "\(at).\(Identifier.quoted(name)).limits")
                                ?? LimitsDocument()
                        ))
                }
            default:
                throw ConfigError(
                    "sluice_policy.\(Identifier.quoted(key)) is unknown"
                        + Suggestion.hint(for: key, among: Self.sections))
            }
        }
    }

    /// Puts this section into `document`, whose models come from `model_list`.
    func apply(to document: inout PolicyDocument) throws(ConfigError) {
        document.teams = teams
        document.projects = projects
        document.services = services
        document.keys = keys
        document.endUsers = endUsers
        document.settings = settings
        for (alias, limits) in modelLimits {
            guard let index = document.models.firstIndex(where: { $0.alias == alias }) else {
                throw ConfigError(
                    "sluice_policy.models.\(Identifier.quoted(alias)) is not an alias in model_list"
                        + Suggestion.hint(for: alias, among: Set(document.models.map(\.alias))))
            }
            document.models[index].limits = limits
        }
        for (name, rate) in rateLimits {
            try Self.applyRate(rate, named: name, to: &document)
        }
    }

    /// `rate_limits: {default: 1000/day, org_1: 200, user_abc: 10}`: LiteLLM-style seed
    /// shorthand. A name may carry its kind (`team:org_1`, `user:abc`, `key:ci`); a bare
    /// name is looked up among teams, projects, key ids, services and models, and is an end
    /// user when it is none of them. A name that matches two kinds is refused.
    private static func applyRate(_ rate: Limits, named name: String, to document: inout PolicyDocument)
        throws(ConfigError)
    {
        let path = "sluice_policy.rate_limits.\(name)"
        let extra = LimitsDocument(requestsPerMinute: rate.requestsPerMinute, requestsPerDay: rate.requestsPerDay)
        if name == "default" {
            document.settings.defaultLimits = extra.overlaid(on: document.settings.defaultLimits)
            return
        }
        var kind: Scope.Kind
        var target = name
        if let colon = name.firstIndex(of: ":"), let explicit = Scope.Kind(rawValue: String(name[..<colon])) {
            kind = explicit
            target = String(name[name.index(after: colon)...])
        } else {
            var matches: [Scope.Kind] = []
            if document.teams.contains(where: { $0.name == name }) { matches.append(.team) }
            if document.projects.contains(where: { $0.name == name }) { matches.append(.project) }
            if document.keys.contains(where: { $0.id == name }) { matches.append(.key) }
            if document.services.contains(where: { $0.name == name }) { matches.append(.service) }
            if document.models.contains(where: { $0.alias == name }) { matches.append(.model) }
            guard matches.count <= 1 else {
                throw ConfigError(
                    "\(path): \(name) is both a \(matches.map(\.rawValue).joined(separator: " and a ")); "
                        + "write kind:\(name)"
                )
            }
            kind = matches.first ?? .user
        }
        /// Lays the rate over the limits of the entry named `target`.
        func overlay<Entry>(
            _ entries: WritableKeyPath<PolicyDocument, [Entry]>, _ limits: WritableKeyPath<Entry, LimitsDocument?>,
            named name: (Entry) -> String, _ what: String
        ) throws(ConfigError) {
            guard let index = document[keyPath: entries].firstIndex(where: { name($0) == target }) else {
                throw ConfigError("\(path): no \(what) \(Identifier.quoted(target))")
            }
            document[keyPath: entries][index][keyPath: limits] = extra.overlaid(
                on: document[keyPath: entries][index][keyPath: limits])
        }
        switch kind {
        case .team: try overlay(\.teams, \.limits, named: \.name, "team")
        case .project: try overlay(\.projects, \.limits, named: \.name, "project")
        case .key: try overlay(\.keys, \.limits, named: \.id, "key")
        case .service: try overlay(\.services, \.limits, named: \.name, "service")
        case .model: try overlay(\.models, \.limits, named: \.alias, "model")
        case .user:
            var users = document.endUsers ?? []
            if let index = users.firstIndex(where: { $0.name == target }) {
                users[index].limits = extra.overlaid(on: users[index].limits)
            } else {
                users.append(EndUserDocument(name: target, limits: extra))
            }
            document.endUsers = users
        }
    }
}

/// Typed reads of YAML nodes, each naming the path when the node is not what belongs there.
private struct Reader {
    func text(_ node: Node, at path: String) throws(ConfigError) -> String {
        guard let text = node.string else { throw ConfigError("\(path) must be a string") }
        return text
    }

    func whole(_ node: Node, at path: String) throws(ConfigError) -> Int {
        guard let number = node.int else { throw ConfigError("\(path) must be a whole number") }
        return number
    }

    func names(_ node: Node?, at path: String) throws(ConfigError) -> [String] {
        guard let node else { return [] }
        guard let items = node.sequence else { throw ConfigError("\(path) must be a list of model aliases") }
        var names: [String] = []
        for item in items {
            guard let name = item.string, !name.isEmpty else { throw ConfigError("\(path) must hold alias names") }
            names.append(name)
        }
        return names
    }

    func limits(_ node: Node?, at path: String) throws(ConfigError) -> LimitsDocument? {
        guard let node else { return nil }
        guard let mapping = node.mapping else { throw ConfigError("\(path) must be a mapping of limits") }
        var limits = LimitsDocument()
        for (keyNode, value) in mapping {
            let name = keyNode.string ?? ""
            guard let kind = LimitKind(rawValue: name) else {
                throw ConfigError(
                    "\(path).\(Identifier.quoted(name)) is not a limit; use one of "
                        + LimitKind.allCases.map(\.rawValue).joined(separator: ", ")
                        + Suggestion.hint(for: name, among: PolicySection.limitNames))
            }
            func count() throws(ConfigError) -> Int { try whole(value, at: "\(path).\(name)") }
            func usd() throws(ConfigError) -> Double {
                guard let number = value.float else {
                    throw ConfigError("\(path).\(name) must be an amount of US dollars")
                }
                return number
            }
            switch kind {
            case .requestsPerMinute: limits.requestsPerMinute = try count()
            case .tokensPerMinute: limits.tokensPerMinute = try count()
            case .requestsPerDay: limits.requestsPerDay = try count()
            case .maxParallelRequests: limits.maxParallelRequests = try count()
            case .dailySpend: limits.dailySpendUSD = try usd()
            case .monthlySpend: limits.monthlySpendUSD = try usd()
            }
        }
        return limits
    }

    func promptFilters(_ node: Node?, at path: String) throws(ConfigError) -> [PromptFilterDocument] {
        guard let node else { return [] }
        guard let items = node.sequence else { throw ConfigError("\(path) must be a list of {name, pattern}") }
        var filters: [PromptFilterDocument] = []
        for (index, item) in items.enumerated() {
            let fields = try self.fields(item, at: "\(path)[\(index)]", known: ["name", "pattern"])
            guard let name = fields["name"]?.string, let pattern = fields["pattern"]?.string else {
                throw ConfigError("\(path)[\(index)] needs a name and a pattern")
            }
            filters.append(PromptFilterDocument(name: name, pattern: pattern))
        }
        return filters
    }

    func guardrails(_ node: Node, at path: String) throws(ConfigError) -> [GuardrailDocument] {
        guard let items = node.sequence else { throw ConfigError("\(path) must be a list") }
        var guardrails: [GuardrailDocument] = []
        for (index, item) in items.enumerated() {
            let at = "\(path)[\(index)]"
            let fields = try self.fields(
                item, at: at,
                known: [
                    "name", "url", "timeout_ms", "on_failure", "sample_percent", "check_completion", "scopes",
                    "credential_ref",
                ])
            guard let name = fields["name"], let url = fields["url"] else {
                throw ConfigError("\(at) needs a name and a url")
            }
            var guardrail = GuardrailDocument(
                name: try text(name, at: "\(at).name"), url: try text(url, at: "\(at).url"))
            if let node = fields["timeout_ms"] {
                guardrail.timeoutMilliseconds = try whole(node, at: "\(at).timeout_ms")
            }
            if let node = fields["on_failure"] { guardrail.onFailure = try text(node, at: "\(at).on_failure") }
            if let node = fields["sample_percent"] {
                guardrail.samplePercent = try whole(node, at: "\(at).sample_percent")
            }
            if let node = fields["check_completion"] {
                guardrail.checkCompletion = try text(node, at: "\(at).check_completion")
            }
            if let node = fields["credential_ref"] {
                guardrail.credentialRef = try text(node, at: "\(at).credential_ref")
            }
            if let node = fields["scopes"] { guardrail.scopes = try scopes(node, at: "\(at).scopes") }
            guardrails.append(guardrail)
        }
        return guardrails
    }

    func scopes(_ node: Node, at path: String) throws(ConfigError) -> ScopesDocument {
        let fields = try self.fields(node, at: path, known: ["teams", "projects", "keys", "services"])
        return ScopesDocument(
            teams: try names(fields["teams"], at: "\(path).teams"),
            projects: try names(fields["projects"], at: "\(path).projects"),
            keys: try names(fields["keys"], at: "\(path).keys"),
            services: try names(fields["services"], at: "\(path).services"))
    }

    func passThroughs(_ node: Node, at path: String) throws(ConfigError) -> [PassThroughDocument] {
        guard let items = node.sequence else { throw ConfigError("\(path) must be a list") }
        var entries: [PassThroughDocument] = []
        for (index, item) in items.enumerated() {
            let at = "\(path)[\(index)]"
            let fields = try self.fields(item, at: at, known: ["name", "paths", "methods", "alias", "scopes"])
            guard let name = fields["name"], let paths = fields["paths"], let alias = fields["alias"],
                let scopes = fields["scopes"]
            else {
                throw ConfigError("\(at) needs a name, paths, an alias and scopes")
            }
            entries.append(
                PassThroughDocument(
                    name: try text(name, at: "\(at).name"), paths: try names(paths, at: "\(at).paths"),
                    methods: try fields["methods"].map { node throws(ConfigError) in
                        try names(node, at: "\(at).methods")
                    },
                    alias: try text(alias, at: "\(at).alias"), scopes: try self.scopes(scopes, at: "\(at).scopes")))
        }
        return entries
    }

    func key(_ entry: Node, at path: String) throws(ConfigError) -> KeyDocument {
        let fields = try self.fields(
            entry, at: path,
            known: [
                "id", "hash", "team", "project", "metadata", "expires_at", "revoked",
                "allowed_models", "denied_models", "limits",
            ])
        guard let id = fields["id"] else { throw ConfigError("\(path).id is missing") }
        guard let hash = fields["hash"] else {
            throw ConfigError("\(path).hash is missing: store `sluice-agent hash-key` output, never the key itself")
        }
        guard let team = fields["team"] else { throw ConfigError("\(path).team is missing") }
        var metadata: [String: String] = [:]
        if let node = fields["metadata"] {
            guard let mapping = node.mapping else { throw ConfigError("\(path).metadata must be a mapping") }
            for (name, value) in mapping {
                metadata[name.string ?? ""] = try text(value, at: "\(path).metadata.\(name.string ?? "")")
            }
        }
        var expiresAt: Int64?
        if let node = fields["expires_at"] {
            guard let seconds = parseTimestamp(try text(node, at: "\(path).expires_at")) else {
                throw ConfigError(
                    "\(path).expires_at must be a date (2027-01-31) or an RFC 3339 time (2027-01-31T12:00:00Z)")
            }
            expiresAt = seconds
        }
        var revoked = false
        if let node = fields["revoked"] {
            guard let flag = node.bool else { throw ConfigError("\(path).revoked must be true or false") }
            revoked = flag
        }
        return KeyDocument(
            id: try text(id, at: "\(path).id"), hash: try text(hash, at: "\(path).hash"),
            team: try text(team, at: "\(path).team"),
            project: try fields["project"].map { node throws(ConfigError) in try text(node, at: "\(path).project") },
            metadata: metadata, expiresAt: expiresAt, revoked: revoked,
            allowedModels: try fields["allowed_models"].map { node throws(ConfigError) in
                try names(node, at: "\(path).allowed_models")
            },
            deniedModels: try names(fields["denied_models"], at: "\(path).denied_models"),
            limits: try limits(fields["limits"], at: "\(path).limits"))
    }

    func keyless(_ node: Node?, at path: String) throws(ConfigError) -> Bool {
        guard let node else { return false }
        if let flag = node.bool { return flag }
        switch node.string {
        case "allowed": return true
        case "denied": return false
        default: throw ConfigError("\(path) must be allowed or denied")
        }
    }

    func namedEntries(_ node: Node, at path: String) throws(ConfigError) -> [(String, Node)] {
        guard let mapping = node.mapping else { throw ConfigError("\(path) must be a mapping of names to settings") }
        var entries: [(String, Node)] = []
        for (keyNode, value) in mapping {
            guard let name = keyNode.string, !name.isEmpty else { throw ConfigError("\(path) has an empty name") }
            entries.append((name, value))
        }
        return entries
    }

    /// The mapping's fields by name; one not in `known` is an error with a "did you mean".
    func fields(_ node: Node, at path: String, known: Set<String>) throws(ConfigError) -> [String: Node] {
        guard let mapping = node.mapping else { throw ConfigError("\(path) must be a mapping") }
        var fields: [String: Node] = [:]
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? "?"
            guard known.contains(key) else {
                throw ConfigError(
                    "\(path).\(Identifier.quoted(key)) is unknown" + Suggestion.hint(for: key, among: known))
            }
            fields[key] = value
        }
        return fields
    }

    func secret(_ node: Node, at path: String) throws(ConfigError) -> Secret {
        guard let raw = node.string, !raw.isEmpty else { throw ConfigError("\(path) must be a string") }
        return Secret(raw)
    }
}

extension PolicySection {
    static let limitNames: Set<String> = Set(LimitKind.allCases.map(\.rawValue))
}
