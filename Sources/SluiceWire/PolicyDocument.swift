import SluicePolicy

/// The policy as it travels from the control plane to agents: everything an agent decides
/// from, with no secret in it. Provider credentials are named (`credential_ref`), never
/// carried: each agent resolves them from its own environment. Key material is the keyed
/// hash only, plus a fingerprint of the pepper so an agent can tell it holds the right one.
public struct PolicyDocument: Codable, Sendable, Equatable {
    /// Rises with every change in the control plane's store.
    public var version: Int64
    /// Unix seconds when this document was built.
    public var issuedAt: Int64
    public var keyPepperFingerprint: String?
    public var models: [ModelDocument]
    public var keys: [KeyDocument]
    public var teams: [TeamDocument]
    public var projects: [ProjectDocument]
    public var services: [ServiceDocument]
    public var settings: SettingsDocument
    /// Scopes whose budget is spent fleet-wide: agents refuse them until the window rolls.
    public var exhausted: [ExhaustedScope]
    /// Agents renewing leases when this was built: an agent without a lease yet enforces
    /// an even share of a fleet-wide limit among them and itself (see
    /// ``LeaseFallback/fairShare(amongActiveAgents:)``). Nil from control planes that do not say.
    public var activeAgents: Int?
    /// Limits for named end users (the request's `user` field). Nil when there are none.
    public var endUsers: [EndUserDocument]?

    public init(
        version: Int64, issuedAt: Int64, keyPepperFingerprint: String? = nil, models: [ModelDocument] = [],
        keys: [KeyDocument] = [], teams: [TeamDocument] = [], projects: [ProjectDocument] = [],
        services: [ServiceDocument] = [], settings: SettingsDocument = SettingsDocument(),
        exhausted: [ExhaustedScope] = []
    ) {
        self.version = version
        self.issuedAt = issuedAt
        self.keyPepperFingerprint = keyPepperFingerprint
        self.models = models
        self.keys = keys
        self.teams = teams
        self.projects = projects
        self.services = services
        self.settings = settings
        self.exhausted = exhausted
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case version
        case issuedAt = "issued_at"
        case keyPepperFingerprint = "key_pepper_fingerprint"
        case models, keys, teams, projects,
            services, settings, exhausted
        case activeAgents = "active_agents"
        case endUsers = "end_users"
    }
}

/// Limits for one end user: the `user` a caller names in its request. A blocked end user is
/// refused whatever key or service the call comes through.
public struct EndUserDocument: Codable, Sendable, Equatable {
    public var name: String
    public var limits: LimitsDocument
    /// Encoded only when true, so a document without blocked end users reads as before.
    public var blocked: Bool

    public init(name: String, limits: LimitsDocument = LimitsDocument(), blocked: Bool = false) {
        self.name = name
        self.limits = limits
        self.blocked = blocked
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, limits, blocked
    }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name),
            limits: try container.decodeIfPresent(LimitsDocument.self, forKey: .limits) ?? LimitsDocument(),
            blocked: try container.decodeIfPresent(Bool.self, forKey: .blocked) ?? false)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(limits, forKey: .limits)
        if blocked { try container.encode(true, forKey: .blocked) }
    }
}

/// Limits as configuration and the admin API write them (USD as decimal numbers).
public struct LimitsDocument: Codable, Sendable, Equatable {
    public var requestsPerMinute: Int?
    public var tokensPerMinute: Int?
    public var requestsPerDay: Int?
    public var maxParallelRequests: Int?
    public var dailySpendUSD: Double?
    public var monthlySpendUSD: Double?
    /// `enforce` (the default when nil) or `alert`: the scope's budgets and daily quota are
    /// observed by the control plane and alerted on, never enforced by agents.
    public var mode: String?
    /// This scope's soft-budget notice threshold, overriding `settings.soft_budget_percent`.
    /// Read by the control plane only; bundles leave it out.
    public var softBudgetPercent: Int?
    /// A spike alert on this scope. Read by the control plane only; bundles leave it out.
    public var spike: SpikeRuleDocument?

