import SluicePolicy

extension PolicyDocument {
    /// What the agent needs from its own side to turn a document into a policy.
    public struct LocalContext: Sendable {
        /// The pepper keys are hashed with (from the agent's secret mount).
        public var keyPepper: Secret?
        /// Resolves a deployment's `credential_ref` (an environment variable name).
        public var credential: @Sendable (String) -> Secret?
        /// Resolves a time zone name (`UTC`, `+05:30`, `Europe/Berlin`).
        public var timeZone: @Sendable (String) -> TimeZoneRules?

        public init(
            keyPepper: Secret?, credential: @escaping @Sendable (String) -> Secret?,
            timeZone: @escaping @Sendable (String) -> TimeZoneRules?
        ) {
            self.keyPepper = keyPepper
            self.credential = credential
            self.timeZone = timeZone
        }
    }

    /// A document turned into the engine's policy, and what was left out on the way.
    public struct Compiled: Sendable {
        public var policy: Policy
        /// Things this agent cannot use that are not the document's fault (a provider it
        /// does not speak, a credential not mounted here): logged once.
        public var warnings: [String]
        /// Entries refused by the compiler, each disabled on its own (`path: why`): a bad
        /// deployment or alias is not served, a bad key or a key of a bad team or project
        /// authenticates no one, a bad service refuses every call. The control plane
        /// refuses a write that would add one; an agent still serves the rest.
        public var disabled: [DisabledEntry]
        /// Credential references some deployment needs that this agent does not hold.
        public var missingCredentials: [String]
    }

    /// An entry the compiler refused, and what an agent serving the document does about it
    /// beyond leaving the entry out (nil when nothing more).
    public struct DisabledEntry: Sendable, Equatable, CustomStringConvertible {
        /// `path: why`.
        public var problem: String
        public var consequence: String?

        public init(_ problem: String, consequence: String? = nil) {
            self.problem = problem
            self.consequence = consequence
        }

        public var description: String { problem + (consequence.map { "; \($0)" } ?? "") }
    }

    /// The engine's policy from this document: the one compiler for policy input, run by
    /// agents on every bundle and by the control plane on every write. A bad entry disables
    /// itself (see `Compiled.disabled`) and never widens access; only what no entry can
    /// stand without (settings, the pepper, budget markers) refuses the whole document.
    public func compile(in context: LocalContext) throws(WireError) -> Compiled {
        var compiler = Compiler(context: context)
        return try compiler.compile(self)
    }

    /// `compile(in:)` for callers that want only the policy and the warnings; disabled
    /// entries are reported among the warnings.
    public func policy(in context: LocalContext) throws(WireError) -> (policy: Policy, warnings: [String]) {
        let compiled = try compile(in: context)
        return (compiled.policy, compiled.warnings + compiled.disabled.map { "disabled: \($0)" })
    }
}

private struct Compiler {
    let context: PolicyDocument.LocalContext
    var warnings: [String] = []
    var disabled: [PolicyDocument.DisabledEntry] = []
    var missingCredentials: Set<String> = []
    /// Access group → the aliases in it, for the lists that name a group.
    var accessGroups: [String: Set<String>] = [:]

    init(context: PolicyDocument.LocalContext) {
        self.context = context
    }

