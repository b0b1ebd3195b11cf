/// Who is calling, once authenticated. Keys are named by id only.
public struct Caller: Sendable, Equatable {
    public let keyID: String?
    public let team: String?
    public let project: String?
    /// `namespace/service` of the agent's workload.
    public let service: String
    /// Index into the policy's keys; -1 for a keyless call, -2 for one a trusted gateway or
    /// mesh vouched for (see ``PolicyEngine/authenticate(vouchedTeam:project:user:)``).
    let keyIndex: Int
    /// The user a trusted gateway named: the call's end user, whatever its body says.
    public var vouchedUser: String? = nil

    static let vouched = -2
}

/// Which of a key's hashes a lookup matched.
private struct KeyEntry {
    let index: Int
    let isPrevious: Bool
}

/// An admitted call: who, which alias, and what was reserved for it.
public struct Admission: Sendable, Equatable {
    public let caller: Caller
    public let alias: String
    public let reservation: Reservation
    /// The alias has no price: the audit line must say so, and budgets did not see it.
    public let priceMissing: Bool
}

/// Makes every decision for one agent from a ``Policy``: authentication, model rules,
/// prompt filters and limits. Pure: time comes in as nanoseconds since the Unix epoch,
/// and the only shared state is the ``Limiter`` (kept across policy reloads).
public final class PolicyEngine: Sendable {
    public let policy: Policy
    public let limiter: Limiter
    /// This agent's service identity and its settings (the `*` entry when not listed).
    public let serviceName: String
    private let service: ServicePolicy?
    private let hasher: KeyHasher?
    private let keysByBucket: [UInt64: KeyEntry]
    private let keySlots: [Int32]
    private let projectSlots: [String: Int32]
    private let teamSlots: [String: Int32]
    private let modelSlots: [String: Int32]
    /// Slot for keyless calls (service limits, or the default ones when it has none).
    private let keylessSlot: Int32?
    /// Slot every keyed call also passes (the service's own limits), when it has any.
    private let sharedServiceSlot: Int32?
    /// Limits behind each slot, to know whether a spend budget applies without the lock.
    private let spendLimited: Set<Int32>
    /// The wildcard aliases `only_allow_models` names (`openai/*`).
    private let onlyAllowWildcards: [String]

    /// Every named scope this engine bound, with the policy's limits for it (before
    /// `localLimits`): what leases of fleet-wide limits are applied to.
    public let boundLimits: [Scope: Limits]

    /// Compiles `policy` for the service `serviceName` (`namespace/service`), binding its
    /// limits to `limiter`'s slots. `localLimits` turns a scope's policy limits into what
    /// this agent enforces (its share of a fleet-wide limit); by default they are the same.
    /// Throws when the policy does not validate.
    public init(
        policy: Policy, serviceName: String, limiter: Limiter,
        localLimits: (Scope, Limits) -> Limits = { $1 }
    ) throws(PolicyError) {
        try policy.validate()
        self.policy = policy
        self.limiter = limiter
        self.serviceName = serviceName
        let service = policy.services[serviceName] ?? policy.services["*"]
        self.service = service
        hasher = policy.keyPepper.map { KeyHasher(pepper: $0) }
        onlyAllowWildcards = ModelRules.wildcards(policy.onlyAllowModels)

        var spendLimited: Set<Int32> = []
        var bound: [Scope: Limits] = [:]
        func bind(_ scope: Scope, _ limits: Limits) -> Int32? {
            guard !limits.isEmpty, !limits.alertOnly else { return nil }
            bound[scope] = limits
            let slot = limiter.bind(scope, limits: localLimits(scope, limits), fleet: limits)
            if limits.hasSpendLimit { spendLimited.insert(slot) }
            return slot
        }
        var byBucket: [UInt64: KeyEntry] = [:]
        var keySlots: [Int32] = []
        for (index, key) in policy.keys.enumerated() {
            for (hash, isPrevious) in [(key.hash, false)] + (key.previousHash.map { [($0, true)] } ?? []) {
                if let other = byBucket[hash.bucket] {
                    throw PolicyError(
                        "keys \"\(key.id)\" and \"\(policy.keys[other.index].id)\" collide in the key index")
                }
                byBucket[hash.bucket] = KeyEntry(index: index, isPrevious: isPrevious)
            }
            let chainHasLimits =
                !key.limits.isEmpty || !(policy.teams[key.team]?.limits.isEmpty ?? true)
                || !(key.project.flatMap { policy.projects[$0]?.limits.isEmpty } ?? true)
            keySlots.append(bind(Scope(.key, key.id), chainHasLimits ? key.limits : policy.defaultLimits) ?? -1)
        }
        keysByBucket = byBucket
        self.keySlots = keySlots
        projectSlots = policy.projects.compactMapValues { bind(Scope(.project, $0.name), $0.limits) }
        teamSlots = policy.teams.compactMapValues { bind(Scope(.team, $0.name), $0.limits) }
        modelSlots = policy.modelLimits.reduce(into: [:]) { slots, entry in
            if let slot = bind(Scope(.model, entry.key), entry.value) { slots[entry.key] = slot }
        }
        let serviceLimits = service?.limits ?? .none
        sharedServiceSlot = bind(Scope(.service, serviceName), serviceLimits)
        keylessSlot =
            serviceLimits.isEmpty ? bind(Scope(.service, serviceName), policy.defaultLimits) : sharedServiceSlot
        for (name, limits) in policy.endUserLimits where limits.hasSpendLimit {
            spendLimited.insert(limiter.bind(Scope(.user, name), limits: limits))
        }
        self.spendLimited = spendLimited
        boundLimits = bound
    }