    public init(
        requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, requestsPerDay: Int? = nil,
        maxParallelRequests: Int? = nil, dailySpendUSD: Double? = nil, monthlySpendUSD: Double? = nil,
        mode: String? = nil, softBudgetPercent: Int? = nil, spike: SpikeRuleDocument? = nil
    ) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.requestsPerDay = requestsPerDay
        self.maxParallelRequests = maxParallelRequests
        self.dailySpendUSD = dailySpendUSD
        self.monthlySpendUSD = monthlySpendUSD
        self.mode = mode
        self.softBudgetPercent = softBudgetPercent
        self.spike = spike
    }

    /// The wire names of the limit fields; every other field is refused.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case requestsPerMinute = "requests_per_minute"
        case tokensPerMinute = "tokens_per_minute"
        case requestsPerDay = "requests_per_day"
        case
            maxParallelRequests = "max_parallel_requests"
        case dailySpendUSD = "daily_spend_usd"
        case monthlySpendUSD = "monthly_spend_usd"
        case mode
        case softBudgetPercent = "soft_budget_percent"
        case spike
    }

    /// Whether the scope's limits are observed only (`mode: alert`).
    public var isAlertOnly: Bool { mode == LimitMode.alert.rawValue }

    /// What agents are sent: the control plane's own alert settings left out, so a bundle
    /// reads the same to agents that predate them.
    public var forAgents: LimitsDocument {
        var limits = self
        limits.softBudgetPercent = nil
        limits.spike = nil
        return limits
    }

    /// These limits with any left unset taken from `base`.
    public func overlaid(on base: LimitsDocument?) -> LimitsDocument {
        guard let base else { return self }
        return LimitsDocument(
            requestsPerMinute: requestsPerMinute ?? base.requestsPerMinute,
            tokensPerMinute: tokensPerMinute ?? base.tokensPerMinute,
            requestsPerDay: requestsPerDay ?? base.requestsPerDay,
            maxParallelRequests: maxParallelRequests ?? base.maxParallelRequests,
            dailySpendUSD: dailySpendUSD ?? base.dailySpendUSD,
            monthlySpendUSD: monthlySpendUSD ?? base.monthlySpendUSD,
            mode: mode ?? base.mode, softBudgetPercent: softBudgetPercent ?? base.softBudgetPercent,
            spike: spike ?? base.spike)
    }

    /// The engine's limits, every value checked: part of the one compiler.
    ///
    /// - Parameter alerting: whether the scope is one the control plane alerts on (a team,
    ///   project, key or service); elsewhere `mode`, `soft_budget_percent` and `spike` are
    ///   refused, since nothing would ever read them.
    public func limits(at path: String, alerting: Bool = false) throws(WireError) -> Limits {
        try checkAlerting(at: path, alerting: alerting)
        func count(_ value: Int?, _ name: String) throws(WireError) -> Int? {
            guard let value else { return nil }
            guard value > 0, value <= 1_000_000_000 else {
                throw WireError("\(path).\(name) must be a whole number from 1 to 1e9")
            }
            return value
        }
        func usd(_ value: Double?, _ name: String) throws(WireError) -> Cost? {
            guard let value else { return nil }
            guard let cost = Cost(usd: value) else {
                throw WireError("\(path).\(name) must be a non-negative amount of US dollars")
            }
            return cost
        }
        let limits = Limits(
            requestsPerMinute: try count(requestsPerMinute, "requests_per_minute"),
            tokensPerMinute: try count(tokensPerMinute, "tokens_per_minute"),
            requestsPerDay: try count(requestsPerDay, "requests_per_day"),
            maxParallelRequests: try count(maxParallelRequests, "max_parallel_requests"),
            dailySpend: try usd(dailySpendUSD, "daily_spend_usd"),
            monthlySpend: try usd(monthlySpendUSD, "monthly_spend_usd"))
        return isAlertOnly ? Limits(alertOnly: true) : limits
    }
}

/// One upstream behind a model alias: provider, endpoint, credential reference, caps.
public struct DeploymentDocument: Codable, Sendable, Equatable {
    /// The dialect of the upstream: `openai`, `anthropic`, `azure` or `gemini`.
    public var provider: String
    public var apiBase: String
    public var upstreamModel: String
    /// The environment variable on the agent that holds the provider key.
    public var credentialRef: String?
    public var weight: Int
    public var rpm: Int?
    public var tpm: Int?
    /// Azure OpenAI's `api-version` (default 2024-10-21).
    public var apiVersion: String?
    /// A CA bundle on the agent to trust for this upstream instead of the system's (a
    /// private endpoint); a relative path is from the agent's working directory.
    public var caFile: String?
    /// How long to wait for the provider's first byte, overriding the agent's setting.
    public var timeoutSeconds: Double?

    public init(
        provider: String = "openai", apiBase: String, upstreamModel: String, credentialRef: String? = nil,
        weight: Int = 1, rpm: Int? = nil, tpm: Int? = nil, apiVersion: String? = nil, caFile: String? = nil,
        timeoutSeconds: Double? = nil
    ) {
        self.apiVersion = apiVersion
        self.caFile = caFile
        self.timeoutSeconds = timeoutSeconds
        self.provider = provider
        self.apiBase = apiBase
        self.upstreamModel = upstreamModel
        self.credentialRef = credentialRef
        self.weight = weight
        self.rpm = rpm
        self.tpm = tpm
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case provider
        case apiBase = "api_base"
        case upstreamModel = "upstream_model"
        case credentialRef = "credential_ref"
        case weight, rpm, tpm
        case
            apiVersion = "api_version"
        case caFile = "ca_file"
        case timeoutSeconds = "timeout_seconds"
    }
}

