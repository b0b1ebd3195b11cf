/// One batch of usage an agent flushes. `(agent_id, epoch, sequence)` makes it idempotent:
/// the control plane applies a batch once, and answers a repeat with the same
/// acknowledgement. A new epoch begins whenever the agent's spool is lost or reset, so a
/// sequence number is never reused for different contents.
public struct UsageBatch: Codable, Sendable, Equatable {
    public var agentID: String
    public var epoch: String
    public var sequence: Int64
    public var deltas: [UsageDelta]
    /// The agent's lease renewal, carried by the last batch of a flush so that one call a
    /// cycle does both; the answer comes in ``UsageAck/leases``. Never spooled: the agent
    /// adds it when sending. A control plane that does not know it ignores it, and one whose
    /// renewal fails leaves the answer out; either way the agent then renews with
    /// `POST /v1/agent/leases`.
    public var leases: LeaseRequest?

    public init(agentID: String, epoch: String, sequence: Int64, deltas: [UsageDelta], leases: LeaseRequest? = nil) {
        self.agentID = agentID
        self.epoch = epoch
        self.sequence = sequence
        self.deltas = deltas
        self.leases = leases
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agent_id"
        case epoch, sequence, deltas, leases
    }

    /// Bounds and shapes a control plane checks before touching its store.
    public func validate() throws(WireError) {
        guard !agentID.isEmpty, agentID.utf8.count <= 200 else { throw WireError("agent_id must be 1 to 200 bytes") }
        guard !epoch.isEmpty, epoch.utf8.count <= 100 else { throw WireError("epoch must be 1 to 100 bytes") }
        guard sequence >= 1 else { throw WireError("sequence must be 1 or more") }
        guard deltas.count <= 10_000 else { throw WireError("a batch holds at most 10000 deltas") }
        for (index, delta) in deltas.enumerated() { try delta.validate(at: "deltas[\(index)]") }
    }
}

/// Usage of one (hour, team, project, service, key, model) cell.
public struct UsageDelta: Codable, Sendable, Equatable {
    /// Start of the hour (Unix seconds, a multiple of 3600) the calls were made in.
    public var hour: Int64
    public var team: String?
    public var project: String?
    /// `namespace/service`.
    public var service: String
    public var keyID: String?
    public var model: String
    public var requests: Int64
    public var promptTokens: Int64
    public var completionTokens: Int64
    /// The parts of `promptTokens` read from and written to the provider's prompt cache.
    public var cachedPromptTokens: Int64
    public var cacheCreationTokens: Int64
    /// Cost in pico-USD (integer, exact).
    public var costPicoUSD: Int64
    /// Refusals by reason code.
    public var denials: [String: Int64]
    /// Refusals by the rule that refused them (names only: `team "ml" tokens_per_minute`).
    /// Absent from agents before it and left out when empty; control planes before it
    /// ignore it.
    public var denialRules: [String: Int64]

    public init(
        hour: Int64, team: String? = nil, project: String? = nil, service: String, keyID: String? = nil, model: String,
        requests: Int64 = 0, promptTokens: Int64 = 0, completionTokens: Int64 = 0, cachedPromptTokens: Int64 = 0,
        cacheCreationTokens: Int64 = 0, costPicoUSD: Int64 = 0, denials: [String: Int64] = [:],
        denialRules: [String: Int64] = [:]
    ) {
        self.hour = hour
        self.team = team
        self.project = project
        self.service = service
        self.keyID = keyID
        self.model = model
        self.requests = requests
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedPromptTokens = cachedPromptTokens
        self.cacheCreationTokens = cacheCreationTokens
        self.costPicoUSD = costPicoUSD
        self.denials = denials
        self.denialRules = denialRules
    }