    // MARK: - Identity

    /// Who is calling: the virtual key presented, or the service itself when it may call
    /// keyless. When the policy defines no keys at all, presented tokens are ignored (SDKs
    /// insist on sending one).
    public func authenticate(presentedKey: String?, now: Int64) -> Result<Caller, Denial> {
        guard let presentedKey, let hasher, !policy.keys.isEmpty else {
            guard service?.keylessAllowed == true else {
                return .failure(
                    Denial(
                        .missingKey,
                        "no API key was given, and service \"\(serviceName)\" does not allow keyless callers",
                        rule: "service \"\(serviceName)\" keyless"))
            }
            return .success(Caller(keyID: nil, team: nil, project: nil, service: serviceName, keyIndex: -1))
        }
        let hash = hasher.hash(presentedKey)
        guard let entry = keysByBucket[hash.bucket] else {
            return .failure(Denial(.invalidKey, "the API key is not valid", rule: "virtual key"))
        }
        let index = entry.index
        let key = policy.keys[index]
        let stored = entry.isPrevious ? key.previousHash! : key.hash
        guard stored.constantTimeEquals(hash) else {
            return .failure(Denial(.invalidKey, "the API key is not valid", rule: "virtual key"))
        }
        if entry.isPrevious, now / 1_000_000_000 >= key.previousHashValidUntil ?? 0 {
            return .failure(
                Denial(
                    .expiredKey, "this secret of API key \"\(key.id)\" was rotated and its grace period has ended",
                    rule: "key \"\(key.id)\" rotated"))
        }
        if key.revoked {
            return .failure(
                Denial(.revokedKey, "API key \"\(key.id)\" has been revoked", rule: "key \"\(key.id)\" revoked"))
        }
        if let expiresAt = key.expiresAt, now / 1_000_000_000 >= expiresAt {
            return .failure(
                Denial(.expiredKey, "API key \"\(key.id)\" has expired", rule: "key \"\(key.id)\" expires_at"))
        }
        return .success(
            Caller(keyID: key.id, team: key.team, project: key.project, service: serviceName, keyIndex: index))
    }

    /// A caller a trusted gateway or mesh vouched for, without a virtual key: the team (and
    /// project) it named, which must exist in the policy (and the project be the team's).
    /// It is checked and limited as that team and project, and the service's own limits.
    public func authenticate(vouchedTeam team: String, project: String?, user: String?) -> Result<Caller, Denial> {
        guard policy.teams[team] != nil else {
            return .failure(
                Denial(
                    .invalidKey,
                    "the trusted identity names team \"\(team.prefix(64))\", which the policy does not have",
                    rule: "trusted identity"))
        }
        if let project, policy.projects[project]?.team != team {
            return .failure(
                Denial(
                    .invalidKey,
                    "the trusted identity names project \"\(project.prefix(64))\","
                        + " which team \"\(team)\" does not have",
                    rule: "trusted identity"))
        }
        var caller = Caller(keyID: nil, team: team, project: project, service: serviceName, keyIndex: Caller.vouched)
        caller.vouchedUser = user
        return .success(caller)
    }

