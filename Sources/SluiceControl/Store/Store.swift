import SluiceWire

/// What the control plane keeps: policy entities, fleet settings, agents, and usage
/// rollups. Two implementations share one conformance suite: SQLite (the zero-setup
/// default) and PostgreSQL (several replicas).
///
/// Every write that changes policy raises the policy version in the same transaction, so
/// a bundle built from one snapshot always carries the version of exactly that state.
public protocol Store: Sendable {
    /// Creates or upgrades the schema. Safe to run at every start, on every replica.
    func migrate() async throws

    /// Reads the policy and applies the change `plan` makes of it, in one transaction that
    /// holds the policy write lock (on every replica), after the store's own checks: a
    /// `put` checks its mode and that what the entity refers to exists, a `delete` that
    /// nothing refers to what it removes. No other policy write lands between the read and
    /// the change, so a read-modify-write (a patch, a revocation) loses no concurrent write,
    /// and a check `plan` makes still holds when the change is stored. `plan` may throw to
    /// refuse; then nothing changes.
    @discardableResult
    func change(_ plan: @escaping PolicyPlan) async throws -> PolicyWrite
    /// The entity of `kind` named `name`, or nil.
    func entity(_ kind: EntityKind, name: String) async throws -> Entity?
    /// Every entity of `kind`, by name.
    func entities(_ kind: EntityKind) async throws -> [Entity]
    /// The fleet settings (defaults when never set).
    func settings() async throws -> SettingsDocument

    /// Every entity and the settings, read in one transaction, with their version.
    func snapshot() async throws -> PolicySnapshot
    /// The policy version: raised by every policy write and by ``bumpPolicyVersion()``.
    func policyVersion() async throws -> Int64

    /// Applies `batch` exactly once: a batch at or below the (agent, epoch) mark is a repeat
    /// and is acknowledged without adding anything. Agents send in order and move on only
    /// after an acknowledgement, so a batch above the mark was never applied; a gap (the
    /// database was restored from a backup older than the agent's last acknowledgement) is
    /// accepted rather than leaving the agent stuck behind usage the store forgot.
    func apply(_ batch: UsageBatch) async throws -> UsageAck
    /// Applies batches in one transaction, in order, each exactly once as ``apply(_:)``
    /// would: one answer per batch, in the same order. Batches that arrive together from
    /// many agents are committed this way (see ``UsageCommitter``): one transaction, and each
    /// rollup cell they share written once. Every batch must have passed validation.
    func apply(group batches: [UsageBatch]) async throws -> [UsageAck]
    /// How many usage groups are worth writing at once: SQLite has one writer, PostgreSQL
    /// runs several transactions side by side (their shared cells locked in one order).
    var usageWriters: Int { get }
    /// Spend and tokens from the rollups, grouped as asked.
    func usage(_ query: UsageQuery) async throws -> [UsageRow]

    /// Raises the policy version without changing an entity: a fleet budget ran out or
    /// recovered, so agents must fetch a bundle that says so.
    @discardableResult
    func bumpPolicyVersion() async throws -> Int64

    /// Records that a one-time notice (a soft-budget webhook) went out; false if some
    /// replica recorded it already, so each notice is sent once across replicas.
    func recordNotice(_ key: String) async throws -> Bool

    /// Agent credentials: only a hash of the token is kept. Registering an id again
    /// replaces its token (and binding), so the old token stops working.
    func registerAgent(id: String, tokenHash: String, service: String?) async throws
    /// The agent whose token hashes to `tokenHash`, or nil.
    func agent(tokenHash: String) async throws -> AgentRecord?
    /// Every registered agent, by id.
    func agents() async throws -> [AgentRecord]
    /// Removes an agent's token: it can no longer fetch policy or report usage (what it
    /// reported stays counted). False when there was no such agent.
    func deleteAgent(id: String) async throws -> Bool
    /// A number every registration and deletion raises, on whichever replica it is made:
    /// tokens found before it moved may have been revoked or replaced.
    func agentTokensGeneration() async throws -> Int64