/// A model alias callers name, its deployments, prices and limits.
public struct ModelDocument: Codable, Sendable, Equatable {
    public var alias: String
    public var deployments: [DeploymentDocument]
    public var inputCostPerToken: Double?
    public var outputCostPerToken: Double?
    /// Prompt-cache reads; the input price when absent.
    public var cacheReadInputTokenCost: Double?
    /// Prompt-cache writes (Anthropic); the input price when absent.
    public var cacheCreationInputTokenCost: Double?
    /// Reasoning output, where a provider prices it apart; the output price when absent.
    public var outputCostPerReasoningToken: Double?
    public var maxOutputTokens: Int?
    public var limits: LimitsDocument?
    /// LiteLLM's `model_info.access_groups`: names an allowlist or denylist may use for
    /// every alias in the group.
    public var accessGroups: [String]?

    public init(
        alias: String, deployments: [DeploymentDocument], inputCostPerToken: Double? = nil,
        outputCostPerToken: Double? = nil, cacheReadInputTokenCost: Double? = nil,
        cacheCreationInputTokenCost: Double? = nil, outputCostPerReasoningToken: Double? = nil,
        maxOutputTokens: Int? = nil, limits: LimitsDocument? = nil
    ) {
        self.alias = alias
        self.deployments = deployments
        self.inputCostPerToken = inputCostPerToken
        self.outputCostPerToken = outputCostPerToken
        self.cacheReadInputTokenCost = cacheReadInputTokenCost
        self.cacheCreationInputTokenCost = cacheCreationInputTokenCost
        self.outputCostPerReasoningToken = outputCostPerReasoningToken
        self.maxOutputTokens = maxOutputTokens
        self.limits = limits
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case alias, deployments
        case inputCostPerToken = "input_cost_per_token"
        case outputCostPerToken = "output_cost_per_token"
        case cacheReadInputTokenCost = "cache_read_input_token_cost"
        case cacheCreationInputTokenCost = "cache_creation_input_token_cost"
        case outputCostPerReasoningToken = "output_cost_per_reasoning_token"
        case
            maxOutputTokens = "max_output_tokens"
        case accessGroups = "access_groups"
        case limits
    }
}

/// A virtual key: only its keyed hash, its team and project, models, limits, metadata and
/// revocation; never the secret.
public struct KeyDocument: Codable, Sendable, Equatable {
    public var id: String
    /// `hmac-sha256:<hex>`.
    public var hash: String
    /// While a rotation's grace period runs, the previous secret's hash, and until when.
    public var previousHash: String?
    public var previousHashExpiresAt: Int64?
    public var team: String
    public var project: String?
    public var metadata: [String: String]
    public var expiresAt: Int64?
    public var revoked: Bool
    public var allowedModels: [String]?
    public var deniedModels: [String]
    public var limits: LimitsDocument?
    /// The key's first characters, for listings (`sk-sluice-AbCd`). Not secret; left out
    /// of bundles all the same, since agents have no use for it.
    public var prefix: String?
    public var createdAt: Int64?

    public init(
        id: String, hash: String, previousHash: String? = nil, previousHashExpiresAt: Int64? = nil, team: String,
        project: String? = nil, metadata: [String: String] = [:], expiresAt: Int64? = nil, revoked: Bool = false,
        allowedModels: [String]? = nil, deniedModels: [String] = [], limits: LimitsDocument? = nil
    ) {
        self.id = id
        self.hash = hash
        self.previousHash = previousHash
        self.previousHashExpiresAt = previousHashExpiresAt
        self.team = team
        self.project = project
        self.metadata = metadata
        self.expiresAt = expiresAt
        self.revoked = revoked
        self.allowedModels = allowedModels
        self.deniedModels = deniedModels
        self.limits = limits
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, hash
        case previousHash = "previous_hash"
        case previousHashExpiresAt = "previous_hash_expires_at"
        case team, project, metadata
        case
            expiresAt = "expires_at"
        case revoked
        case allowedModels = "allowed_models"
        case deniedModels = "denied_models"
        case limits, prefix
        case
            createdAt = "created_at"
    }
}

/// A team: the models its keys may use, its limits and budgets, its prompt filters.
public struct TeamDocument: Codable, Sendable, Equatable {
    public var name: String
    public var allowedModels: [String]?
    public var deniedModels: [String]
    public var limits: LimitsDocument?
    public var promptFilters: [PromptFilterDocument]

