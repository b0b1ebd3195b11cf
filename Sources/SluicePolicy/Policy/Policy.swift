/// Which model aliases a scope may use. A deny always beats an allow; a nil allowlist
/// allows every alias. A wildcard alias in a list (`openai/*`) stands for every name below it.
public struct ModelRules: Sendable, Equatable {
    public var allowed: Set<String>? { didSet { allowedWildcards = Self.wildcards(allowed) } }
    public var denied: Set<String> { didSet { deniedWildcards = Self.wildcards(denied) } }
    private var allowedWildcards: [String]
    private var deniedWildcards: [String]

    public init(allowed: Set<String>? = nil, denied: Set<String> = []) {
        self.allowed = allowed
        self.denied = denied
        allowedWildcards = Self.wildcards(allowed)
        deniedWildcards = Self.wildcards(denied)
    }

    public static let any = ModelRules()

    /// Whether the deny list names `name`, itself or through a wildcard.
    public func denies(_ name: String) -> Bool {
        denied.contains(name) || deniedWildcards.contains { Identifier.wildcard($0, covers: name) }
    }

    /// Whether the allowlist, when there is one, lets `name` through (itself or by a wildcard).
    public func allows(_ name: String) -> Bool {
        guard let allowed else { return true }
        return allowed.contains(name) || allowedWildcards.contains { Identifier.wildcard($0, covers: name) }
    }

    static func wildcards(_ names: Set<String>?) -> [String] {
        (names ?? []).filter { $0.hasSuffix("*") }.sorted()
    }
}

/// A named regular expression matched against the text of a call's messages.
public struct PromptFilter: Sendable {
    public let name: String
    public let pattern: String
    private let compiled: PromptPattern

    /// Compiles `pattern`: PCRE-style syntax such as `(?i)\bpassword\b` or
    /// `\b\d{3}-\d{2}-\d{4}\b`, matched by a POSIX engine (see ``PromptPattern``).
    public init(name: String, pattern: String) throws(PolicyError) {
        self.name = name
        self.pattern = pattern
        do {
            compiled = try PromptPattern(pattern)
        } catch {
            throw PolicyError("prompt filter \"\(name)\" has an invalid pattern: \(error.message)")
        }
    }

    /// Whether the filter's pattern occurs anywhere in `text`.
    public func matches(_ text: String) -> Bool {
        compiled.matches(text)
    }

    /// Whether the filter's pattern occurs anywhere in `text`, as UTF-8.
    public func matches(_ text: UnsafeRawBufferPointer) -> Bool {
        compiled.matches(text)
    }
}

/// A team as the engine checks it: allowed models, limits and budgets, prompt filters.
public struct TeamPolicy: Sendable {
    public var name: String
    public var models: ModelRules
    public var limits: Limits
    public var promptFilters: [PromptFilter]

    public init(name: String, models: ModelRules = .any, limits: Limits = .none, promptFilters: [PromptFilter] = []) {
        self.name = name
        self.models = models
        self.limits = limits
        self.promptFilters = promptFilters
    }
}

/// A project inside a team, checked after its team: its own models and limits.
public struct ProjectPolicy: Sendable {
    public var name: String
    public var team: String
    public var models: ModelRules
    public var limits: Limits

    public init(name: String, team: String, models: ModelRules = .any, limits: Limits = .none) {
        self.name = name
        self.team = team
        self.models = models
        self.limits = limits
    }
}

/// Settings for one service identity (`namespace/service`, or `*` for any other).
public struct ServicePolicy: Sendable {
    public var name: String
    /// Callers without a virtual key are served, attributed to the service itself.
    public var keylessAllowed: Bool
    public var models: ModelRules
    public var limits: Limits

    public init(name: String, keylessAllowed: Bool = false, models: ModelRules = .any, limits: Limits = .none) {
        self.name = name
        self.keylessAllowed = keylessAllowed
        self.models = models
        self.limits = limits
    }
}

/// A virtual key as policy knows it: its keyed hash, never the key.
public struct KeyPolicy: Sendable {
    /// Stable id, used in audit lines, metrics and denials in place of the key.
    public var id: String
    public var hash: KeyHash
    /// After a rotation with a grace period: the old secret's hash, accepted until
    /// `previousHashValidUntil` (Unix seconds).
    public var previousHash: KeyHash?
    public var previousHashValidUntil: Int64?
    public var team: String
    public var project: String?
    public var metadata: [String: String]
    /// Seconds since the Unix epoch after which the key is refused.
    public var expiresAt: Int64?
    public var revoked: Bool
    public var models: ModelRules
    public var limits: Limits

    public init(
        id: String, hash: KeyHash, previousHash: KeyHash? = nil, previousHashValidUntil: Int64? = nil, team: String,
        project: String? = nil, metadata: [String: String] = [:],
        expiresAt: Int64? = nil, revoked: Bool = false, models: ModelRules = .any, limits: Limits = .none
    ) {
        self.id = id
        self.hash = hash
        self.previousHash = previousHash
        self.previousHashValidUntil = previousHashValidUntil
        self.team = team
        self.project = project
        self.metadata = metadata
        self.expiresAt = expiresAt
        self.revoked = revoked
        self.models = models
        self.limits = limits
    }
}

/// What to do with a call to an alias that has no price.
public enum UnpricedModels: String, Sendable {
    /// Refuse every such call.
    case deny
    /// Refuse it when a spend budget applies (the budget could not hold); otherwise serve
    /// it and flag the audit line `price_missing`.
    case denyWhenBudgeted = "deny_when_budgeted"
    /// Serve it and flag the audit line; budgets do not see its cost.
    case flag
}