    // MARK: - Model rules

    /// The alias, if it exists and every rule on the caller's path allows it. A deny on any
    /// scope beats an allow on any other.
    public func authorize(_ caller: Caller, model requested: String) -> Result<ModelAlias, Denial> {
        // Rules name aliases: a model_group_alias name is checked as the alias it stands for.
        let name = policy.catalog.groupAliases.isEmpty ? requested : policy.catalog.canonicalName(requested)
        let alias = policy.catalog.alias(named: name)
        let missingCredential = alias == nil ? policy.catalog.unavailableAliases[name] : nil
        guard alias != nil || missingCredential != nil else {
            return .failure(
                Denial(
                    .unknownModel, "the model `\(name.prefix(128))` does not exist or is not configured",
                    rule: "catalog"))
        }
        // Only each scope's model rules are read: copying whole key, team and service
        // entries for them cost more than the checks. Names are looked up again on a denial.
        let keyRules = caller.keyIndex >= 0 ? policy.keys[caller.keyIndex].models : nil
        let teamRules = caller.team.flatMap { policy.teams[$0]?.models }
        let projectRules = caller.project.flatMap { policy.projects[$0]?.models }
        let serviceRules = service?.models
        func keyID() -> String { policy.keys[caller.keyIndex].id }
        // Deny lists first, in every scope, then allow lists.
        if let keyRules, keyRules.denies(name) {
            return .failure(notAllowed(name, "key \"\(keyID())\" denied_models"))
        }
        if let projectRules, projectRules.denies(name) {
            return .failure(notAllowed(name, "project \"\(caller.project ?? "")\" denied_models"))
        }
        if let teamRules, teamRules.denies(name) {
            return .failure(notAllowed(name, "team \"\(caller.team ?? "")\" denied_models"))
        }
        if let serviceRules, serviceRules.denies(name) {
            return .failure(notAllowed(name, "service \"\(serviceName)\" denied_models"))
        }
        if let only = policy.onlyAllowModels, !only.contains(name),
            !onlyAllowWildcards.contains(where: { Identifier.wildcard($0, covers: name) })
        {
            return .failure(notAllowed(name, "only_allow_models"))
        }
        if let serviceRules, !serviceRules.allows(name) {
            return .failure(notAllowed(name, "service \"\(serviceName)\" allowed_models"))
        }
        if let teamRules, !teamRules.allows(name) {
            return .failure(notAllowed(name, "team \"\(caller.team ?? "")\" allowed_models"))
        }
        if let projectRules, !projectRules.allows(name) {
            return .failure(notAllowed(name, "project \"\(caller.project ?? "")\" allowed_models"))
        }
        if let keyRules, !keyRules.allows(name) {
            return .failure(notAllowed(name, "key \"\(keyID())\" allowed_models"))
        }
        // Only a caller the rules admit learns that this agent lacks the alias's credential.
        guard let alias else {
            let reference = missingCredential ?? ""
            return .failure(
                Denial(
                    .credentialUnavailable,
                    "the model `\(name.prefix(128))` cannot be served here: the credential \(reference) is not set "
                        + "on this agent",
                    rule: "credential \"\(reference)\""))
        }
        return .success(alias)
    }

    private func notAllowed(_ model: String, _ rule: String) -> Denial {
        Denial(.modelNotAllowed, "the model `\(model.prefix(128))` is not allowed by \(rule)", rule: rule)
    }

    // MARK: - Prompt filters

    /// Whether any prompt filter (global, or the caller's team's) needs the message text.
    public func hasPromptFilters(for caller: Caller) -> Bool {
        if !policy.promptFilters.isEmpty { return true }
        guard let team = caller.team else { return false }
        return policy.teams[team]?.promptFilters.isEmpty == false
    }

    /// The first filter that matches any of `texts`, as a denial naming the filter only.
    public func screen(_ caller: Caller, texts: [String]) -> Denial? {
        screen(caller) { visit in
            for text in texts {
                var text = text
                guard text.withUTF8({ visit(UnsafeRawBufferPointer($0)) }) else { return }
            }
        }
    }