    public init(
        name: String, allowedModels: [String]? = nil, deniedModels: [String] = [], limits: LimitsDocument? = nil,
        promptFilters: [PromptFilterDocument] = []
    ) {
        self.name = name
        self.allowedModels = allowedModels
        self.deniedModels = deniedModels
        self.limits = limits
        self.promptFilters = promptFilters
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name
        case allowedModels = "allowed_models"
        case deniedModels = "denied_models"
        case limits
        case promptFilters = "prompt_filters"
    }
}

/// A project inside a team, with its own models, limits and budgets.
public struct ProjectDocument: Codable, Sendable, Equatable {
    public var name: String
    public var team: String
    public var allowedModels: [String]?
    public var deniedModels: [String]
    public var limits: LimitsDocument?

    public init(
        name: String, team: String, allowedModels: [String]? = nil, deniedModels: [String] = [],
        limits: LimitsDocument? = nil
    ) {
        self.name = name
        self.team = team
        self.allowedModels = allowedModels
        self.deniedModels = deniedModels
        self.limits = limits
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, team
        case allowedModels = "allowed_models"
        case deniedModels = "denied_models"
        case limits
    }
}

/// A service (`namespace/service`) agents serve: the models it may call and its limits.
public struct ServiceDocument: Codable, Sendable, Equatable {
    /// `namespace/service`, or `*`.
    public var name: String
    public var keyless: Bool
    public var allowedModels: [String]?
    public var deniedModels: [String]
    public var limits: LimitsDocument?

    public init(
        name: String, keyless: Bool = false, allowedModels: [String]? = nil, deniedModels: [String] = [],
        limits: LimitsDocument? = nil
    ) {
        self.name = name
        self.keyless = keyless
        self.allowedModels = allowedModels
        self.deniedModels = deniedModels
        self.limits = limits
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, keyless
        case allowedModels = "allowed_models"
        case deniedModels = "denied_models"
        case limits
    }
}

/// A named regular expression; a prompt that matches it is refused.
public struct PromptFilterDocument: Codable, Sendable, Equatable {
    public var name: String
    public var pattern: String

    public init(name: String, pattern: String) {
        self.name = name
        self.pattern = pattern
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, pattern
    }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name),
            pattern: try container.decode(String.self, forKey: .pattern))
    }
}

/// Fleet-wide settings.
public struct SettingsDocument: Codable, Sendable, Equatable {
    public var onlyAllowModels: [String]?
    public var promptFilters: [PromptFilterDocument]
    public var defaultLimits: LimitsDocument?
    public var endUserDefaultLimits: LimitsDocument?
    public var timeZone: String
    public var unpricedModels: String
    public var defaultMaxOutputTokens: Int
    /// Percentage of a budget at which the soft-budget webhook fires.
    public var softBudgetPercent: Int?
    public var budgetWebhookURL: String?
    /// What agents do while they cannot write usage to disk: `allow_in_memory` (keep
    /// serving, holding up to `usage_spool_memory_cap` calls' usage in memory) or
    /// `fail_closed` (refuse calls with 503 until the disk takes writes again).
    public var usageSpoolFailure: String
    public var usageSpoolMemoryCap: Int
    /// How long an agent's share of a fleet-wide per-minute limit stays valid unrenewed.
    public var leaseSeconds: Int
    /// What an agent enforces for a fleet-wide limit it holds no valid lease for:
    /// `fraction` (`lease_fallback_fraction` of the limit), `zero` or `unlimited`.
    public var leaseFallback: String
    public var leaseFallbackFraction: Double
    /// For a quota (requests per day, a budget), every active agent's floor, as a
    /// percentage of an even split; for a rate, an idle agent keeps a tenth of it.
    public var leaseMinimumSharePercent: Int
    /// Routing strategy, retries, fallbacks and cooldowns (LiteLLM's `router_settings`).
    public var router: RouterDocument?
    /// External guardrails asked before calls are admitted, in order. Nil when there are
    /// none, so a document without guardrails encodes as it did before they existed.
    public var guardrails: [GuardrailDocument]?
    /// Explicit pass-throughs to provider endpoints Sluice does not meter; nil when none.
    public var passThrough: [PassThroughDocument]?

