import Foundation
import Hummingbird
import SluiceAPI
import SluicePolicy
import SluiceWire

/// LiteLLM's admin API on Sluice's model, so scripts, Terraform and runbooks written for the
/// LiteLLM proxy keep working against `sluice-control` (docs/litellm.md has the table).
/// The admin token is LiteLLM's master key (`Authorization: Bearer …`). Every body is read
/// strictly: a field Sluice has no equivalent for is refused by name with why, and an
/// unknown one with the closest known name; nothing is silently dropped.
extension ControlAPI {
    func liteLLMRoutes() -> RouteCollection<ControlContext> {
        let routes = RouteCollection(context: ControlContext.self).add(
            middleware: AdminAuthMiddleware(token: adminToken))
        let (store, gate, audit, hasher) = (self.store, self.gate, self.audit, self.keyHasher)
        let adminToken = self.adminToken

        // MARK: Keys

        routes.post("key/generate") { request, context in
            let body = try await LiteLLMBody(request, context, LiteLLMKeyFields.generate)
            var fields = LiteLLMKeyFields(body)
            // LiteLLM's `key` sets the secret: how keys migrate from a LiteLLM proxy unchanged.
            if let secret = body.string("key") {
                fields.secret = try LiteLLMKeyFields.importable(secret, adminToken: adminToken)
            }
            let issued = try await Self.generateKey(
                fields, store: store, gate: gate, hasher: hasher, defaultTeam: "default")
            await audit.changed(
                request, fields.secret == nil ? "create" : "import", "key", issued.key.id, fields: ["litellm"])
            return try jsonResponse(LiteLLMKeyView(issued.key, secret: issued.secret))
        }
        routes.post("key/update") { request, context in
            let body = try await LiteLLMBody(request, context, LiteLLMKeyFields.update)
            let id = try await Self.keyID(body.requiredString("key"), store: store, hasher: hasher)
            let fields = LiteLLMKeyFields(body)
            let stored = try await gate.edit(.key, id, in: store) { stored in
                guard case .key(var key) = stored else { preconditionFailure("an entity of another kind") }
                try fields.apply(to: &key)
                return .key(key)
            }
            guard case .key(let key) = stored else { preconditionFailure("an entity of another kind") }
            await audit.changed(request, "patch", "key", id, fields: body.names)
            return try jsonResponse(LiteLLMKeyView(key))
        }
        routes.post("key/delete") { request, context in
            let body = try await LiteLLMBody(request, context, ["keys", "key_aliases"])
            var deleted: [String] = []
            for reference in (body.strings("keys") ?? []) + (body.strings("key_aliases") ?? []) {
                let id = try await Self.keyID(reference, store: store, hasher: hasher)
                try await gate.delete(.key, id, in: store)
                await audit.changed(request, "delete", "key", id)
                deleted.append(id)
            }
            return try jsonResponse(["deleted_keys": deleted])
        }
        routes.get("key/info") { request, _ in
            guard let reference = request.uri.queryParameters.get("key") else {
                throw APIError(400, "key: missing query parameter", code: "missing_key")
            }
            let id = try await Self.keyID(reference, store: store, hasher: hasher)
            guard case .key(let key) = try await store.entity(.key, name: id) else {
                throw APIError(404, "no such key", code: "not_found")
            }
            return try jsonResponse(LiteLLMKeyInfo(key: id, info: LiteLLMKeyView(key)))
        }
        routes.get("key/list") { request, _ in
            let team = request.uri.queryParameters.get("team_id")
            let keys = try await store.entities(.key).compactMap { entity -> KeyDocument? in
                guard case .key(let key) = entity, team == nil || key.team == team else { return nil }
                return key
            }
            return try jsonResponse(
                LiteLLMKeyList(keys: keys.map(\.id), totalCount: keys.count, currentPage: 1, totalPages: 1))
        }
        routes.post("key/regenerate") { request, context in
            let body = try await LiteLLMBody(request, context, ["key", "grace_period"])
            let id = try await Self.keyID(body.requiredString("key"), store: store, hasher: hasher)
            let grace =
                try body.string("grace_period").map { try LiteLLMDuration.seconds($0, at: "grace_period") } ?? 0
            guard grace <= 30 * 86_400 else {
                throw APIError(400, "grace_period: at most 30d", code: "invalid_grace")
            }
            let (key, secret) = try await Self.rotateKey(
                id, graceSeconds: grace, in: store, hasher: hasher,
                revokedMessage: "the key is blocked; unblock it first")
            await audit.changed(request, "rotate", "key", id)
            return try jsonResponse(LiteLLMKeyView(key, secret: secret))
        }
        for (path, blocked) in [("key/block", true), ("key/unblock", false)] {
            routes.post(RouterPath(path)) { request, context in
                let body = try await LiteLLMBody(request, context, ["key"])
                let id = try await Self.keyID(body.requiredString("key"), store: store, hasher: hasher)
                let key = try await Self.changeKey(id, in: store) { key in
                    key.revoked = blocked
                    if blocked {
                        key.previousHash = nil
                        key.previousHashExpiresAt = nil
                    }
                }
                await audit.changed(request, blocked ? "revoke" : "unblock", "key", id)
                return try jsonResponse(LiteLLMKeyView(key))
            }
        }

        // MARK: Teams

        routes.post("team/new") { request, context in
            let body = try await LiteLLMBody(request, context, LiteLLMTeamFields.known)
            guard let name = body.string("team_id") ?? body.string("team_alias") else {
                throw APIError(400, "team_id or team_alias: one names the team", code: "missing_team")
            }
            var team = TeamDocument(name: name)
            try LiteLLMTeamFields(body).apply(to: &team)
            try await gate.put(.team(team), mode: .create, in: store)
            await audit.changed(request, "create", "team", name, fields: ["litellm"])
            return try jsonResponse(LiteLLMTeamView(team))
        }
        routes.post("team/update") { request, context in
            let body = try await LiteLLMBody(request, context, LiteLLMTeamFields.known)
            let name = try body.requiredString("team_id")
            let fields = LiteLLMTeamFields(body)
            let stored = try await gate.edit(.team, name, in: store) { stored in
                guard case .team(var team) = stored else { preconditionFailure("an entity of another kind") }
                try fields.apply(to: &team)
                return .team(team)
            }
            guard case .team(let team) = stored else { preconditionFailure("an entity of another kind") }
            await audit.changed(request, "patch", "team", name, fields: body.names)
            return try jsonResponse(LiteLLMTeamView(team))
        }
        routes.post("team/delete") { request, context in
            let body = try await LiteLLMBody(request, context, ["team_ids"])
            for name in body.strings("team_ids") ?? [] {
                try await gate.delete(.team, name, in: store)
                await audit.changed(request, "delete", "team", name)
            }
            return try jsonResponse(["deleted_teams": body.strings("team_ids") ?? []])
        }
        routes.get("team/info") { request, _ in
            guard let name = request.uri.queryParameters.get("team_id") else {
                throw APIError(400, "team_id: missing query parameter", code: "missing_team")
            }
            guard case .team(let team) = try await store.entity(.team, name: String(name)) else {
                throw APIError(404, "no team \(Identifier.quoted(String(name)))", code: "not_found")
            }
            let keys = try await store.entities(.key).compactMap { entity -> String? in
                guard case .key(let key) = entity, key.team == team.name else { return nil }
                return key.id
            }
            return try jsonResponse(LiteLLMTeamInfo(teamID: team.name, teamInfo: LiteLLMTeamView(team), keys: keys))
        }
        routes.get("team/list") { _, _ in
            let teams = try await store.entities(.team).compactMap { entity -> LiteLLMTeamView? in
                guard case .team(let team) = entity else { return nil }
                return LiteLLMTeamView(team)
            }
            return try jsonResponse(teams)
        }
        for (path, adding) in [("team/model/add", true), ("team/model/delete", false)] {
            routes.post(RouterPath(path)) { request, context in
                let body = try await LiteLLMBody(request, context, ["team_id", "models"])
                let name = try body.requiredString("team_id")
                let models = body.strings("models") ?? []
                let stored = try await gate.edit(.team, name, in: store) { stored in
                    guard case .team(var team) = stored else { preconditionFailure("an entity of another kind") }
                    if adding {
                        // A team that may use any model already has these; a list gains them.
                        if let current = team.allowedModels {
                            team.allowedModels = current + models.filter { !current.contains($0) }
                        }
                    } else {
                        guard let current = team.allowedModels else {
                            throw APIError(
                                409,
                                "team \(Identifier.quoted(name)) may use any model; removing some from an open list"
                                    + " would widen nothing and narrow nothing. Set its models first",
                                code: "team_allows_any_model")
                        }
                        team.allowedModels = current.filter { !models.contains($0) }
                    }
                    return .team(team)
                }
                guard case .team(let team) = stored else { preconditionFailure("an entity of another kind") }
                await audit.changed(request, "patch", "team", name, fields: ["allowed_models"])
                return try jsonResponse(LiteLLMTeamView(team))
            }
        }

        // MARK: The seed's documented calls

        routes.post("manage/proxy_key") { request, context in
            let body = try await LiteLLMBody(request, context, ProxyKeyFields.known)
            var fields = LiteLLMKeyFields(team: try body.requiredString("team"))
            fields.project = body.string("project")
            fields.models = body.strings("allowed_models")
            fields.metadata = try body.metadata("metadata")
            fields.limits = try ProxyKeyFields.limits(body)
            let issued = try await Self.generateKey(
                fields, store: store, gate: gate, hasher: hasher, defaultTeam: nil, createMissing: true)
            await audit.changed(request, "create", "key", issued.key.id, fields: ["proxy_key"])
            return try jsonResponse(ProxyKeyView(issued.key, secret: issued.secret), status: .created)
        }
        // The key is in the path: it is hashed here and only its id is ever logged or kept.
        routes.patch("manage/proxy_key/:key") { request, context in
            let reference = try context.pathParameter("key")
            let body = try await LiteLLMBody(request, context, ProxyKeyFields.known)
            let id = try await Self.keyID(reference, store: store, hasher: hasher)
            let stored = try await gate.edit(.key, id, in: store) { stored in
                guard case .key(var key) = stored else { preconditionFailure("an entity of another kind") }
                if body.has("allowed_models") { key.allowedModels = body.strings("allowed_models") }
                if body.has("metadata") {
                    for (field, value) in try body.metadata("metadata") ?? [:] { key.metadata[field] = value }
                }
                if body.has("limits") { key.limits = try ProxyKeyFields.limits(body) }
                if body.has("team") || body.has("project") {
                    throw APIError(400, "team, project: a key's team and project do not change", code: "immutable")
                }
                return .key(key)
            }
            guard case .key(let key) = stored else { preconditionFailure("an entity of another kind") }
            await audit.changed(request, "patch", "key", id, fields: body.names)
            return try jsonResponse(ProxyKeyView(key, secret: nil))
        }
        liteLLMSpendRoutes(routes)
        liteLLMCustomerRoutes(routes)
        return routes
    }