/// Everything the agent decides from: identities, rules, limits and the catalog.
/// The control plane will deliver this same model as a signed bundle.
public struct Policy: Sendable {
    /// Identifies this policy (a content hash or a control-plane version), for metrics.
    public var version: String
    public var catalog: Catalog
    public var keys: [KeyPolicy]
    public var teams: [String: TeamPolicy]
    public var projects: [String: ProjectPolicy]
    /// By `namespace/service`; `*` applies to services not listed.
    public var services: [String: ServicePolicy]
    /// When set, no alias outside it is served to anyone.
    public var onlyAllowModels: Set<String>?
    public var promptFilters: [PromptFilter]
    /// External guardrails, asked in this order before a call is admitted.
    public var guardrails: [Guardrail] = []
    /// Explicit pass-throughs to endpoints Sluice does not meter, first match wins.
    public var passThroughs: [PassThrough] = []
    /// Limits for a caller whose key (or, keyless, whose service) has none of its own and
    /// whose project and team have none either.
    public var defaultLimits: Limits
    /// Limits per end user (the body's `user`), and for users not listed.
    public var endUserLimits: [String: Limits]
    public var endUserDefaultLimits: Limits
    /// End users refused whatever key or service their calls come through.
    public var blockedEndUsers: Set<String> = []
    /// Limits per model alias, across all callers of this agent.
    public var modelLimits: [String: Limits]
    /// Where daily and monthly budgets roll over.
    public var timeZone: TimeZoneRules
    public var unpricedModels: UnpricedModels
    /// The answer budget assumed when a call sets no `max_tokens`.
    public var defaultMaxOutputTokens: Int
    /// The HMAC pepper virtual keys are hashed with; nil when the policy has no keys.
    public var keyPepper: Secret?
    /// Budgets the whole fleet has spent (from the control plane): calls in these scopes are
    /// refused until the instant given (Unix seconds), whatever this agent's own counters say.
    public var exhausted: [Scope: ExhaustedBudget] = [:]

    public init(
        version: String = "0", catalog: Catalog, keys: [KeyPolicy] = [], teams: [String: TeamPolicy] = [:],
        projects: [String: ProjectPolicy] = [:], services: [String: ServicePolicy] = [:],
        onlyAllowModels: Set<String>? = nil, promptFilters: [PromptFilter] = [], defaultLimits: Limits = .none,
        endUserLimits: [String: Limits] = [:], endUserDefaultLimits: Limits = .none,
        modelLimits: [String: Limits] = [:],
        timeZone: TimeZoneRules = .utc, unpricedModels: UnpricedModels = .denyWhenBudgeted,
        defaultMaxOutputTokens: Int = 4096, keyPepper: Secret? = nil
    ) {
        self.version = version
        self.catalog = catalog
        self.keys = keys
        self.teams = teams
        self.projects = projects
        self.services = services
        self.onlyAllowModels = onlyAllowModels
        self.promptFilters = promptFilters
        self.defaultLimits = defaultLimits
        self.endUserLimits = endUserLimits
        self.endUserDefaultLimits = endUserDefaultLimits
        self.modelLimits = modelLimits
        self.timeZone = timeZone
        self.unpricedModels = unpricedModels
        self.defaultMaxOutputTokens = defaultMaxOutputTokens
        self.keyPepper = keyPepper
    }

    /// The policy of an agent configured with a catalog only: every service may call
    /// without a key, nothing is limited. Fine on a laptop; a fleet sets a real policy.
    public static func open(catalog: Catalog) -> Policy {
        Policy(version: "open", catalog: catalog, services: ["*": ServicePolicy(name: "*", keylessAllowed: true)])
    }

    /// Checks that every reference resolves: keys name known teams and projects, a project's
    /// team exists, key ids and hashes are unique, a pepper exists when keys do.
    public func validate() throws(PolicyError) {
        if !keys.isEmpty {
            guard let keyPepper, keyPepper.reveal().utf8.count >= 16 else {
                throw PolicyError("keys are configured, so key_pepper must be set (at least 16 bytes)")
            }
        }
        var ids: Set<String> = []
        var hashes: Set<KeyHash> = []
        for key in keys {
            guard ids.insert(key.id).inserted else { throw PolicyError("key id \"\(key.id)\" appears twice") }
            guard hashes.insert(key.hash).inserted else {
                throw PolicyError("key \"\(key.id)\" has the same hash as another key")
            }
            if let previous = key.previousHash {
                guard hashes.insert(previous).inserted else {
                    throw PolicyError("key \"\(key.id)\"'s previous hash is also another key's")
                }
            }
            guard teams[key.team] != nil else {
                throw PolicyError("key \"\(key.id)\" names team \"\(key.team)\", which is not defined")
            }
            if let project = key.project {
                guard let found = projects[project] else {
                    throw PolicyError("key \"\(key.id)\" names project \"\(project)\", which is not defined")
                }
                guard found.team == key.team else {
                    throw PolicyError(
                        "key \"\(key.id)\" is in team \"\(key.team)\" but project \"\(project)\" belongs to team "
                            + "\"\(found.team)\""
                    )
                }
            }
        }
        for project in projects.values where teams[project.team] == nil {
            throw PolicyError("project \"\(project.name)\" names team \"\(project.team)\", which is not defined")
        }
        guard defaultMaxOutputTokens > 0 else { throw PolicyError("default_max_output_tokens must be positive") }
    }
}

/// A budget spent fleet-wide, as the control plane reports it.
public struct ExhaustedBudget: Sendable, Equatable {
    public var limit: LimitKind
    public var until: Int64

    public init(limit: LimitKind, until: Int64) {
        self.limit = limit
        self.until = until
    }
}

/// Why a policy was refused. Names the part at fault; never includes a secret.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