    mutating func compile(_ document: PolicyDocument) throws(WireError) -> PolicyDocument.Compiled {
        var aliases: [ModelAlias] = []
        var modelLimits: [String: Limits] = [:]
        var unavailable: [String: String] = [:]
        var seenAliases: Set<String> = []
        for model in document.models {
            // Paths name entries, not positions, so a problem reads the same before and
            // after a write that adds an entry elsewhere.
            let path = "models.\(Identifier.quoted(model.alias))"
            guard !model.alias.isEmpty, seenAliases.insert(model.alias).inserted else {
                disabled.append(.init("\(path): the alias is empty or appears twice"))
                continue
            }
            do throws(WireError) {
                let (alias, missing) = try self.alias(model, at: path)
                if let alias {
                    aliases.append(alias)
                    if let limits = model.limits { modelLimits[model.alias] = try limits.limits(at: "\(path).limits") }
                } else if let missing {
                    unavailable[model.alias] = missing
                }
            } catch {
                disabled.append(.init(error.message))
            }
        }

        var catalog = Catalog(aliases)
        catalog.unavailableAliases = unavailable
        catalog.missingCredentials = missingCredentials.sorted()
        let aliasNames = Set(document.models.map(\.alias))
        for model in document.models {
            for group in model.accessGroups ?? [] {
                // A group may not take an alias's name: a list naming it would be ambiguous.
                guard !aliasNames.contains(group) else {
                    disabled.append(
                        .init(
                            "models.\(Identifier.quoted(model.alias)).access_groups: \(Identifier.quoted(group)) is"
                                + " also an alias"))
                    continue
                }
                accessGroups[group, default: []].insert(model.alias)
            }
        }
        if let router = document.settings.router {
            catalog.router = try router.settings(for: catalog, warnings: &warnings)
            for (name, target) in (router.modelGroupAlias ?? [:]).sorted(by: { $0.key < $1.key }) {
                let path = "settings.router.model_group_alias.\(Identifier.quoted(name))"
                if aliasNames.contains(name) || accessGroups[name] != nil {
                    disabled.append(.init("\(path): \(Identifier.quoted(name)) is already an alias or access group"))
                } else if Identifier.problem(name, as: .alias) != nil {
                    disabled.append(.init("\(path): \(Identifier.quoted(name)) is not a model name"))
                } else if catalog.alias(named: target) != nil || unavailable[target] != nil {
                    catalog.groupAliases[name] = target
                    if router.hiddenGroupAliases?.contains(name) == true { catalog.hiddenGroupAliases.insert(name) }
                } else if !aliasNames.contains(target) {
                    disabled.append(.init("\(path): \(Identifier.quoted(target)) is not a model"))
                }
            }
        }
        var policy = Policy(version: String(document.version), catalog: catalog, keyPepper: context.keyPepper)
        policy.modelLimits = modelLimits

        for team in document.teams {
            let path = "teams.\(Identifier.quoted(team.name))"
            do throws(WireError) {
                let filters = try team.promptFilters.map { filter throws(WireError) in try compile(filter, at: path) }
                policy.teams[team.name] = TeamPolicy(
                    name: team.name, models: rules(team.allowedModels, team.deniedModels),
                    limits: try team.limits?.limits(at: "\(path).limits", alerting: true) ?? .none,
                    promptFilters: filters)
            } catch {
                disabled.append(.init(error.message, consequence: "the team's keys and projects are disabled with it"))
            }
        }
        for project in document.projects {
            let path = "projects.\(Identifier.quoted(project.name))"
            guard policy.teams[project.team] != nil else {
                disabled.append(.init("\(path): team \(Identifier.quoted(project.team)) is missing or disabled"))
                continue
            }
            do throws(WireError) {
                policy.projects[project.name] = ProjectPolicy(
                    name: project.name, team: project.team,
                    models: rules(project.allowedModels, project.deniedModels),
                    limits: try project.limits?.limits(at: "\(path).limits", alerting: true) ?? .none)
            } catch {
                disabled.append(.init(error.message, consequence: "the project's keys are disabled with it"))
            }
        }
        for service in document.services {
            let path = "services.\(Identifier.quoted(service.name))"
            // A name no identity can have would never match: leave it out. A service whose
            // limits are bad refuses every call rather than serving its callers unlimited.
            guard Identifier.isServiceName(service.name) else {
                disabled.append(.init("\(path): a service is named namespace/service (DNS labels), or *"))
                continue
            }
            do throws(WireError) {
                policy.services[service.name] = ServicePolicy(
                    name: service.name, keylessAllowed: service.keyless,
                    models: rules(service.allowedModels, service.deniedModels),
                    limits: try service.limits?.limits(at: "\(path).limits", alerting: true) ?? .none)
            } catch {
                disabled.append(.init(error.message, consequence: "the service refuses every call until this is fixed"))
                policy.services[service.name] = ServicePolicy(
                    name: service.name, keylessAllowed: false,
                    models: ModelRules(allowed: [], denied: []))
            }
        }
        policy.keys = keys(document.keys, policy: policy)

        let settings = document.settings
        try settings.validate()
        policy.onlyAllowModels = settings.onlyAllowModels.map(expanded)
        policy.promptFilters = try settings.promptFilters.map { filter throws(WireError) in
            try compile(filter, at: "settings")
        }
        var guardrailNames: Set<String> = []
        for document in settings.guardrails ?? [] {
            let path = "settings.guardrails.\(Identifier.quoted(document.name))"
            var (guardrail, problems, warning) = document.compile(at: path, credential: context.credential)
            if !guardrailNames.insert(document.name).inserted {
                problems.append("\(path): the name appears twice")
                guardrail.unusableReason = guardrail.unusableReason ?? "its name appears twice in the policy"
            }
            if !problems.isEmpty {
                disabled.append(
                    .init(
                        problems.joined(separator: "; "),
                        consequence: guardrail.failureMode == .closed
                            ? "the guardrail refuses every call it checks until this is fixed"
                            : "the guardrail fails open: the calls it checks go on unchecked"))
            }
            if let warning { warnings.append(warning) }
            policy.guardrails.append(guardrail)
        }
        var passThroughNames: Set<String> = []
        for document in settings.passThrough ?? [] {
            let path = "settings.pass_through.\(Identifier.quoted(document.name))"
            guard passThroughNames.insert(document.name).inserted else {
                disabled.append(.init("\(path): the name appears twice", consequence: "only the first is in force"))
                continue
            }
            switch document.compile(at: path, catalog: policy.catalog) {
            case .success(let passThrough): policy.passThroughs.append(passThrough)
            case .failure(let error):
                disabled.append(.init(error.message, consequence: "its paths stay refused (endpoint_not_metered)"))
            }
        }
        policy.defaultLimits = try settings.defaultLimits?.limits(at: "settings.default_limits") ?? .none
        policy.endUserDefaultLimits =
            try settings.endUserDefaultLimits?.limits(at: "settings.end_user_default_limits") ?? .none
        guard let zone = context.timeZone(settings.timeZone) else {
            throw WireError("settings.time_zone \(Identifier.quoted(settings.timeZone)) is not known here")
        }
        policy.timeZone = zone
        guard let unpriced = UnpricedModels(rawValue: settings.unpricedModels) else {
            throw WireError("settings.unpriced_models must be deny, deny_when_budgeted or flag")
        }
        policy.unpricedModels = unpriced
        guard settings.defaultMaxOutputTokens > 0, settings.defaultMaxOutputTokens <= 10_000_000 else {
            throw WireError("settings.default_max_output_tokens must be 1 to 10000000")
        }
        policy.defaultMaxOutputTokens = settings.defaultMaxOutputTokens
        var seenEndUsers: Set<String> = []
        for endUser in document.endUsers ?? [] {
            let path = "end_users.\(Identifier.quoted(endUser.name))"
            do throws(WireError) {
                guard !endUser.name.isEmpty, endUser.name.utf8.count <= 256, seenEndUsers.insert(endUser.name).inserted
                else {
                    throw WireError("\(path): the name is empty, longer than 256 bytes or appears twice")
                }
                policy.endUserLimits[endUser.name] = try endUser.limits.limits(at: "\(path).limits")
                if endUser.blocked { policy.blockedEndUsers.insert(endUser.name) }
            } catch {
                // Left out, the end user falls back to end_user_default_limits: never unlimited
                // when a default is set.
                disabled.append(.init(error.message))
            }
        }
        for scope in document.exhausted {
            guard let kind = Scope.Kind(rawValue: scope.kind), let limit = LimitKind(rawValue: scope.limit) else {
                throw WireError(
                    "exhausted: unknown scope kind \(scope.kind.prefix(32)) or limit \(scope.limit.prefix(32))")
            }
            policy.exhausted[Scope(kind, scope.name)] = ExhaustedBudget(limit: limit, until: scope.until)
        }
        do {
            try policy.validate()
        } catch {
            throw WireError(error.message)
        }
        return PolicyDocument.Compiled(
            policy: policy, warnings: warnings, disabled: disabled,
            missingCredentials: missingCredentials.sorted())
    }