    /// Creates a key from LiteLLM-style fields; returns it with its secret (shown once).
    static func generateKey(
        _ fields: LiteLLMKeyFields, store: any Store, gate: PolicyGate, hasher: KeyHasher, defaultTeam: String?,
        createMissing: Bool = false
    ) async throws -> (key: KeyDocument, secret: String) {
        var generator = SystemRandomNumberGenerator()
        let secret = fields.secret ?? VirtualKey.generate(using: &generator)
        let id = fields.alias ?? "key_" + String(VirtualKey.generate(using: &generator).suffix(12)).lowercased()
        guard let team = fields.team ?? defaultTeam else {
            throw APIError(400, "team: missing field", code: "missing_team")
        }
        var key = KeyDocument(
            id: id, hash: hasher.hash(secret).encoded, team: team, project: fields.project, metadata: [:],
            expiresAt: nil, allowedModels: nil, deniedModels: [], limits: nil)
        try fields.apply(to: &key)
        key.prefix = VirtualKey.displayPrefix(of: secret)
        key.createdAt = Int64(Date().timeIntervalSince1970)
        if fields.team == nil || team == defaultTeam || createMissing {
            // LiteLLM keys need no team; Sluice's do, so a key without one joins `default`,
            // made on first use.
            let grammar = PolicyGate.grammar(.key(key))
            guard grammar.isEmpty else { throw PolicyGate.refusal(grammar, status: 400, code: "invalid_name") }
            try await ControlAPI.createMissing(team: team, project: fields.project, store: store, gate: gate)
        }
        try await gate.put(.key(key), mode: .create, in: store)
        return (key, secret)
    }