    public init(
        onlyAllowModels: [String]? = nil, promptFilters: [PromptFilterDocument] = [],
        defaultLimits: LimitsDocument? = nil,
        endUserDefaultLimits: LimitsDocument? = nil, timeZone: String = "UTC",
        unpricedModels: String = "deny_when_budgeted",
        defaultMaxOutputTokens: Int = 4096, softBudgetPercent: Int? = nil, budgetWebhookURL: String? = nil,
        usageSpoolFailure: String = "allow_in_memory", usageSpoolMemoryCap: Int = 100_000, leaseSeconds: Int = 15,
        leaseFallback: String = "fraction", leaseFallbackFraction: Double = 0.1, leaseMinimumSharePercent: Int = 50,
        router: RouterDocument? = nil, guardrails: [GuardrailDocument]? = nil,
        passThrough: [PassThroughDocument]? = nil
    ) {
        self.passThrough = passThrough?.isEmpty == true ? nil : passThrough
        self.router = router
        self.guardrails = guardrails?.isEmpty == true ? nil : guardrails
        self.usageSpoolFailure = usageSpoolFailure
        self.usageSpoolMemoryCap = usageSpoolMemoryCap
        self.leaseSeconds = leaseSeconds
        self.leaseFallback = leaseFallback
        self.leaseFallbackFraction = leaseFallbackFraction
        self.leaseMinimumSharePercent = leaseMinimumSharePercent
        self.onlyAllowModels = onlyAllowModels
        self.promptFilters = promptFilters
        self.defaultLimits = defaultLimits
        self.endUserDefaultLimits = endUserDefaultLimits
        self.timeZone = timeZone
        self.unpricedModels = unpricedModels
        self.defaultMaxOutputTokens = defaultMaxOutputTokens
        self.softBudgetPercent = softBudgetPercent
        self.budgetWebhookURL = budgetWebhookURL
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case onlyAllowModels = "only_allow_models"
        case promptFilters = "prompt_filters"
        case defaultLimits = "default_limits"
        case
            endUserDefaultLimits = "end_user_default_limits"
        case timeZone = "time_zone"
        case unpricedModels = "unpriced_models"
        case
            defaultMaxOutputTokens = "default_max_output_tokens"
        case softBudgetPercent = "soft_budget_percent"
        case
            budgetWebhookURL = "budget_webhook_url"
        case usageSpoolFailure = "usage_spool_failure"
        case
            usageSpoolMemoryCap = "usage_spool_memory_cap"
        case leaseSeconds = "lease_seconds"
        case leaseFallback = "lease_fallback"
        case
            leaseFallbackFraction = "lease_fallback_fraction"
        case leaseMinimumSharePercent = "lease_minimum_share_percent"
        case
            router
        case guardrails
        case passThrough = "pass_through"
    }

    /// The checks on fleet settings that no single entry owns; part of the one compiler, so
    /// the control plane refuses exactly what agents would.
    public func validate() throws(WireError) {
        if let percent = softBudgetPercent, !(1...100).contains(percent) {
            throw WireError("settings.soft_budget_percent must be 1 to 100")
        }
        if let url = budgetWebhookURL {
            let lowered = url.lowercased()
            guard url.utf8.count <= 2048, lowered.hasPrefix("https://") || lowered.hasPrefix("http://"),
                !url.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F })
            else {
                throw WireError("settings.budget_webhook_url must be an http(s) URL without spaces")
            }
        }
        guard ["allow_in_memory", "fail_closed"].contains(usageSpoolFailure) else {
            throw WireError("settings.usage_spool_failure must be allow_in_memory or fail_closed")
        }
        guard (0...10_000_000).contains(usageSpoolMemoryCap) else {
            throw WireError("settings.usage_spool_memory_cap must be 0 to 10000000")
        }
        guard (1...3600).contains(leaseSeconds) else { throw WireError("settings.lease_seconds must be 1 to 3600") }
        guard fallback != nil else {
            throw WireError(
                "settings.lease_fallback must be fraction (with lease_fallback_fraction in (0, 1]), zero or unlimited")
        }
        guard (0...100).contains(leaseMinimumSharePercent) else {
            throw WireError("settings.lease_minimum_share_percent must be 0 to 100")
        }
        if let only = onlyAllowModels, only.count > 10_000 {
            throw WireError("settings.only_allow_models holds at most 10000 aliases")
        }
        if let passThrough, passThrough.count > PassThroughDocument.maximumCount {
            throw WireError("settings.pass_through holds at most \(PassThroughDocument.maximumCount) entries")
        }
        if let guardrails, guardrails.count > GuardrailDocument.maximumCount {
            throw WireError("settings.guardrails holds at most \(GuardrailDocument.maximumCount) guardrails")
        }
    }

    /// The fallback as the engine applies it, or nil when the fields are invalid.
    public var fallback: LeaseFallback? {
        switch leaseFallback {
        case "fraction":
            leaseFallbackFraction > 0 && leaseFallbackFraction <= 1 ? .fraction(leaseFallbackFraction) : nil
        case "zero": .zero
        case "unlimited": .unlimited
        default: nil
        }
    }
}

/// A scope whose budget the fleet has spent, and until when (Unix seconds).
public struct ExhaustedScope: Codable, Sendable, Equatable {
    public var kind: String
    public var name: String
    public var limit: String
    public var until: Int64