    /// The alias, or nil with the first missing credential when no deployment is usable here.
    private mutating func alias(_ model: ModelDocument, at path: String) throws(WireError) -> (ModelAlias?, String?) {
        var deployments: [Deployment] = []
        var missing: String?
        for (position, deployment) in model.deployments.enumerated() {
            let at = "\(path).deployments[\(position)]"
            guard let dialect = ProviderDialect(rawValue: deployment.provider) else {
                warnings.append(
                    "\(at): provider \(Identifier.quoted(deployment.provider)) is not supported by this agent; skipped")
                continue
            }
            do throws(WireError) {
                let checked = try self.deployment(deployment, dialect: dialect, alias: model.alias, at: at)
                guard let checked else {
                    missing = missing ?? deployment.credentialRef
                    continue
                }
                deployments.append(checked)
            } catch {
                disabled.append(.init(error.message))
            }
        }
        // No usable deployment: nothing to serve (each refusal was reported already).
        guard !deployments.isEmpty else { return (nil, missing) }
        var price: Price?
        if !model.hasPrice, let refinement = model.priceFields.first {
            // A cache or reasoning rate alone would price every other token at $0.
            throw WireError("\(path).\(refinement.name) needs input_cost_per_token or output_cost_per_token")
        }
        if model.hasPrice {
            do {
                price = try Price(
                    inputUSDPerToken: model.inputCostPerToken ?? 0, outputUSDPerToken: model.outputCostPerToken ?? 0,
                    cacheReadUSDPerToken: model.cacheReadInputTokenCost,
                    cacheCreationUSDPerToken: model.cacheCreationInputTokenCost,
                    reasoningUSDPerToken: model.outputCostPerReasoningToken)
            } catch {
                throw WireError("\(path): \(error.message)")
            }
        }
        if let tokens = model.maxOutputTokens, !(1...10_000_000).contains(tokens) {
            throw WireError("\(path).max_output_tokens must be 1 to 10000000")
        }
        return (
            ModelAlias(
                name: model.alias, deployments: deployments, price: price, maxOutputTokens: model.maxOutputTokens), nil
        )
    }