    /// The cache figures may be absent: agents from before they existed send none.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        hour = try container.decode(Int64.self, forKey: .hour)
        team = try container.decodeIfPresent(String.self, forKey: .team)
        project = try container.decodeIfPresent(String.self, forKey: .project)
        service = try container.decode(String.self, forKey: .service)
        keyID = try container.decodeIfPresent(String.self, forKey: .keyID)
        model = try container.decode(String.self, forKey: .model)
        requests = try container.decode(Int64.self, forKey: .requests)
        promptTokens = try container.decode(Int64.self, forKey: .promptTokens)
        completionTokens = try container.decode(Int64.self, forKey: .completionTokens)
        cachedPromptTokens = try container.decodeIfPresent(Int64.self, forKey: .cachedPromptTokens) ?? 0
        cacheCreationTokens = try container.decodeIfPresent(Int64.self, forKey: .cacheCreationTokens) ?? 0
        costPicoUSD = try container.decode(Int64.self, forKey: .costPicoUSD)
        denials = try container.decode([String: Int64].self, forKey: .denials)
        denialRules = try container.decodeIfPresent([String: Int64].self, forKey: .denialRules) ?? [:]
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(hour, forKey: .hour)
        try container.encodeIfPresent(team, forKey: .team)
        try container.encodeIfPresent(project, forKey: .project)
        try container.encode(service, forKey: .service)
        try container.encodeIfPresent(keyID, forKey: .keyID)
        try container.encode(model, forKey: .model)
        try container.encode(requests, forKey: .requests)
        try container.encode(promptTokens, forKey: .promptTokens)
        try container.encode(completionTokens, forKey: .completionTokens)
        try container.encode(cachedPromptTokens, forKey: .cachedPromptTokens)
        try container.encode(cacheCreationTokens, forKey: .cacheCreationTokens)
        try container.encode(costPicoUSD, forKey: .costPicoUSD)
        try container.encode(denials, forKey: .denials)
        if !denialRules.isEmpty { try container.encode(denialRules, forKey: .denialRules) }
    }

    enum CodingKeys: String, CodingKey {
        case hour, team, project, service
        case keyID = "key_id"
        case model, requests
        case promptTokens = "prompt_tokens"
        case
            completionTokens = "completion_tokens"
        case cachedPromptTokens = "cached_tokens"
        case cacheCreationTokens = "cache_creation_tokens"
        case costPicoUSD = "cost_pico_usd"
        case denials
        case denialRules = "denial_rules"
    }

    /// Bounds on one delta: one agent's calls on one key and model in one hour. They are far
    /// above what an agent serves (10^8 requests is 27,000 a second for the hour) and far
    /// below where sums could overflow: ten thousand deltas at the bound still fit in Int64.
    public static let maxRequests: Int64 = 100_000_000
    public static let maxTokens: Int64 = 1_000_000_000_000
    /// 10^17 pico-USD: $100,000.
    public static let maxCostPicoUSD: Int64 = 100_000_000_000_000_000
    /// At most this many rules per delta, each 1 to `maxRuleBytes` bytes.
    public static let maxRules = 64
    public static let maxRuleBytes = 200

    func validate(at path: String) throws(WireError) {
        guard hour >= 0, hour % 3600 == 0 else {
            throw WireError("\(path).hour must be the start of an hour in Unix seconds")
        }
        for (name, value, bound) in [
            ("requests", requests, Self.maxRequests), ("prompt_tokens", promptTokens, Self.maxTokens),
            ("completion_tokens", completionTokens, Self.maxTokens),
            ("cached_tokens", cachedPromptTokens, promptTokens),
            ("cache_creation_tokens", cacheCreationTokens, promptTokens - min(cachedPromptTokens, promptTokens)),
            ("cost_pico_usd", costPicoUSD, Self.maxCostPicoUSD),
        ] where !(0...bound).contains(value) {
            throw WireError("\(path).\(name) must be 0 to \(bound)")
        }
        // `rule:` is how the rollups keep refusals by rule beside those by reason.
        guard denials.values.allSatisfy({ (0...Self.maxRequests).contains($0) }), denials.count <= 64,
            denials.keys.allSatisfy({ (1...64).contains($0.utf8.count) && !$0.hasPrefix("rule:") })
        else {
            throw WireError(
                "\(path).denials must hold at most 64 counts of 0 to \(Self.maxRequests), by reasons of 1 to 64 bytes"
                    + " (not starting with rule:)")
        }
        guard denialRules.values.allSatisfy({ (0...Self.maxRequests).contains($0) }),
            denialRules.count <= Self.maxRules,
            denialRules.keys.allSatisfy({ (1...Self.maxRuleBytes).contains($0.utf8.count) })
        else {
            throw WireError(
                "\(path).denial_rules must hold at most \(Self.maxRules) counts of 0 to \(Self.maxRequests), by rules"
                    + " of 1 to \(Self.maxRuleBytes) bytes")
        }
        for text in [team, project, keyID, Optional(service), Optional(model)].compactMap({ $0 })
        where text.utf8.count > 200 {
            throw WireError("\(path): names are at most 200 bytes")
        }
    }
}

/// The control plane's answer to a usage batch: everything up to `sequence` in `epoch` is
/// durably applied, and the agent may delete it from its spool.
public struct UsageAck: Codable, Sendable, Equatable {
    public var agentID: String
    public var epoch: String
    public var acknowledgedSequence: Int64
    /// The batch had been applied before (a retry): nothing was added twice.
    public var duplicate: Bool
    /// The answer to the batch's ``UsageBatch/leases``, when it carried a renewal.
    public var leases: LeaseAnswer?

    public init(
        agentID: String, epoch: String, acknowledgedSequence: Int64, duplicate: Bool, leases: LeaseAnswer? = nil
    ) {
        self.agentID = agentID
        self.epoch = epoch
        self.acknowledgedSequence = acknowledgedSequence
        self.duplicate = duplicate
        self.leases = leases
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agent_id"
        case epoch
        case acknowledgedSequence = "acknowledged_sequence"
        case duplicate, leases
    }
}