    /// Appends one admin change to the audit trail.
    func recordAdminChange(_ change: AdminChange) async throws
    /// Admin changes at or after `since` (Unix seconds), oldest first, at most `limit`.
    func adminChanges(since: Int64, limit: Int) async throws -> [AdminChange]

    /// Deletes at most `limit` rows from each of: hourly rollup cells (usage and denials)
    /// starting before `hourlyBefore`, daily ones starting before `dailyBefore`, and usage
    /// marks last updated before `marksBefore` (Unix seconds). Returns how many went, so a
    /// caller deletes in short batches that never hold up an ingest for long.
    func pruneUsage(hourlyBefore: Int64, dailyBefore: Int64, marksBefore: Int64, limit: Int) async throws -> Int
}

/// One admin write, as the audit trail keeps it: who, what and which entity, and the names
/// of the fields a patch changed. Never a value: a key's secret or hash, a webhook URL or a
/// prompt filter's pattern cannot end up here.
public struct AdminChange: Sendable, Equatable, Codable {
    /// Unix seconds.
    public var at: Int64
    /// Who made it: what the client said (`Sluice-Actor`, the CLI sends user@host), since
    /// every admin shares one token.
    public var actor: String
    /// create, replace, patch, delete, rotate, revoke, settings, register.
    public var action: String
    /// team, project, service, model, key, settings or agent.
    public var kind: String
    public var name: String
    /// The fields given, for a patch.
    public var fields: [String]

    public init(at: Int64, actor: String, action: String, kind: String, name: String, fields: [String] = []) {
        self.at = at
        self.actor = actor
        self.action = action
        self.kind = kind
        self.name = name
        self.fields = fields
    }
}

/// An agent the control plane issued a token to.
public struct AgentRecord: Sendable, Equatable, Codable {
    public var id: String
    /// The service (`namespace/service`) the token is bound to: its bundles hold only what
    /// that service can use. Nil: the whole policy.
    public var service: String?
    /// Unix seconds.
    public var createdAt: Int64

    public init(id: String, service: String?, createdAt: Int64) {
        self.id = id
        self.service = service
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, service
        case createdAt = "created_at"
    }
}

/// How `put` treats an existing entity of the same name: `create` refuses it (409),
/// `update` requires it (404 without), `upsert` takes either.
public enum PutMode: Sendable, Equatable {
    case create, update, upsert
}

/// The kinds of policy entity, each kept as its wire document.
public enum EntityKind: String, Sendable, CaseIterable {
    case team, project, service, model, key
    /// A named end user (the `user` a request carries), with limits or blocked.
    case endUser = "end_user"
}

/// One policy entity.
public enum Entity: Sendable, Equatable {
    case team(TeamDocument)
    case project(ProjectDocument)
    case service(ServiceDocument)
    case model(ModelDocument)
    case key(KeyDocument)
    case endUser(EndUserDocument)

    public var kind: EntityKind {
        switch self {
        case .team: .team
        case .project: .project
        case .service: .service
        case .model: .model
        case .key: .key
        case .endUser: .endUser
        }
    }

    public var name: String {
        switch self {
        case .team(let team): team.name
        case .project(let project): project.name
        case .service(let service): service.name
        case .model(let model): model.alias
        case .key(let key): key.id
        case .endUser(let endUser): endUser.name
        }
    }

    /// The team an entity belongs to, if any (projects and keys).
    public var team: String? {
        switch self {
        case .project(let project): project.team
        case .key(let key): key.team
        default: nil
        }
    }

    /// The project a key belongs to, if any.
    public var project: String? {
        if case .key(let key) = self { return key.project }
        return nil
    }
}

extension Store {
    /// Creates (`mode == .create`), replaces (`.update`) or upserts an entity after checking
    /// that what it refers to exists. Returns the new policy version.
    @discardableResult
    public func put(_ entity: Entity, mode: PutMode) async throws -> Int64 {
        try await change { _ in .put(entity, mode) }.version
    }

    /// Deletes an entity no other one refers to. Returns the new policy version.
    @discardableResult
    public func delete(_ kind: EntityKind, name: String) async throws -> Int64 {
        try await change { _ in .delete(kind, name) }.version
    }