    /// A checked deployment, or nil when its credential is not held here (reported).
    private mutating func deployment(
        _ deployment: DeploymentDocument, dialect: ProviderDialect, alias: String,
        at path: String
    ) throws(WireError) -> Deployment? {
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(parsing: deployment.apiBase)
        } catch {
            throw WireError("\(path).api_base: \(error.message)")
        }
        guard deployment.weight >= 1, deployment.weight <= 1_000_000 else {
            throw WireError("\(path).weight must be 1 to 1000000")
        }
        for (name, value) in [("rpm", deployment.rpm), ("tpm", deployment.tpm)] {
            if let value, !(1...1_000_000_000).contains(value) { throw WireError("\(path).\(name) must be 1 to 1e9") }
        }
        guard !deployment.upstreamModel.isEmpty, deployment.upstreamModel.utf8.count <= 200 else {
            throw WireError("\(path).upstream_model must be 1 to 200 bytes")
        }
        // A wildcard alias's deployment may end in `*`, which the requested name's rest replaces.
        var upstreamName = deployment.upstreamModel
        if upstreamName.contains("*") {
            guard Identifier.isWildcardAlias(alias), upstreamName.hasSuffix("*"),
                upstreamName.dropLast().allSatisfy({ $0 != "*" })
            else {
                throw WireError("\(path).upstream_model may end in * only for a wildcard alias (openai/*)")
            }
            upstreamName = String(upstreamName.dropLast()) + "x"
        }
        if dialect == .azure {
            guard Deployment.isURLSafeName(upstreamName) else {
                throw WireError("\(path).upstream_model must be an Azure deployment name (letters, digits, - . _)")
            }
            if let version = deployment.apiVersion, !Deployment.isValidAPIVersion(version) {
                throw WireError("\(path).api_version must be letters, digits, - and .")
            }
        }
        if dialect == .gemini, !Deployment.isURLSafeName(upstreamName) {
            throw WireError("\(path).upstream_model must be a Gemini model name (letters, digits, - . _)")
        }
        if let caFile = deployment.caFile {
            guard !caFile.isEmpty, caFile.utf8.count <= 4096,
                !caFile.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
            else {
                throw WireError(
                    "\(path).ca_file must be the path of a CA bundle on the agent, one line of at most 4096 bytes")
            }
        }
        if let timeout = deployment.timeoutSeconds, !(timeout > 0 && timeout <= 86_400) {
            throw WireError("\(path).timeout_seconds must be more than 0 and at most 86400")
        }
        var credential = Secret("")
        if let reference = deployment.credentialRef {
            guard Deployment.isCredentialReference(reference) else {
                throw WireError("\(path).credential_ref must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
            }
            guard let found = context.credential(reference) else {
                missingCredentials.insert(reference)
                warnings.append(
                    "\(path): the credential \(reference) is not set on this agent; the deployment is left out")
                return nil
            }
            credential = found
        }
        return Deployment(
            alias: alias, dialect: dialect, upstreamModel: deployment.upstreamModel, endpoint: endpoint,
            credential: credential, caFile: deployment.caFile, weight: deployment.weight,
            requestsPerMinute: deployment.rpm, tokensPerMinute: deployment.tpm,
            timeoutSeconds: deployment.timeoutSeconds,
            apiVersion: dialect == .azure ? deployment.apiVersion ?? ProviderDialect.defaultAzureAPIVersion : nil)
    }