    public init(kind: String, name: String, limit: String, until: Int64) {
        self.kind = kind
        self.name = name
        self.limit = limit
        self.until = until
    }
}

/// Why a wire message was refused; names the field at fault.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// Decoding with defaults: lists, maps and flags may be left out of a document (an admin
// API body or a bundle), and mean "none" / false.

extension DeploymentDocument {
    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            provider: try container.decodeIfPresent(String.self, forKey: .provider) ?? "openai",
            apiBase: try container.decode(String.self, forKey: .apiBase),
            upstreamModel: try container.decode(String.self, forKey: .upstreamModel),
            credentialRef: try container.decodeIfPresent(String.self, forKey: .credentialRef),
            weight: try container.decodeIfPresent(Int.self, forKey: .weight) ?? 1,
            rpm: try container.decodeIfPresent(Int.self, forKey: .rpm),
            tpm: try container.decodeIfPresent(Int.self, forKey: .tpm),
            apiVersion: try container.decodeIfPresent(String.self, forKey: .apiVersion),
            caFile: try container.decodeIfPresent(String.self, forKey: .caFile),
            timeoutSeconds: try container.decodeIfPresent(Double.self, forKey: .timeoutSeconds))
    }
}

extension LimitsDocument {
    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            requestsPerMinute: try container.decodeIfPresent(Int.self, forKey: .requestsPerMinute),
            tokensPerMinute: try container.decodeIfPresent(Int.self, forKey: .tokensPerMinute),
            requestsPerDay: try container.decodeIfPresent(Int.self, forKey: .requestsPerDay),
            maxParallelRequests: try container.decodeIfPresent(Int.self, forKey: .maxParallelRequests),
            dailySpendUSD: try container.decodeIfPresent(Double.self, forKey: .dailySpendUSD),
            monthlySpendUSD: try container.decodeIfPresent(Double.self, forKey: .monthlySpendUSD),
            mode: try container.decodeIfPresent(String.self, forKey: .mode),
            softBudgetPercent: try container.decodeIfPresent(Int.self, forKey: .softBudgetPercent),
            spike: try container.decodeIfPresent(SpikeRuleDocument.self, forKey: .spike))
    }
}

extension ModelDocument {
    /// Whether the model is priced: a plain input or output price is given. The cache and
    /// reasoning prices refine those and are refused alone (see the compiler).
    public var hasPrice: Bool { inputCostPerToken != nil || outputCostPerToken != nil }

    /// The prices as a LiteLLM `model_info` names them, the given ones only, in a fixed order.
    public var priceFields: [(name: String, usd: Double)] {
        [
            ("input_cost_per_token", inputCostPerToken), ("output_cost_per_token", outputCostPerToken),
            ("cache_read_input_token_cost", cacheReadInputTokenCost),
            ("cache_creation_input_token_cost", cacheCreationInputTokenCost),
            ("output_cost_per_reasoning_token", outputCostPerReasoningToken),
        ].compactMap { name, value in value.map { (name, $0) } }
    }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            alias: try container.decode(String.self, forKey: .alias),
            deployments: try container.decode([DeploymentDocument].self, forKey: .deployments),
            inputCostPerToken: try container.decodeIfPresent(Double.self, forKey: .inputCostPerToken),
            outputCostPerToken: try container.decodeIfPresent(Double.self, forKey: .outputCostPerToken),
            cacheReadInputTokenCost: try container.decodeIfPresent(Double.self, forKey: .cacheReadInputTokenCost),
            cacheCreationInputTokenCost: try container.decodeIfPresent(
                Double.self, forKey: .cacheCreationInputTokenCost),
            outputCostPerReasoningToken: try container.decodeIfPresent(
                Double.self, forKey: .outputCostPerReasoningToken),
            maxOutputTokens: try container.decodeIfPresent(Int.self, forKey: .maxOutputTokens),
            limits: try container.decodeIfPresent(LimitsDocument.self, forKey: .limits))
        accessGroups = try container.decodeIfPresent([String].self, forKey: .accessGroups)
    }
}

extension KeyDocument {
    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try container.decode(String.self, forKey: .id), hash: try container.decode(String.self, forKey: .hash),
            previousHash: try container.decodeIfPresent(String.self, forKey: .previousHash),
            previousHashExpiresAt: try container.decodeIfPresent(Int64.self, forKey: .previousHashExpiresAt),
            team: try container.decode(String.self, forKey: .team),
            project: try container.decodeIfPresent(String.self, forKey: .project),
            metadata: try container.decodeIfPresent([String: String].self, forKey: .metadata) ?? [:],
            expiresAt: try container.decodeIfPresent(Int64.self, forKey: .expiresAt),
            revoked: try container.decodeIfPresent(Bool.self, forKey: .revoked) ?? false,
            allowedModels: try container.decodeIfPresent([String].self, forKey: .allowedModels),
            deniedModels: try container.decodeIfPresent([String].self, forKey: .deniedModels) ?? [],
            limits: try container.decodeIfPresent(LimitsDocument.self, forKey: .limits))
        prefix = try container.decodeIfPresent(String.self, forKey: .prefix)
        createdAt = try container.decodeIfPresent(Int64.self, forKey: .createdAt)
    }
}

