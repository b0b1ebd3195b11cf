import SluicePolicy

/// One thing wrong with a policy write: where, what, and the command that would fix it.
public struct AdmissionProblem: Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String
    /// What agents would do about it beyond leaving the entry out, when there is more.
    public var consequence: String?
    /// A `sluice` command that would create what is missing, when there is one.
    public var fix: String?

    public init(path: String, message: String, consequence: String? = nil, fix: String? = nil) {
        self.path = path
        self.message = message
        self.consequence = consequence
        self.fix = fix
    }

    /// Where and what, without the consequence or the fix.
    public var statement: String { path.isEmpty ? message : "\(path): \(message)" }

    public var description: String {
        statement + (consequence.map { "; \($0)" } ?? "") + (fix.map { " (create it with: \($0))" } ?? "")
    }
}

extension PolicyDocument {
    /// What the agents' compiler disables or refuses in this document, and every dangling
    /// reference: the one check a policy input passes before it is used, run by the control
    /// plane on every write and by an agent on its own YAML file.
    /// `knownAliases` are aliases defined where this document cannot show them (an agent
    /// file's alias whose every deployment uses a provider the agent skips).
    public func admissionProblems(in context: LocalContext, knownAliases: Set<String> = []) -> [AdmissionProblem] {
        admit(in: context, knownAliases: knownAliases).problems
    }

    /// `admissionProblems(in:knownAliases:)` with what the compiler made of the document
    /// (nil when it refused it whole), for a caller that uses the policy once it is clean.
    public func admit(in context: LocalContext, knownAliases: Set<String> = [])
        -> (compiled: Compiled?, problems: [AdmissionProblem])
    {
        do {
            let compiled = try compile(in: context)
            // References first: theirs is the message that says what to create.
            let problems =
                danglingReferences(knownAliases: knownAliases)
                + compiled.disabled.map { AdmissionProblem(path: "", message: $0.problem, consequence: $0.consequence) }
            return (compiled, problems)
        } catch {
            return (nil, [AdmissionProblem(path: "", message: error.message)])
        }
    }

    /// Every entry's names against the identifier grammar, each problem's path starting
    /// at the entry (`teams."ML".name`). The control plane checks only what a write
    /// changes; a whole file written at once is checked whole.
    public func grammarProblems() -> [AdmissionProblem] {
        func under(_ prefix: String, _ problems: [AdmissionProblem]) -> [AdmissionProblem] {
            problems.map { AdmissionProblem(path: "\(prefix).\($0.path)", message: $0.message, fix: $0.fix) }
        }
        var problems: [AdmissionProblem] = []
        for model in models {
            problems += under("models.\(Identifier.quoted(model.alias))", Self.grammarProblems(model: model))
        }
        for team in teams {
            problems += under("teams.\(Identifier.quoted(team.name))", Self.grammarProblems(team: team))
        }
        for project in projects {
            problems += under("projects.\(Identifier.quoted(project.name))", Self.grammarProblems(project: project))
        }
        for service in services {
            problems += under("services.\(Identifier.quoted(service.name))", Self.grammarProblems(service: service))
        }
        for key in keys { problems += under("keys.\(Identifier.quoted(key.id))", Self.grammarProblems(key: key)) }
        for endUser in endUsers ?? [] {
            problems += under("end_users.\(Identifier.quoted(endUser.name))", Self.grammarProblems(endUser: endUser))
        }
        problems += under("settings", Self.grammarProblems(settings: settings))
        return problems
    }