    /// Keys that authenticate: a key with a bad field, a duplicate, or a team or project
    /// that is missing or disabled is left out, so its secret opens nothing.
    private mutating func keys(_ documents: [KeyDocument], policy: Policy) -> [KeyPolicy] {
        var keys: [KeyPolicy] = []
        var ids: Set<String> = []
        var hashes: Set<KeyHash> = []
        for key in documents {
            let path = "keys.\(Identifier.quoted(key.id))"
            do throws(WireError) {
                guard !key.id.isEmpty, ids.insert(key.id).inserted else {
                    throw WireError("\(path): the id is empty or appears twice")
                }
                guard let hash = KeyHash(encoded: key.hash) else {
                    throw WireError("\(path).hash must be hmac-sha256: and 64 hex digits")
                }
                var previous: KeyHash?
                if let text = key.previousHash {
                    guard let parsed = KeyHash(encoded: text) else {
                        throw WireError("\(path).previous_hash is malformed")
                    }
                    previous = parsed
                }
                guard hashes.insert(hash).inserted, previous.map({ hashes.insert($0).inserted }) ?? true else {
                    throw WireError("\(path): the hash is also another key's")
                }
                guard policy.teams[key.team] != nil else {
                    throw WireError("\(path): team \(Identifier.quoted(key.team)) is missing or disabled")
                }
                if let project = key.project {
                    guard let found = policy.projects[project] else {
                        throw WireError("\(path): project \(Identifier.quoted(project)) is missing or disabled")
                    }
                    guard found.team == key.team else {
                        throw WireError(
                            "\(path): project \(Identifier.quoted(project)) belongs to team "
                                + Identifier.quoted(found.team)
                        )
                    }
                }
                keys.append(
                    KeyPolicy(
                        id: key.id, hash: hash, previousHash: previous,
                        previousHashValidUntil: key.previousHashExpiresAt,
                        team: key.team, project: key.project, metadata: key.metadata, expiresAt: key.expiresAt,
                        revoked: key.revoked, models: rules(key.allowedModels, key.deniedModels),
                        limits: try key.limits?.limits(at: "\(path).limits", alerting: true) ?? .none))
            } catch {
                disabled.append(.init(error.message))
            }
        }
        return keys
    }

    /// A list's names with each access group replaced by its aliases.
    private func expanded(_ names: [String]) -> Set<String> {
        guard !accessGroups.isEmpty else { return Set(names) }
        return Set(names.flatMap { accessGroups[$0].map(Array.init) ?? [$0] })
    }

    private func rules(_ allowed: [String]?, _ denied: [String]) -> ModelRules {
        ModelRules(allowed: allowed.map(expanded), denied: expanded(denied))
    }

    private func compile(_ filter: PromptFilterDocument, at path: String) throws(WireError) -> PromptFilter {
        do {
            return try PromptFilter(name: filter.name, pattern: filter.pattern)
        } catch {
            throw WireError("\(path).prompt_filters: \(error.message)")
        }
    }
}