extension TeamDocument {
    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name),
            allowedModels: try container.decodeIfPresent([String].self, forKey: .allowedModels),
            deniedModels: try container.decodeIfPresent([String].self, forKey: .deniedModels) ?? [],
            limits: try container.decodeIfPresent(LimitsDocument.self, forKey: .limits),
            promptFilters: try container.decodeIfPresent([PromptFilterDocument].self, forKey: .promptFilters) ?? [])
    }
}

extension ProjectDocument {
    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name),
            team: try container.decode(String.self, forKey: .team),
            allowedModels: try container.decodeIfPresent([String].self, forKey: .allowedModels),
            deniedModels: try container.decodeIfPresent([String].self, forKey: .deniedModels) ?? [],
            limits: try container.decodeIfPresent(LimitsDocument.self, forKey: .limits))
    }
}

extension ServiceDocument {
    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name),
            keyless: try container.decodeIfPresent(Bool.self, forKey: .keyless) ?? false,
            allowedModels: try container.decodeIfPresent([String].self, forKey: .allowedModels),
            deniedModels: try container.decodeIfPresent([String].self, forKey: .deniedModels) ?? [],
            limits: try container.decodeIfPresent(LimitsDocument.self, forKey: .limits))
    }
}

extension SettingsDocument {
    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            onlyAllowModels: try container.decodeIfPresent([String].self, forKey: .onlyAllowModels),
            promptFilters: try container.decodeIfPresent([PromptFilterDocument].self, forKey: .promptFilters) ?? [],
            defaultLimits: try container.decodeIfPresent(LimitsDocument.self, forKey: .defaultLimits),
            endUserDefaultLimits: try container.decodeIfPresent(LimitsDocument.self, forKey: .endUserDefaultLimits),
            timeZone: try container.decodeIfPresent(String.self, forKey: .timeZone) ?? "UTC",
            unpricedModels: try container.decodeIfPresent(String.self, forKey: .unpricedModels) ?? "deny_when_budgeted",
            defaultMaxOutputTokens: try container.decodeIfPresent(Int.self, forKey: .defaultMaxOutputTokens) ?? 4096,
            softBudgetPercent: try container.decodeIfPresent(Int.self, forKey: .softBudgetPercent),
            budgetWebhookURL: try container.decodeIfPresent(String.self, forKey: .budgetWebhookURL),
            usageSpoolFailure: try container.decodeIfPresent(String.self, forKey: .usageSpoolFailure)
                ?? "allow_in_memory",
            usageSpoolMemoryCap: try container.decodeIfPresent(Int.self, forKey: .usageSpoolMemoryCap) ?? 100_000,
            leaseSeconds: try container.decodeIfPresent(Int.self, forKey: .leaseSeconds) ?? 15,
            leaseFallback: try container.decodeIfPresent(String.self, forKey: .leaseFallback) ?? "fraction",
            leaseFallbackFraction: try container.decodeIfPresent(Double.self, forKey: .leaseFallbackFraction) ?? 0.1,
            leaseMinimumSharePercent: try container.decodeIfPresent(Int.self, forKey: .leaseMinimumSharePercent) ?? 50,
            router: try container.decodeIfPresent(RouterDocument.self, forKey: .router),
            guardrails: try container.decodeIfPresent([GuardrailDocument].self, forKey: .guardrails),
            passThrough: try container.decodeIfPresent([PassThroughDocument].self, forKey: .passThrough))
    }
}

/// Router settings as the admin API and bundles carry them; every field may be left out.
public struct RouterDocument: Codable, Sendable, Equatable {
    public var routingStrategy: String?
    public var numRetries: Int?
    public var retryAfter: Double?
    public var maxRetryBackoff: Double?
    public var allowedFails: Int?
    public var cooldownTime: Double?
    public var fallbacks: [String: [String]]?
    public var contextWindowFallbacks: [String: [String]]?
    public var contentPolicyFallbacks: [String: [String]]?
    /// LiteLLM's `model_group_alias`: another name callers may use for an alias.
    public var modelGroupAlias: [String: String]?
    /// The `model_group_alias` names `/v1/models` does not list (LiteLLM's `hidden: true`).
    public var hiddenGroupAliases: [String]?