    /// Replaces the fleet settings. Returns the new policy version.
    @discardableResult
    public func setSettings(_ settings: SettingsDocument) async throws -> Int64 {
        try await change { _ in .settings(settings) }.version
    }
}

/// One change to the policy.
public enum PolicyChange: Sendable, Equatable {
    case put(Entity, PutMode)
    case delete(EntityKind, String)
    case settings(SettingsDocument)
}

/// Decides a policy change from the policy as it stands, inside the write's transaction.
public typealias PolicyPlan = @Sendable (PolicySnapshot) throws -> PolicyChange

/// A policy change that was stored, and the policy version it made.
public struct PolicyWrite: Sendable, Equatable {
    public var version: Int64
    public var change: PolicyChange

    public init(version: Int64, change: PolicyChange) {
        self.version = version
        self.change = change
    }
}

/// Everything policy is built from, at one version.
public struct PolicySnapshot: Sendable, Equatable {
    public var version: Int64
    public var entities: [Entity]
    public var settings: SettingsDocument
}

/// Why a store operation was refused; `status` is the HTTP status the admin API answers.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not found (404), conflicting with what is stored (409), or invalid (400).
    public enum Kind: Sendable, Equatable {
        case notFound, conflict, invalid
    }
    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    public var status: Int {
        switch kind {
        case .notFound: 404
        case .conflict: 409
        case .invalid: 400
        }
    }
}

/// Which rollup cells to sum, and how to group them.
public struct UsageQuery: Sendable, Equatable {
    /// What a usage row can be grouped by.
    public enum Dimension: String, Sendable, CaseIterable {
        case team, project, service, key, model, day
        /// The hour's start (Unix seconds); always read from the hourly cells.
        case hour
        /// Grouped by time rather than by a name: the value is a Unix second, not text.
        public var isTime: Bool { self == .day || self == .hour }
    }
    public var groupBy: [Dimension]
    /// Unix seconds, inclusive start and exclusive end (whole hours are summed).
    public var from: Int64
    public var to: Int64
    /// Only the top `limit` rows by cost, when set.
    public var limit: Int?

    public init(groupBy: [Dimension], from: Int64, to: Int64, limit: Int? = nil) {
        self.groupBy = groupBy
        self.from = from
        self.to = to
        self.limit = limit
    }
}

/// One group of usage.
public struct UsageRow: Sendable, Equatable, Codable {
    /// The group's value per dimension (`""` where a call had none, e.g. keyless).
    public var group: [String: String]
    public var requests: Int64
    public var promptTokens: Int64
    public var completionTokens: Int64
    /// The parts of `promptTokens` read from and written to the providers' prompt caches.
    public var cachedPromptTokens: Int64
    public var cacheCreationTokens: Int64
    public var costPicoUSD: Int64
    /// Calls refused, by the reason's code (`budget_exceeded`, `rate_limited`, …).
    public var denials: [String: Int64]
    /// Calls refused, by the rule that refused them (`team "ml" tokens_per_minute`), as
    /// far as agents reported it (agents before it report reasons only).
    public var denialRules: [String: Int64]

    public init(
        group: [String: String], requests: Int64, promptTokens: Int64, completionTokens: Int64,
        cachedPromptTokens: Int64 = 0, cacheCreationTokens: Int64 = 0, costPicoUSD: Int64,
        denials: [String: Int64] = [:], denialRules: [String: Int64] = [:]
    ) {
        self.denialRules = denialRules
        self.group = group
        self.requests = requests
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedPromptTokens = cachedPromptTokens
        self.cacheCreationTokens = cacheCreationTokens
        self.costPicoUSD = costPicoUSD
        self.denials = denials
    }

    enum CodingKeys: String, CodingKey {
        case group, requests
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case cachedPromptTokens = "cached_tokens"
        case cacheCreationTokens = "cache_creation_tokens"
        case
            costPicoUSD = "cost_pico_usd"
        case denials
        case denialRules = "denial_rules"
    }
}