    /// The id of the key `reference` names: its secret (hashed here, never kept or logged)
    /// or its id.
    static func keyID(_ reference: String, store: any Store, hasher: KeyHasher) async throws -> String {
        let hash = hasher.hash(reference).encoded
        for entity in try await store.entities(.key) {
            guard case .key(let key) = entity else { continue }
            if key.hash == hash || key.previousHash == hash || key.id == reference { return key.id }
        }
        throw APIError(404, "no such key", code: "not_found")
    }
}

/// A LiteLLM request body, read strictly against the fields a route knows.
struct LiteLLMBody: Sendable {
    let members: [(key: String, value: JSONValue)]

    init(_ request: Request, _ context: ControlContext, _ known: Set<String>) async throws {
        let bytes = try await readBody(request)
        let value: JSONValue
        do {
            value = bytes.isEmpty ? .object([]) : try JSONValue.parseObject(Array(bytes), maxDepth: 16)
        } catch {
            throw APIError(400, "the body is not a JSON object", code: "invalid_json")
        }
        members = value.objectValue ?? []
        for (name, _) in members where !known.contains(name) {
            if let why = LiteLLMUnsupported.fields[name] {
                throw APIError(400, "\(name): not supported by Sluice: \(why)", code: "unsupported_field")
            }
            throw APIError(
                400, "\(Identifier.quoted(name)): unknown field" + Suggestion.hint(for: name, among: known),
                code: "unknown_field")
        }
    }