    public init(
        routingStrategy: String? = nil, numRetries: Int? = nil, retryAfter: Double? = nil,
        maxRetryBackoff: Double? = nil,
        allowedFails: Int? = nil, cooldownTime: Double? = nil, fallbacks: [String: [String]]? = nil,
        contextWindowFallbacks: [String: [String]]? = nil, contentPolicyFallbacks: [String: [String]]? = nil
    ) {
        self.routingStrategy = routingStrategy
        self.numRetries = numRetries
        self.retryAfter = retryAfter
        self.maxRetryBackoff = maxRetryBackoff
        self.allowedFails = allowedFails
        self.cooldownTime = cooldownTime
        self.fallbacks = fallbacks
        self.contextWindowFallbacks = contextWindowFallbacks
        self.contentPolicyFallbacks = contentPolicyFallbacks
    }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            routingStrategy: try container.decodeIfPresent(String.self, forKey: .routingStrategy),
            numRetries: try container.decodeIfPresent(Int.self, forKey: .numRetries),
            retryAfter: try container.decodeIfPresent(Double.self, forKey: .retryAfter),
            maxRetryBackoff: try container.decodeIfPresent(Double.self, forKey: .maxRetryBackoff),
            allowedFails: try container.decodeIfPresent(Int.self, forKey: .allowedFails),
            cooldownTime: try container.decodeIfPresent(Double.self, forKey: .cooldownTime),
            fallbacks: try container.decodeIfPresent([String: [String]].self, forKey: .fallbacks),
            contextWindowFallbacks: try container.decodeIfPresent(
                [String: [String]].self, forKey: .contextWindowFallbacks),
            contentPolicyFallbacks: try container.decodeIfPresent(
                [String: [String]].self, forKey: .contentPolicyFallbacks))
        modelGroupAlias = try container.decodeIfPresent([String: String].self, forKey: .modelGroupAlias)
        hiddenGroupAliases = try container.decodeIfPresent([String].self, forKey: .hiddenGroupAliases)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case routingStrategy = "routing_strategy"
        case numRetries = "num_retries"
        case retryAfter = "retry_after"
        case
            maxRetryBackoff = "max_retry_backoff"
        case allowedFails = "allowed_fails"
        case cooldownTime = "cooldown_time"
        case fallbacks
        case
            contextWindowFallbacks = "context_window_fallbacks"
        case contentPolicyFallbacks = "content_policy_fallbacks"
        case modelGroupAlias = "model_group_alias"
        case hiddenGroupAliases = "hidden_group_aliases"
    }

    /// The settings for `catalog`. Fallbacks to aliases this agent skipped (a provider it
    /// cannot speak) are dropped with a warning rather than refusing the whole bundle.
    public func settings(for catalog: Catalog, warnings: inout [String]) throws(WireError) -> RouterSettings {
        var settings = RouterSettings()
        if let name = routingStrategy {
            guard let strategy = RoutingStrategy(configName: name) else {
                throw WireError(
                    "settings.router.routing_strategy must be one of "
                        + RoutingStrategy.allCases.map(\.rawValue).joined(separator: ", ")
                )
            }
            settings.strategy = strategy
        }
        settings.numRetries = numRetries ?? settings.numRetries
        settings.retryBackoffSeconds = retryAfter ?? settings.retryBackoffSeconds
        settings.maxBackoffSeconds = maxRetryBackoff ?? settings.maxBackoffSeconds
        settings.allowedFails = allowedFails ?? settings.allowedFails
        settings.cooldownSeconds = cooldownTime ?? settings.cooldownSeconds
        func known(_ table: [String: [String]]?, _ name: String) -> [String: [String]] {
            var kept: [String: [String]] = [:]
            for (alias, targets) in (table ?? [:]).sorted(by: { $0.key < $1.key }) {
                guard catalog.alias(named: alias) != nil else {
                    warnings.append(
                        "settings.router.\(name): \(alias) is not served by this agent; its fallbacks are ignored")
                    continue
                }
                kept[alias] = targets.filter { target in
                    guard catalog.alias(named: target) == nil else { return true }
                    warnings.append(
                        "settings.router.\(name): \(alias) falls back to \(target), "
                            + "which this agent does not serve; skipped"
                    )
                    return false
                }
            }
            return kept
        }
        settings.fallbacks = known(fallbacks, "fallbacks")
        settings.contextWindowFallbacks = known(contextWindowFallbacks, "context_window_fallbacks")
        settings.contentPolicyFallbacks = known(contentPolicyFallbacks, "content_policy_fallbacks")
        do {
            try settings.validate(against: catalog, at: "settings.router")
        } catch {
            throw WireError(error.message)
        }
        return settings
    }
}
