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

        public init(keyPepper: Secret?, credential: @escaping @Sendable (String) -> Secret?,
                    timeZone: @escaping @Sendable (String) -> TimeZoneRules?) {
            self.keyPepper = keyPepper
            self.credential = credential
            self.timeZone = timeZone
        }
    }

    /// The engine's policy from this document. Every field is checked as strictly as the
    /// agent's own file: a document that fails is refused whole, never applied in part.
    /// Deployments of providers this agent cannot speak are skipped and reported.
    public func policy(in context: LocalContext) throws(WireError) -> (policy: Policy, warnings: [String]) {
        var warnings: [String] = []
        var aliases: [ModelAlias] = []
        var modelLimits: [String: Limits] = [:]
        for (index, model) in models.enumerated() {
            let path = "models[\(index)] (\(model.alias.prefix(64)))"
            guard !model.alias.isEmpty else { throw WireError("models[\(index)].alias is empty") }
            var deployments: [Deployment] = []
            for (position, deployment) in model.deployments.enumerated() {
                guard let dialect = ProviderDialect(rawValue: deployment.provider) else {
                    warnings.append("\(path).deployments[\(position)]: provider \(deployment.provider) is not supported by this agent; skipped")
                    continue
                }
                let endpoint: Endpoint
                do {
                    endpoint = try Endpoint(parsing: deployment.apiBase)
                } catch {
                    throw WireError("\(path).deployments[\(position)]: \(error.message)")
                }
                var credential = Secret("")
                if let reference = deployment.credentialRef {
                    guard let found = context.credential(reference) else {
                        throw WireError("\(path).deployments[\(position)]: the credential \(reference) is not set on this agent")
                    }
                    credential = found
                }
                guard deployment.weight >= 1 else { throw WireError("\(path).deployments[\(position)].weight must be at least 1") }
                if dialect == .azure {
                    guard Deployment.isURLSafeName(deployment.upstreamModel) else {
                        throw WireError("\(path).deployments[\(position)].upstream_model must be an Azure deployment name (letters, digits, - . _)")
                    }
                    if let version = deployment.apiVersion, !Deployment.isValidAPIVersion(version) {
                        throw WireError("\(path).deployments[\(position)].api_version must be letters, digits, - and .")
                    }
                }
                if dialect == .gemini, !Deployment.isURLSafeName(deployment.upstreamModel) {
                    throw WireError("\(path).deployments[\(position)].upstream_model must be a Gemini model name (letters, digits, - . _)")
                }
                deployments.append(Deployment(alias: model.alias, dialect: dialect, upstreamModel: deployment.upstreamModel, endpoint: endpoint,
                                              credential: credential, weight: deployment.weight,
                                              requestsPerMinute: deployment.rpm, tokensPerMinute: deployment.tpm,
                                              apiVersion: dialect == .azure ? deployment.apiVersion ?? ProviderDialect.defaultAzureAPIVersion : nil))
            }
            guard !deployments.isEmpty else { continue }
            var price: Price?
            if model.inputCostPerToken != nil || model.outputCostPerToken != nil {
                do {
                    price = try Price(inputUSDPerToken: model.inputCostPerToken ?? 0, outputUSDPerToken: model.outputCostPerToken ?? 0)
                } catch {
                    throw WireError("\(path): \(error.message)")
                }
            }
            aliases.append(ModelAlias(name: model.alias, deployments: deployments, price: price, maxOutputTokens: model.maxOutputTokens))
            if let limits = model.limits { modelLimits[model.alias] = try limits.limits(at: "\(path).limits") }
        }

        var catalog = Catalog(aliases)
        if let router = settings.router { catalog.router = try router.settings(for: catalog, warnings: &warnings) }
        var policy = Policy(version: String(version), catalog: catalog, keyPepper: context.keyPepper)
        policy.modelLimits = modelLimits
        for (index, key) in keys.enumerated() {
            let path = "keys[\(index)] (\(key.id.prefix(64)))"
            guard let hash = KeyHash(encoded: key.hash) else { throw WireError("\(path).hash must be hmac-sha256: and 64 hex digits") }
            var previous: KeyHash?
            if let text = key.previousHash {
                guard let parsed = KeyHash(encoded: text) else { throw WireError("\(path).previous_hash is malformed") }
                previous = parsed
            }
            policy.keys.append(KeyPolicy(id: key.id, hash: hash, previousHash: previous, previousHashValidUntil: key.previousHashExpiresAt,
                                         team: key.team, project: key.project, metadata: key.metadata, expiresAt: key.expiresAt,
                                         revoked: key.revoked, models: rules(key.allowedModels, key.deniedModels),
                                         limits: try key.limits?.limits(at: "\(path).limits") ?? .none))
        }
        for team in teams {
            let filters = try team.promptFilters.map { filter throws(WireError) in try compile(filter, at: "teams.\(team.name)") }
            policy.teams[team.name] = TeamPolicy(name: team.name, models: rules(team.allowedModels, team.deniedModels),
                                                 limits: try team.limits?.limits(at: "teams.\(team.name).limits") ?? .none,
                                                 promptFilters: filters)
        }
        for project in projects {
            policy.projects[project.name] = ProjectPolicy(name: project.name, team: project.team,
                                                          models: rules(project.allowedModels, project.deniedModels),
                                                          limits: try project.limits?.limits(at: "projects.\(project.name).limits") ?? .none)
        }
        for service in services {
            guard service.name == "*" || service.name.split(separator: "/").count == 2 else {
                throw WireError("services: \(service.name.prefix(64)) must be namespace/service or *")
            }
            policy.services[service.name] = ServicePolicy(name: service.name, keylessAllowed: service.keyless,
                                                          models: rules(service.allowedModels, service.deniedModels),
                                                          limits: try service.limits?.limits(at: "services.\(service.name).limits") ?? .none)
        }
        policy.onlyAllowModels = settings.onlyAllowModels.map(Set.init)
        policy.promptFilters = try settings.promptFilters.map { filter throws(WireError) in try compile(filter, at: "settings") }
        policy.defaultLimits = try settings.defaultLimits?.limits(at: "settings.default_limits") ?? .none
        policy.endUserDefaultLimits = try settings.endUserDefaultLimits?.limits(at: "settings.end_user_default_limits") ?? .none
        guard let zone = context.timeZone(settings.timeZone) else { throw WireError("settings.time_zone \(settings.timeZone.prefix(64)) is not known here") }
        policy.timeZone = zone
        guard let unpriced = UnpricedModels(rawValue: settings.unpricedModels) else {
            throw WireError("settings.unpriced_models must be deny, deny_when_budgeted or flag")
        }
        policy.unpricedModels = unpriced
        policy.defaultMaxOutputTokens = settings.defaultMaxOutputTokens
        for scope in exhausted {
            guard let kind = Scope.Kind(rawValue: scope.kind), let limit = LimitKind(rawValue: scope.limit) else {
                throw WireError("exhausted: unknown scope kind \(scope.kind.prefix(32)) or limit \(scope.limit.prefix(32))")
            }
            policy.exhausted[Scope(kind, scope.name)] = ExhaustedBudget(limit: limit, until: scope.until)
        }
        do {
            try policy.validate()
        } catch {
            throw WireError(error.message)
        }
        return (policy, warnings)
    }

    private func rules(_ allowed: [String]?, _ denied: [String]) -> ModelRules {
        ModelRules(allowed: allowed.map(Set.init), denied: Set(denied))
    }

    private func compile(_ filter: PromptFilterDocument, at path: String) throws(WireError) -> PromptFilter {
        do {
            return try PromptFilter(name: filter.name, pattern: filter.pattern)
        } catch {
            throw WireError("\(path).prompt_filters: \(error.message)")
        }
    }
}