    var names: [String] { members.map(\.key).sorted() }
    func has(_ name: String) -> Bool { members.contains { $0.key == name } }
    func value(_ name: String) -> JSONValue? { members.first { $0.key == name }?.value }

    /// A string field that must be there.
    func requiredString(_ name: String) throws -> String {
        switch value(name) {
        case nil, .null?: throw APIError(400, "\(name): missing field", code: "missing_field")
        case .string(let text)?: return text
        default: throw APIError(400, "\(name): expected a string", code: "invalid_body")
        }
    }

    func string(_ name: String) -> String? { value(name)?.stringValue }

    func strings(_ name: String) -> [String]? {
        value(name)?.arrayValue?.compactMap(\.stringValue)
    }

    func int(_ name: String) throws -> Int? {
        switch value(name) {
        case nil, .null?: return nil
        case .number(let text)?:
            guard let number = Int(text), number >= 0 else {
                throw APIError(400, "\(name): expected a whole number", code: "invalid_body")
            }
            return number
        default: throw APIError(400, "\(name): expected a whole number", code: "invalid_body")
        }
    }

    func double(_ name: String) throws -> Double? {
        switch value(name) {
        case nil, .null?: return nil
        case .number(let text)?:
            guard let number = Double(text), number >= 0, number.isFinite else {
                throw APIError(400, "\(name): expected a number", code: "invalid_body")
            }
            return number
        default: throw APIError(400, "\(name): expected a number", code: "invalid_body")
        }
    }

    /// `current` with the body's LiteLLM limits applied (`rpm_limit`, `tpm_limit`,
    /// `max_parallel_requests`, `max_budget` with `budget_duration`); nil when none is left.
    func limits(applyingTo current: LimitsDocument?) throws -> LimitsDocument? {
        var limits = current ?? LimitsDocument()
        if has("rpm_limit") { limits.requestsPerMinute = try int("rpm_limit") }
        if has("tpm_limit") { limits.tokensPerMinute = try int("tpm_limit") }
        if has("max_parallel_requests") { limits.maxParallelRequests = try int("max_parallel_requests") }
        if has("max_budget") {
            limits.dailySpendUSD = nil
            limits.monthlySpendUSD = nil
            if let budget = try double("max_budget") {
                let period = try LiteLLMDuration.budgetLimit(budget, duration: string("budget_duration"))
                limits.dailySpendUSD = period.dailySpendUSD
                limits.monthlySpendUSD = period.monthlySpendUSD
            }
        } else if has("budget_duration") {
            throw APIError(400, "budget_duration: give max_budget with it", code: "invalid_body")
        }
        return limits == LimitsDocument() ? nil : limits
    }

