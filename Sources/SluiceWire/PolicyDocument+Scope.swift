import SluicePolicy

extension PolicyDocument {
    /// The part of this document an agent serving `service` can use: its own service entry
    /// (or `*` when it has none) and only the aliases that entry and `only_allow_models`
    /// let it call, with their fallbacks and per-model limits. Keys, teams, projects and
    /// settings stay whole: any key may call any service, so every revocation still reaches
    /// every agent. An agent thus holds, and needs credentials for, only what it can serve.
    ///
    /// Scoping only removes what the service's own rules refuse, so it never changes an
    /// answer but one: an alias withheld from this service is unknown here (404) instead of
    /// not allowed (403).
    public func scoped(toService service: String) -> PolicyDocument {
        var scoped = self
        let entry = services.first { $0.name == service } ?? services.first { $0.name == "*" }
        scoped.services = entry.map { [$0] } ?? []
        // Lists may name access groups: each stands for its aliases here as in the compiler.
        var groups: [String: [String]] = [:]
        for model in models { for group in model.accessGroups ?? [] { groups[group, default: []].append(model.alias) } }
        func expanded(_ names: [String]) -> Set<String> { Set(names.flatMap { groups[$0] ?? [$0] }) }
        let only = settings.onlyAllowModels.map(expanded)
        let allowed = entry?.allowedModels.map(expanded)
        let denied = expanded(entry?.deniedModels ?? [])
        // A list names an alias itself, or through a wildcard (openai/* stands for openai/gpt-4o);
        // a wildcard alias is kept where the list names it or any name it serves.
        func names(_ list: Set<String>, _ alias: String) -> Bool {
            list.contains(alias) || list.contains { Identifier.wildcard($0, covers: alias) }
                || (Identifier.isWildcardAlias(alias) && list.contains { Identifier.wildcard(alias, covers: $0) })
        }
        func usable(_ alias: String) -> Bool {
            !(denied.contains(alias) || denied.contains { Identifier.wildcard($0, covers: alias) })
                && (allowed.map { names($0, alias) } ?? true) && (only.map { names($0, alias) } ?? true)
        }
        scoped.models = models.filter { usable($0.alias) }
        if var router = settings.router {
            func prune(_ table: [String: [String]]?) -> [String: [String]]? {
                table.map { table in
                    table.filter { usable($0.key) }.mapValues { $0.filter(usable) }.filter { !$0.value.isEmpty }
                }
            }
            router.fallbacks = prune(router.fallbacks)
            router.contextWindowFallbacks = prune(router.contextWindowFallbacks)
            router.contentPolicyFallbacks = prune(router.contentPolicyFallbacks)
            router.modelGroupAlias = router.modelGroupAlias?.filter { usable($0.value) }
            router.hiddenGroupAliases = router.hiddenGroupAliases?.filter { router.modelGroupAlias?[$0] != nil }
            scoped.settings.router = router
        }
        return scoped
    }
}