    /// Every name a document refers to that it does not define: allow and deny lists naming
    /// an alias that is not in the catalog, projects and keys naming a missing team or
    /// project, fallbacks naming a missing alias. Agents tolerate these (an alias a list
    /// names may be one this agent skipped); the control plane refuses a write that adds one.
    public func danglingReferences(knownAliases: Set<String> = []) -> [AdmissionProblem] {
        // Lists may name an alias or an access group (every alias in it).
        let aliases = Set(models.map(\.alias)).union(knownAliases).union(models.flatMap { $0.accessGroups ?? [] })
        let teamNames = Set(teams.map(\.name))
        let projectNames = Set(projects.map(\.name))
        var problems: [AdmissionProblem] = []
        let wildcards = aliases.filter(Identifier.isWildcardAlias)
        func check(_ list: [String]?, at path: String) {
            // A name a wildcard alias serves (openai/gpt-4o under openai/*) is a model too.
            for name in list ?? []
            where !aliases.contains(name) && !wildcards.contains(where: { Identifier.wildcard($0, covers: name) }) {
                problems.append(
                    AdmissionProblem(
                        path: path,
                        message:
                            "\(Identifier.quoted(name)) is not a model\(Suggestion.hint(for: name, among: aliases))",
                        fix:
                            "sluice models create \(name) --provider openai --upstream-model MODEL "
                            + "--credential-ref ENV_NAME"
                    ))
            }
        }
        func team(_ name: String, at path: String) {
            guard !teamNames.contains(name) else { return }
            problems.append(
                AdmissionProblem(
                    path: path,
                    message:
                        "team \(Identifier.quoted(name)) does not exist\(Suggestion.hint(for: name, among: teamNames))",
                    fix: "sluice teams create \(name)"))
        }
        for entry in teams {
            check(entry.allowedModels, at: "teams.\(Identifier.quoted(entry.name)).allowed_models")
            check(entry.deniedModels, at: "teams.\(Identifier.quoted(entry.name)).denied_models")
        }
        for entry in projects {
            let path = "projects.\(Identifier.quoted(entry.name))"
            team(entry.team, at: "\(path).team")
            check(entry.allowedModels, at: "\(path).allowed_models")
            check(entry.deniedModels, at: "\(path).denied_models")
        }
        for entry in services {
            check(entry.allowedModels, at: "services.\(Identifier.quoted(entry.name)).allowed_models")
            check(entry.deniedModels, at: "services.\(Identifier.quoted(entry.name)).denied_models")
        }
        for key in keys {
            let path = "keys.\(Identifier.quoted(key.id))"
            team(key.team, at: "\(path).team")
            if let project = key.project, !projectNames.contains(project) {
                problems.append(
                    AdmissionProblem(
                        path: "\(path).project",
                        message:
                            "project \(Identifier.quoted(project)) does not exist"
                            + Suggestion.hint(for: project, among: projectNames),
                        fix: "sluice projects create \(project) --team \(key.team)"))
            }
            check(key.allowedModels, at: "\(path).allowed_models")
            check(key.deniedModels, at: "\(path).denied_models")
        }
        check(settings.onlyAllowModels, at: "settings.only_allow_models")
        let keyIDs = Set(keys.map(\.id))
        func scopeReferences(_ scopes: ScopesDocument?, at path: String) {
            for name in scopes?.teams ?? [] { team(name, at: "\(path).teams") }
            for name in scopes?.projects ?? [] where !projectNames.contains(name) {
                problems.append(
                    AdmissionProblem(
                        path: "\(path).projects",
                        message: "project \(Identifier.quoted(name)) does not exist"
                            + Suggestion.hint(for: name, among: projectNames)))
            }
            for name in scopes?.keys ?? [] where !keyIDs.contains(name) {
                problems.append(
                    AdmissionProblem(
                        path: "\(path).keys",
                        message: "key \(Identifier.quoted(name)) does not exist"
                            + Suggestion.hint(for: name, among: keyIDs)))
            }
        }
        for guardrail in settings.guardrails ?? [] {
            scopeReferences(guardrail.scopes, at: "settings.guardrails.\(Identifier.quoted(guardrail.name)).scopes")
        }
        for entry in settings.passThrough ?? [] {
            let path = "settings.pass_through.\(Identifier.quoted(entry.name))"
            scopeReferences(entry.scopes, at: "\(path).scopes")
            check([entry.alias], at: "\(path).alias")
        }
        if let router = settings.router {
            for (name, target) in (router.modelGroupAlias ?? [:]).sorted(by: { $0.key < $1.key }) {
                check([target], at: "settings.router.model_group_alias.\(Identifier.quoted(name))")
            }
            for name in router.hiddenGroupAliases ?? [] where router.modelGroupAlias?[name] == nil {
                problems.append(
                    AdmissionProblem(
                        path: "settings.router.hidden_group_aliases",
                        message: "\(Identifier.quoted(name)) is not a model_group_alias name"))
            }
            for (name, table) in [
                ("fallbacks", router.fallbacks), ("context_window_fallbacks", router.contextWindowFallbacks),
                ("content_policy_fallbacks", router.contentPolicyFallbacks),
            ] {
                for (alias, targets) in (table ?? [:]).sorted(by: { $0.key < $1.key }) {
                    check([alias] + targets, at: "settings.router.\(name).\(Identifier.quoted(alias))")
                }
            }
        }
        return problems
    }

    /// Names that break the identifier grammar (`Identifier`) in one entity's own fields.
    /// Checked for what a write creates or changes; stored names from before the grammar
    /// keep working.
    public static func grammarProblems(team: TeamDocument) -> [AdmissionProblem] {
        var problems = name(team.name, .team, at: "name")
        problems += filterNames(team.promptFilters, at: "prompt_filters")
        return problems + LimitsDocument.alertProblems(team.limits)
    }