    /// Metadata: Sluice keeps strings; other JSON values are refused by name.
    func metadata(_ name: String) throws -> [String: String]? {
        guard let value = value(name), value != .null else { return nil }
        guard let object = value.objectValue else {
            throw APIError(400, "\(name): expected an object", code: "invalid_body")
        }
        var metadata: [String: String] = [:]
        for (field, entry) in object {
            guard let text = entry.stringValue else {
                throw APIError(400, "\(name).\(field): Sluice keeps metadata values as strings", code: "invalid_body")
            }
            metadata[field] = text
        }
        return metadata
    }
}

/// What LiteLLM fields have no equivalent here, and why.
enum LiteLLMUnsupported {
    static let fields: [String: String] = [
        "soft_budget": "a soft budget is a percentage of a budget here (limits.soft_budget_percent)",
        "aliases": "model aliases are the catalog's (model_group_alias)",
        "config": "per-key provider config would let a key change where calls go",
        "permissions": "a key's permissions are its team's and its own model lists and limits",
        "spend": "spend is counted by the agents, never set",
        "guardrails": "guardrails are attached in settings.guardrails by scope",
        "allowed_cache_controls": "cache controls pass through to the provider as the caller sends them",
        "model_max_budget": "budgets are per key, project, team and service, not per model on a key",
        "model_rpm_limit": "limits per model are on the model (models.limits)",
        "model_tpm_limit": "limits per model are on the model (models.limits)",
        "members_with_roles": "Sluice has no users or roles; keys belong to teams",
        "members": "Sluice has no users or roles; keys belong to teams",
        "organization_id": "Sluice has no organizations",
        "tags": "use metadata",
        "blocked": "use /key/block and /key/unblock",
        "alias": "Sluice keeps no second name: a team, key or end user is named by its id",
        "budget_id": "limits belong to what they limit (rpm_limit, tpm_limit, max_budget), not to a shared budget",
        "allowed_model_region": "regions are chosen by the catalog's deployments (api_base), not per end user",
        "default_model": "callers name their model; other names for one are router_settings.model_group_alias",
    ]
}

/// `30s`, `30m`, `30h`, `30d`, `1mo` (30 days) as seconds.
enum LiteLLMDuration {
    static func seconds(_ text: String, at field: String) throws -> Int64 {
        let units: [(suffix: String, seconds: Int64)] = [
            ("mo", 30 * 86_400), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400),
        ]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let count = Int64(text.dropLast(suffix.count)), count > 0, count <= 100_000 { return count * scale }
        }
        throw APIError(
            400, "\(field): \(Identifier.quoted(text)) is not a duration (30s, 30m, 30h, 30d, 1mo)",
            code: "invalid_duration")
    }

    /// A Sluice budget as LiteLLM shows it: the monthly one (`1mo`), else the daily one (`1d`).
    static func budget(of limits: LimitsDocument?) -> (maxBudget: Double?, duration: String?) {
        if let monthly = limits?.monthlySpendUSD { return (monthly, "1mo") }
        if let daily = limits?.dailySpendUSD { return (daily, "1d") }
        return (nil, nil)
    }

    /// `budget_duration` as the Sluice budget it is: a day or a month, nothing else.
    static func budgetLimit(_ budget: Double, duration: String?) throws -> LimitsDocument {
        do throws(WireError) {
            return try LiteLLMBudget.limits(budget, duration: duration)
        } catch {
            throw APIError(400, error.message, code: "unsupported_budget")
        }
    }
}

/// `/key/generate` and `/key/update` fields, as Sluice's key.
struct LiteLLMKeyFields: Sendable {
    static let generate: Set<String> = [
        "key_alias", "team_id", "models", "rpm_limit", "tpm_limit", "max_budget", "budget_duration",
        "max_parallel_requests", "metadata", "duration", "user_id", "key", "project",
    ]
    static let update: Set<String> = generate