    /// The first filter, in policy order (global ones, then the caller's team's), that
    /// matches any text `visitTexts` hands over (as UTF-8, until told to stop), as a denial
    /// naming the filter only. Every filter is asked about every text until the first
    /// filter matches, so which one is named does not depend on the order of the texts.
    public func screen(_ caller: Caller, visitingTexts visitTexts: ((UnsafeRawBufferPointer) -> Bool) -> Void)
        -> Denial?
    {
        let global = policy.promptFilters
        let team = caller.team.flatMap { policy.teams[$0]?.promptFilters } ?? []
        let count = global.count + team.count
        guard count > 0 else { return nil }
        func filter(_ index: Int) -> PromptFilter { index < global.count ? global[index] : team[index - global.count] }
        var first = count  // the earliest filter matched so far; `count` while none has
        visitTexts { text in
            if let index = (0..<first).first(where: { filter($0).matches(text) }) { first = index }
            return first > 0
        }
        guard first < count else { return nil }
        let matched = filter(first)
        let scope = first < global.count ? "global" : "team \"\(caller.team ?? "")\""
        return Denial(
            .promptBlocked, "the prompt was blocked by the \(scope) prompt filter \"\(matched.name)\"",
            rule: "filter \"\(matched.name)\"")
    }

    // MARK: - Guardrails

    /// The guardrails whose scopes include `caller`, in policy order.
    public func guardrails(for caller: Caller) -> [Guardrail] {
        if policy.guardrails.isEmpty { return [] }
        return policy.guardrails.filter { $0.scopes.contains(caller) }
    }

    // MARK: - Pass-through

    /// The pass-through that lets `caller` reach `path` with `method`, if one does.
    public func passThrough(for caller: Caller, method: String, path: String) -> PassThrough? {
        policy.passThroughs.first { $0.covers(method: method, path: path) && $0.scopes.contains(caller) }
    }

    /// Whether any pass-through covers `method` on `path`, for anyone: only then is the
    /// caller identified for it.
    public func hasPassThrough(method: String, path: String) -> Bool {
        policy.passThroughs.contains { $0.covers(method: method, path: path) }
    }

    // MARK: - Limits

    /// Reserves what the call may use from every limit that applies to it.
    ///
    /// - Parameters:
    ///   - promptTokens: an estimate of the prompt's tokens.
    ///   - maxOutputTokens: the call's `max_tokens`, if it set one.
    public func admit(
        _ caller: Caller, alias: ModelAlias, endUser: String?, promptTokens: Int, maxOutputTokens: Int?,
        now: Int64
    ) -> Result<Admission, Denial> {
        var slots = ScopeSlots()
        if caller.keyIndex >= 0 {
            let keySlot = keySlots[caller.keyIndex]
            if keySlot >= 0 { slots[.key] = keySlot }
            if let project = caller.project { slots[.project] = projectSlots[project] }
            if let team = caller.team { slots[.team] = teamSlots[team] }
            slots[.service] = sharedServiceSlot
        } else if caller.keyIndex == Caller.vouched {
            if let project = caller.project { slots[.project] = projectSlots[project] }
            if let team = caller.team { slots[.team] = teamSlots[team] }
            // Without limits of its own on the way, the call is held to the service's (or the defaults).
            slots[.service] = slots[.team] == nil && slots[.project] == nil ? keylessSlot : sharedServiceSlot
        } else {
            slots[.service] = keylessSlot
        }
        // A name a wildcard alias serves counts against the wildcard's own limits.
        slots[.model] =
            modelSlots[alias.name]
            ?? (policy.catalog.wildcards.isEmpty ? nil : policy.catalog.wildcard(for: alias.name).flatMap {
                modelSlots[$0.name]
            })
        if !policy.exhausted.isEmpty, let denial = fleetExhaustion(caller, now: now) { return .failure(denial) }
        if let endUser {
            if policy.blockedEndUsers.contains(endUser) {
                return .failure(
                    Denial(
                        .endUserBlocked, "the end user \(Identifier.quoted(endUser)) is blocked",
                        rule: "user \(Identifier.quoted(endUser)) blocked"))
            }
            let limits = policy.endUserLimits[endUser] ?? policy.endUserDefaultLimits
            if !limits.isEmpty {
                guard let slot = limiter.endUserSlot(endUser, limits: limits, now: now) else {
                    return .failure(
                        Denial(
                            .tooManyEndUsers, "too many distinct end users are being tracked; retry shortly",
                            rule: "end user table", retryAfterSeconds: 1))
                }
                slots[.user] = slot
            }
        }
        var priceMissing = false
        var demand = Demand(
            tokens: promptTokens + (maxOutputTokens ?? alias.maxOutputTokens ?? policy.defaultMaxOutputTokens),
            cost: .zero)
        if let price = alias.price {
            demand.cost = price.cost(promptTokens: promptTokens, completionTokens: demand.tokens - promptTokens)
        } else {
            priceMissing = true
            var budgeted = false
            slots.forEach { if spendLimited.contains(Int32($0)) { budgeted = true } }
            if policy.unpricedModels == .deny || (policy.unpricedModels == .denyWhenBudgeted && budgeted) {
                return .failure(
                    Denial(
                        .priceMissing,
                        "the model `\(alias.name)` has no price, so its spend cannot be counted;"
                            + " the policy refuses unpriced models\(budgeted ? " under a budget" : "")",
                        rule: "unpriced_models"))
            }
        }
        let seconds = now / 1_000_000_000
        let zone = policy.timeZone
        let reserved = limiter.reserve(
            slots, demand: demand, now: now, dayNumber: zone.dayNumber(at: seconds),
            monthNumber: zone.monthNumber(at: seconds),
            nextDayStart: zone.startOfNextDay(after: seconds) * 1_000_000_000,
            nextMonthStart: zone.startOfNextMonth(after: seconds) * 1_000_000_000)
        switch reserved {
        case .success(let reservation):
            return .success(
                Admission(caller: caller, alias: alias.name, reservation: reservation, priceMissing: priceMissing))
        case .failure(let denial):
            return .failure(denial)
        }
    }