    /// The project's own name and its team's name checked against the identifier grammar.
    public static func grammarProblems(project: ProjectDocument) -> [AdmissionProblem] {
        name(project.name, .project, at: "name") + name(project.team, .team, at: "team")
            + LimitsDocument.alertProblems(project.limits)
    }

    /// The service's name checked against the identifier grammar (`namespace/service`).
    public static func grammarProblems(service: ServiceDocument) -> [AdmissionProblem] {
        name(service.name, .service, at: "name") + LimitsDocument.alertProblems(service.limits)
    }

    /// The alias's grammar, between 1 and 100 deployments, and a known provider for each.
    public static func grammarProblems(model: ModelDocument) -> [AdmissionProblem] {
        var problems = name(model.alias, .alias, at: "alias")
        if model.deployments.isEmpty {
            problems.append(AdmissionProblem(path: "deployments", message: "a model needs at least one deployment"))
        }
        if model.deployments.count > 100 {
            problems.append(AdmissionProblem(path: "deployments", message: "at most 100 deployments"))
        }
        for (index, deployment) in model.deployments.enumerated()
        where ProviderDialect(rawValue: deployment.provider) == nil {
            problems.append(
                AdmissionProblem(
                    path: "deployments[\(index)].provider",
                    message: "must be openai, anthropic, azure or gemini"
                        + Suggestion.hint(for: deployment.provider, among: ["openai", "anthropic", "azure", "gemini"])))
        }
        return problems
    }

    /// The key's id, team and project names, and its metadata (at most 64 entries, keys in the
    /// metadata-key grammar, values at most 256 bytes on one line).
    public static func grammarProblems(key: KeyDocument) -> [AdmissionProblem] {
        var problems =
            name(key.id, .key, at: "id") + name(key.team, .team, at: "team") + LimitsDocument.alertProblems(key.limits)
        if let project = key.project { problems += name(project, .project, at: "project") }
        if key.metadata.count > 64 {
            problems.append(AdmissionProblem(path: "metadata", message: "at most 64 entries"))
        }
        for (field, value) in key.metadata.sorted(by: { $0.key < $1.key }) {
            problems += name(field, .metadataKey, at: "metadata")
            if !Identifier.isMetadataValue(value) {
                problems.append(
                    AdmissionProblem(
                        path: "metadata.\(Identifier.quoted(field))",
                        message: "a value is at most 256 bytes on one line, without control characters"))
            }
        }
        return problems
    }

    /// An end user's name: what callers send as `user`, so any text of 1 to 256 bytes on one
    /// line without control characters.
    public static func grammarProblems(endUser: EndUserDocument) -> [AdmissionProblem] {
        guard !endUser.name.isEmpty, Identifier.isMetadataValue(endUser.name) else {
            return [
                AdmissionProblem(
                    path: "name", message: "an end user is 1 to 256 bytes on one line, without control characters")
            ]
        }
        return []
    }

    /// The settings' prompt-filter and guardrail names checked against the identifier grammar.
    public static func grammarProblems(settings: SettingsDocument) -> [AdmissionProblem] {
        var problems = filterNames(settings.promptFilters, at: "prompt_filters")
        func services(_ scopes: ScopesDocument?, at path: String) {
            for (position, service) in (scopes?.services ?? []).enumerated()
            where service != "*" && !Identifier.isServiceName(service) {
                problems.append(
                    AdmissionProblem(
                        path: "\(path).scopes.services[\(position)]",
                        message: "a service is named namespace/service (DNS labels), or *"))
            }
        }
        for (index, guardrail) in (settings.guardrails ?? []).enumerated() {
            problems += name(guardrail.name, .guardrail, at: "guardrails[\(index)].name")
            services(guardrail.scopes, at: "guardrails[\(index)]")
        }
        for (index, entry) in (settings.passThrough ?? []).enumerated() {
            problems += name(entry.name, .passThrough, at: "pass_through[\(index)].name")
            services(entry.scopes, at: "pass_through[\(index)]")
        }
        return problems
    }

    private static func name(_ text: String, _ kind: Identifier.Kind, at path: String) -> [AdmissionProblem] {
        Identifier.problem(text, as: kind).map { [AdmissionProblem(path: path, message: $0)] } ?? []
    }

    private static func filterNames(_ filters: [PromptFilterDocument], at path: String) -> [AdmissionProblem] {
        filters.enumerated().flatMap { index, filter in name(filter.name, .promptFilter, at: "\(path)[\(index)].name") }
    }
}