    var alias: String?
    var team: String?
    var project: String?
    var models: [String]?
    var modelsGiven = false
    var metadata: [String: String]?
    var limits: LimitsDocument?
    var limitFields: LiteLLMBody?
    var duration: String?
    var userID: String?
    var durationGiven = false
    /// A secret brought along from LiteLLM, instead of a new one.
    var secret: String?

    /// A LiteLLM key's secret as it may be kept: `sk-` and 20 to 256 characters of letters,
    /// digits, `-` and `_`; never the admin token.
    static func importable(_ secret: String, adminToken: Secret) throws -> String {
        let bytes = Array(secret.utf8)
        guard secret.hasPrefix("sk-"), (20...256).contains(bytes.count),
            bytes.allSatisfy({
                (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0)
                    || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
            })
        else {
            throw APIError(
                400, "key: a key brought from LiteLLM is sk- and 20 to 256 letters, digits, - or _",
                code: "invalid_key")
        }
        guard secret != adminToken.reveal() else {
            throw APIError(400, "key: the master key cannot be a virtual key", code: "invalid_key")
        }
        return secret
    }

    init(team: String?) { self.team = team }

    init(_ body: LiteLLMBody) {
        alias = body.string("key_alias")
        team = body.string("team_id")
        project = body.string("project")
        modelsGiven = body.has("models")
        models = body.strings("models")
        metadata = try? body.metadata("metadata")
        limitFields = body
        duration = body.string("duration")
        durationGiven = body.has("duration")
        userID = body.string("user_id")
    }

    /// Applies what was given to `key`; LiteLLM's empty model list means every model.
    func apply(to key: inout KeyDocument) throws {
        if let body = limitFields {
            if body.has("metadata") { _ = try body.metadata("metadata") }
            if body.has("team_id"), let team, team != key.team {
                throw APIError(400, "team_id: a key's team does not change", code: "immutable")
            }
            if body.has("project"), project != key.project {
                throw APIError(400, "project: a key's project does not change", code: "immutable")
            }
            if body.has("key_alias"), let alias, alias != key.id {
                throw APIError(400, "key_alias: a key's id does not change", code: "immutable")
            }
            if modelsGiven { key.allowedModels = (models ?? []).isEmpty ? nil : models }
            key.limits = try body.limits(applyingTo: key.limits)
            if durationGiven {
                key.expiresAt = try duration.map {
                    Int64(Date().timeIntervalSince1970) + (try LiteLLMDuration.seconds($0, at: "duration"))
                }
            }
        } else if let models {
            key.allowedModels = models.isEmpty ? nil : models
        }
        if let limits { key.limits = limits }
        for (field, value) in metadata ?? [:] { key.metadata[field] = value }
        if let userID { key.metadata["user_id"] = userID }
    }
}

/// `/team/new` and `/team/update` fields, as Sluice's team.
struct LiteLLMTeamFields: Sendable {
    static let known: Set<String> = [
        "team_id", "team_alias", "models", "rpm_limit", "tpm_limit", "max_budget", "budget_duration",
        "max_parallel_requests", "metadata",
    ]
    let body: LiteLLMBody

    init(_ body: LiteLLMBody) { self.body = body }

    func apply(to team: inout TeamDocument) throws {
        if body.has("metadata") {
            throw APIError(
                400, "metadata: Sluice teams carry no metadata; put it on their keys", code: "unsupported_field")
        }
        if body.has("models") {
            let models = body.strings("models") ?? []
            team.allowedModels = models.isEmpty ? nil : models
        }
        team.limits = try body.limits(applyingTo: team.limits)
    }
}

/// The seed's `/manage/proxy_key` body.
enum ProxyKeyFields {
    static let known: Set<String> = ["team", "project", "allowed_models", "metadata", "limits"]