    /// A budget on the caller's path that the whole fleet has spent.
    private func fleetExhaustion(_ caller: Caller, now: Int64) -> Denial? {
        let seconds = now / 1_000_000_000
        var scopes = [Scope(.service, serviceName)]
        if let keyID = caller.keyID { scopes.append(Scope(.key, keyID)) }
        if let team = caller.team { scopes.append(Scope(.team, team)) }
        if let project = caller.project { scopes.append(Scope(.project, project)) }
        for scope in scopes {
            guard let exhausted = policy.exhausted[scope], seconds < exhausted.until else { continue }
            let period = exhausted.limit == .monthlySpend ? "monthly" : "daily"
            return Denial(
                .budgetExceeded,
                "\(period) budget exhausted across the fleet: \(scope) has spent its \(exhausted.limit.rawValue)",
                rule: "\(scope) \(exhausted.limit.rawValue) (fleet)",
                retryAfterSeconds: Int(max(1, exhausted.until - seconds)))
        }
        return nil
    }

    /// Swaps the reservation for what the call used.
    /// - Parameter servedBy: the alias that answered, when a fallback did: its prices apply.
    /// - Returns: the call's cost at the alias's prices, or nil when the alias has none (the
    ///   budgets then count nothing for it; the caller must flag it, never report $0).
    @discardableResult
    /// - Parameters: cachedPromptTokens, cacheCreationTokens, reasoningTokens: the parts of
    ///   the prompt and completion the alias prices at their own rates (see ``Price``).
    public func settle(
        _ admission: Admission, promptTokens: Int, completionTokens: Int, cachedPromptTokens: Int = 0,
        cacheCreationTokens: Int = 0, reasoningTokens: Int = 0, servedBy: String? = nil, now: Int64
    ) -> Cost? {
        let price = policy.catalog.alias(named: servedBy ?? admission.alias)?.price
        let cost = price?.cost(
            promptTokens: promptTokens, completionTokens: completionTokens, cachedPromptTokens: cachedPromptTokens,
            cacheCreationTokens: cacheCreationTokens, reasoningTokens: reasoningTokens)
        let seconds = now / 1_000_000_000
        limiter.settle(
            admission.reservation, tokens: promptTokens + completionTokens, cost: cost ?? .zero, now: now,
            dayNumber: policy.timeZone.dayNumber(at: seconds), monthNumber: policy.timeZone.monthNumber(at: seconds))
        return cost
    }

    /// Gives back the whole reservation of a call that failed without using anything.
    public func release(_ admission: Admission, now: Int64) {
        let seconds = now / 1_000_000_000
        limiter.release(
            admission.reservation, now: now, dayNumber: policy.timeZone.dayNumber(at: seconds),
            monthNumber: policy.timeZone.monthNumber(at: seconds))
    }
}