    /// `limits {requests_per_minute, tokens_per_minute, monthly_spend_usd}` (and the other
    /// Sluice limits), strictly.
    static func limits(_ body: LiteLLMBody) throws -> LimitsDocument? {
        guard let value = body.value("limits"), value != .null else { return nil }
        do {
            return try WireCoding.decodeStrict(LimitsDocument.self, from: Data(value.bytes))
        } catch let error as DecodingError {
            throw APIError(400, "limits.\(WireCoding.describe(error))", code: "invalid_body")
        }
    }
}

struct LiteLLMKeyView: Encodable, Sendable {
    var key: String?
    var keyAlias: String
    var keyName: String?
    var teamID: String
    var project: String?
    var models: [String]
    var rpmLimit: Int?
    var tpmLimit: Int?
    var maxParallelRequests: Int?
    var maxBudget: Double?
    var budgetDuration: String?
    var metadata: [String: String]
    var expires: Int64?
    var blocked: Bool

    init(_ key: KeyDocument, secret: String? = nil) {
        self.key = secret
        keyAlias = key.id
        keyName = key.prefix
        teamID = key.team
        project = key.project
        models = key.allowedModels ?? []
        rpmLimit = key.limits?.requestsPerMinute
        tpmLimit = key.limits?.tokensPerMinute
        maxParallelRequests = key.limits?.maxParallelRequests
        (maxBudget, budgetDuration) = LiteLLMDuration.budget(of: key.limits)
        metadata = key.metadata
        expires = key.expiresAt
        blocked = key.revoked
    }

    enum CodingKeys: String, CodingKey {
        case key
        case keyAlias = "key_alias"
        case keyName = "key_name"
        case teamID = "team_id"
        case project, models
        case rpmLimit = "rpm_limit"
        case tpmLimit = "tpm_limit"
        case maxParallelRequests = "max_parallel_requests"
        case maxBudget = "max_budget"
        case budgetDuration = "budget_duration"
        case metadata, expires, blocked
    }
}

struct LiteLLMKeyInfo: Encodable, Sendable {
    var key: String
    var info: LiteLLMKeyView
}

struct LiteLLMKeyList: Encodable, Sendable {
    var keys: [String]
    var totalCount: Int
    var currentPage: Int
    var totalPages: Int

    enum CodingKeys: String, CodingKey {
        case keys
        case totalCount = "total_count"
        case currentPage = "current_page"
        case totalPages = "total_pages"
    }
}

struct LiteLLMTeamView: Encodable, Sendable {
    var teamID: String
    var teamAlias: String
    var models: [String]
    var rpmLimit: Int?
    var tpmLimit: Int?
    var maxBudget: Double?
    var budgetDuration: String?

    init(_ team: TeamDocument) {
        teamID = team.name
        teamAlias = team.name
        models = team.allowedModels ?? []
        rpmLimit = team.limits?.requestsPerMinute
        tpmLimit = team.limits?.tokensPerMinute
        (maxBudget, budgetDuration) = LiteLLMDuration.budget(of: team.limits)
    }

    enum CodingKeys: String, CodingKey {
        case teamID = "team_id"
        case teamAlias = "team_alias"
        case models
        case rpmLimit = "rpm_limit"
        case tpmLimit = "tpm_limit"
        case maxBudget = "max_budget"
        case budgetDuration = "budget_duration"
    }
}

struct LiteLLMTeamInfo: Encodable, Sendable {
    var teamID: String
    var teamInfo: LiteLLMTeamView
    var keys: [String]

    enum CodingKeys: String, CodingKey {
        case teamID = "team_id"
        case teamInfo = "team_info"
        case keys
    }
}

/// The answer to `/manage/proxy_key`: the secret once at creation, then the key's settings.
struct ProxyKeyView: Encodable, Sendable {
    var key: String?
    var id: String
    var team: String
    var project: String?
    var allowedModels: [String]?
    var metadata: [String: String]
    var limits: LimitsDocument?

    init(_ key: KeyDocument, secret: String?) {
        self.key = secret
        id = key.id
        team = key.team
        project = key.project
        allowedModels = key.allowedModels
        metadata = key.metadata
        limits = key.limits
    }

    enum CodingKeys: String, CodingKey {
        case key, id, team, project
        case allowedModels = "allowed_models"
        case metadata, limits
    }
}
