import Foundation
import Hummingbird
import SluicePolicy
import SluiceWire

/// A key as the admin API shows it: id, display prefix and settings, never the secret or
/// its hash.
struct KeyView: Codable, Sendable {
    var id: String
    var prefix: String?
    var team: String
    var project: String?
    var metadata: [String: String]
    var allowedModels: [String]?
    var deniedModels: [String]
    var limits: LimitsDocument?
    var expiresAt: Int64?
    var revoked: Bool
    var rotationGraceEndsAt: Int64?
    var createdAt: Int64?

    init(_ key: KeyDocument) {
        id = key.id
        prefix = key.prefix
        team = key.team
        project = key.project
        metadata = key.metadata
        allowedModels = key.allowedModels
        deniedModels = key.deniedModels
        limits = key.limits
        expiresAt = key.expiresAt
        revoked = key.revoked
        rotationGraceEndsAt = key.previousHash == nil ? nil : key.previousHashExpiresAt
        createdAt = key.createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, prefix, team, project, metadata
        case allowedModels = "allowed_models"
        case deniedModels = "denied_models"
        case limits
        case
            expiresAt = "expires_at"
        case revoked
        case rotationGraceEndsAt = "rotation_grace_ends_at"
        case createdAt = "created_at"
    }
}

/// A field of a `PATCH` body: left out (unchanged), `null` (cleared) or a new value.
enum Patch<Value: Decodable & Sendable>: Sendable {
    case absent, clear
    case set(Value)

    static func decode<Key: CodingKey>(_ container: KeyedDecodingContainer<Key>, _ key: Key) throws -> Patch {
        guard container.contains(key) else { return .absent }
        if try container.decodeNil(forKey: key) { return .clear }
        return .set(try container.decode(Value.self, forKey: key))
    }

    /// The value after the patch.
    func applied(to current: Value?) -> Value? {
        switch self {
        case .absent: current
        case .clear: nil
        case .set(let value): value
        }
    }
}

/// Limits in a `PATCH` body: each limit given is set, each `null` is cleared, the rest stay.
struct LimitsPatch: Decodable, Sendable {
    var requestsPerMinute: Patch<Int> = .absent
    var tokensPerMinute: Patch<Int> = .absent
    var requestsPerDay: Patch<Int> = .absent
    var maxParallelRequests: Patch<Int> = .absent
    var dailySpendUSD: Patch<Double> = .absent
    var monthlySpendUSD: Patch<Double> = .absent
    var mode: Patch<String> = .absent
    var softBudgetPercent: Patch<Int> = .absent
    var spike: Patch<SpikeRuleDocument> = .absent

    typealias CodingKeys = LimitsDocument.CodingKeys

    init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        requestsPerMinute = try .decode(container, .requestsPerMinute)
        tokensPerMinute = try .decode(container, .tokensPerMinute)
        requestsPerDay = try .decode(container, .requestsPerDay)
        maxParallelRequests = try .decode(container, .maxParallelRequests)
        dailySpendUSD = try .decode(container, .dailySpendUSD)
        monthlySpendUSD = try .decode(container, .monthlySpendUSD)
        mode = try .decode(container, .mode)
        softBudgetPercent = try .decode(container, .softBudgetPercent)
        spike = try .decode(container, .spike)
    }

    /// The limits after the patch; nil when none is left.
    func applied(to current: LimitsDocument?) -> LimitsDocument? {
        let base = current ?? LimitsDocument()
        let result = LimitsDocument(
            requestsPerMinute: requestsPerMinute.applied(to: base.requestsPerMinute),
            tokensPerMinute: tokensPerMinute.applied(to: base.tokensPerMinute),
            requestsPerDay: requestsPerDay.applied(to: base.requestsPerDay),
            maxParallelRequests: maxParallelRequests.applied(to: base.maxParallelRequests),
            dailySpendUSD: dailySpendUSD.applied(to: base.dailySpendUSD),
            monthlySpendUSD: monthlySpendUSD.applied(to: base.monthlySpendUSD), mode: mode.applied(to: base.mode),
            softBudgetPercent: softBudgetPercent.applied(to: base.softBudgetPercent),
            spike: spike.applied(to: base.spike))
        return result == LimitsDocument() ? nil : result
    }
}

/// What a client sends to create a key. Unknown fields are refused.
struct KeyRequest: Decodable, Sendable {
    var id: String?
    var team: String?
    var project: String?
    var metadata: [String: String]?
    var allowedModels: [String]?
    var deniedModels: [String]?
    var limits: LimitsDocument?
    var expiresAt: Int64?
    /// Create the team (and project) the key names when they do not exist yet, as plain
    /// groupings with no rules of their own.
    var createMissing: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, team, project, metadata
        case allowedModels = "allowed_models"
        case deniedModels = "denied_models"
        case limits
        case expiresAt = "expires_at"
        case
            createMissing = "create_missing"
    }

    init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decodeIfPresent(String.self, forKey: .id)
        team = try container.decodeIfPresent(String.self, forKey: .team)
        project = try container.decodeIfPresent(String.self, forKey: .project)
        metadata = try container.decodeIfPresent([String: String].self, forKey: .metadata)
        allowedModels = try container.decodeIfPresent([String].self, forKey: .allowedModels)
        deniedModels = try container.decodeIfPresent([String].self, forKey: .deniedModels)
        limits = try container.decodeIfPresent(LimitsDocument.self, forKey: .limits)
        expiresAt = try container.decodeIfPresent(Int64.self, forKey: .expiresAt)
        createMissing = try container.decodeIfPresent(Bool.self, forKey: .createMissing)
    }
}

/// A key `PATCH`: only the fields given change. `null` clears a field (`project`,
/// `allowed_models` back to "any", `expires_at`, a single limit); `metadata` merges by
/// key, and a metadata key set to `null` is removed.
struct KeyPatch: Decodable, Sendable {
    var id: String?
    var team: Patch<String> = .absent
    var project: Patch<String> = .absent
    var metadata: [String: String?]?
    var allowedModels: Patch<[String]> = .absent
    var deniedModels: Patch<[String]> = .absent
    var limits: LimitsPatch?
    var clearLimits = false
    var expiresAt: Patch<Int64> = .absent

    typealias CodingKeys = KeyRequest.CodingKeys

    init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if container.contains(.createMissing) {
            throw DecodingError.dataCorruptedError(
                forKey: .createMissing, in: container, debugDescription: "only for creating a key")
        }
        id = try container.decodeIfPresent(String.self, forKey: .id)
        team = try .decode(container, .team)
        project = try .decode(container, .project)
        metadata = try container.decodeIfPresent([String: String?].self, forKey: .metadata)
        allowedModels = try .decode(container, .allowedModels)
        deniedModels = try .decode(container, .deniedModels)
        if container.contains(.limits), try container.decodeNil(forKey: .limits) {
            clearLimits = true
        } else {
            limits = try container.decodeIfPresent(LimitsPatch.self, forKey: .limits)
        }
        expiresAt = try .decode(container, .expiresAt)
    }

    func applied(to current: KeyDocument) throws -> KeyDocument {
        var key = current
        if case .clear = team { throw APIError(400, "team: a key always belongs to a team", code: "invalid_body") }
        key.team = team.applied(to: key.team) ?? key.team
        key.project = project.applied(to: key.project)
        for (field, value) in (metadata ?? [:]).sorted(by: { $0.key < $1.key }) {
            key.metadata[field] = value
        }
        key.allowedModels = allowedModels.applied(to: key.allowedModels)
        key.deniedModels = deniedModels.applied(to: key.deniedModels) ?? []
        key.limits = clearLimits ? nil : (limits.map { $0.applied(to: key.limits) } ?? key.limits)
        key.expiresAt = expiresAt.applied(to: key.expiresAt)
        return key
    }
}

struct RotateRequest: Codable, Sendable {
    /// How long the old secret keeps working, in seconds (0 by default, at most 30 days).
    var gracePeriodSeconds: Int64?

    enum CodingKeys: String, CodingKey { case gracePeriodSeconds = "grace_period_seconds" }
}

/// The one answer that carries a key: creation and rotation. It is never stored.
struct IssuedKey: Codable, Sendable {
    var key: String
    var details: KeyView
}

extension ControlAPI {
    func keyRoutes(_ group: RouteCollection<ControlContext>) {
        let store = self.store
        let audit = self.audit
        let hasher = self.keyHasher
        let gate = self.gate
        group.get("keys") { _, _ in try jsonResponse(try await store.entities(.key).map(Self.payload)) }
        group.get("keys/:id") { _, context in
            let id = try context.pathParameter("id")
            guard case .key(let key) = try await store.entity(.key, name: id) else {
                throw APIError(404, "no key \"\(id)\"", code: "not_found")
            }
            return try jsonResponse(KeyView(key))
        }
        group.post("keys") { request, context in
            let body = try await decode(KeyRequest.self, request, context)
            guard let team = body.team else { throw APIError(400, "team: missing field", code: "missing_team") }
            var generator = SystemRandomNumberGenerator()
            let secret = VirtualKey.generate(using: &generator)
            // The id is drawn separately: nothing of the secret may appear in listings or bundles.
            let id = body.id ?? "key_" + String(VirtualKey.generate(using: &generator).suffix(12)).lowercased()
            var key = KeyDocument(
                id: id, hash: hasher.hash(secret).encoded, team: team, project: body.project,
                metadata: body.metadata ?? [:], expiresAt: body.expiresAt, allowedModels: body.allowedModels,
                deniedModels: body.deniedModels ?? [], limits: body.limits)
            key.prefix = VirtualKey.displayPrefix(of: secret)
            key.createdAt = Int64(Date().timeIntervalSince1970)
            if body.createMissing == true {
                // Grammar first, so a bad key id creates no team on the way to being refused.
                let grammar = PolicyGate.grammar(.key(key))
                guard grammar.isEmpty else { throw PolicyGate.refusal(grammar, status: 400, code: "invalid_name") }
                try await Self.createMissing(team: team, project: body.project, store: store, gate: gate)
            }
            try await gate.put(.key(key), mode: .create, in: store)
            await audit.changed(request, "create", "key", id)
            return try jsonResponse(IssuedKey(key: secret, details: KeyView(key)), status: .created)
        }
        group.patch("keys/:id") { request, context in
            let id = try context.pathParameter("id")
            let body = try await readBody(request)
            let patch: KeyPatch
            do {
                patch = try WireCoding.decodeStrict(KeyPatch.self, from: body)
            } catch let error as DecodingError {
                throw APIError(
                    400, "the body is not a valid KeyPatch: \(WireCoding.describe(error))", code: "invalid_body")
            } catch {
                throw APIError(400, "the body is not valid JSON", code: "invalid_json")
            }
            if let newID = patch.id, newID != id {
                throw APIError(400, "a key's id cannot change", code: "id_immutable")
            }
            let stored = try await gate.edit(.key, id, in: store) { stored in
                guard case .key(let key) = stored else { preconditionFailure("an entity of another kind") }
                return .key(try patch.applied(to: key))
            }
            guard case .key(let key) = stored else { preconditionFailure("an entity of another kind") }
            await audit.changed(request, "patch", "key", id, fields: AdminAudit.fieldNames(body))
            return try jsonResponse(KeyView(key))
        }
        // Deleting a key removes it from bundles: its secrets stop working as revocation
        // would, and a team whose keys are all gone can be deleted.
        group.delete("keys/:id") { request, context in
            let id = try context.pathParameter("id")
            try await store.delete(.key, name: id)
            await audit.changed(request, "delete", "key", id)
            return Response(status: .noContent)
        }
        group.post("keys/:id/rotate") { request, context in
            let id = try context.pathParameter("id")
            let body = try await decode(RotateRequest.self, request, context)
            let grace = body.gracePeriodSeconds ?? 0
            guard (0...30 * 86_400).contains(grace) else {
                throw APIError(400, "grace_period_seconds must be 0 to 2592000", code: "invalid_grace")
            }
            let (key, secret) = try await Self.rotateKey(
                id, graceSeconds: grace, in: store, hasher: hasher,
                revokedMessage: "key \"\(id)\" is revoked; create a new one")
            await audit.changed(request, "rotate", "key", id, fields: grace > 0 ? ["grace_period_seconds"] : [])
            return try jsonResponse(IssuedKey(key: secret, details: KeyView(key)))
        }
        group.post("keys/:id/revoke") { request, context in
            let id = try context.pathParameter("id")
            let key = try await Self.revokeKey(id, in: store)
            await audit.changed(request, "revoke", "key", id)
            return try jsonResponse(KeyView(key))
        }
    }

    /// Gives a key a new secret, the old one working `graceSeconds` longer; 409 with
    /// `revokedMessage` for a revoked key. Returns the key and its new secret (shown once).
    static func rotateKey(
        _ id: String, graceSeconds grace: Int64, in store: any Store, hasher: KeyHasher, revokedMessage: String
    ) async throws -> (KeyDocument, String) {
        var generator = SystemRandomNumberGenerator()
        let secret = VirtualKey.generate(using: &generator)
        let hash = hasher.hash(secret).encoded
        let now = Int64(Date().timeIntervalSince1970)
        // Read and written in one transaction: a rotation cannot undo a concurrent revocation.
        let key = try await changeKey(id, in: store) { key in
            guard !key.revoked else { throw APIError(409, revokedMessage, code: "key_revoked") }
            key.previousHash = grace > 0 ? key.hash : nil
            key.previousHashExpiresAt = grace > 0 ? now + grace : nil
            key.hash = hash
            key.prefix = VirtualKey.displayPrefix(of: secret)
        }
        return (key, secret)
    }

    /// Creates the team, then the project, a new key names, where they do not exist yet.
    static func createMissing(team: String, project: String?, store: any Store, gate: PolicyGate) async throws {
        if try await store.entity(.team, name: team) == nil {
            try await gate.put(.team(TeamDocument(name: team)), mode: .upsert, in: store)
        }
        if let project, try await store.entity(.project, name: project) == nil {
            try await gate.put(.project(ProjectDocument(name: project, team: team)), mode: .upsert, in: store)
        }
    }

    /// Reads a key, changes it with `edit` and stores it, with no other policy write in
    /// between. Returns what was stored; 404 when there is no such key.
    /// Revokes a key and drops its rotation grace: neither secret works any more.
    static func revokeKey(_ id: String, in store: any Store) async throws -> KeyDocument {
        try await changeKey(id, in: store) { key in
            key.revoked = true
            key.previousHash = nil
            key.previousHashExpiresAt = nil
        }
    }

    static func changeKey(
        _ id: String, in store: any Store, _ edit: @escaping @Sendable (inout KeyDocument) throws -> Void
    ) async throws -> KeyDocument {
        let write = try await store.change { snapshot in
            guard case .key(var key) = snapshot.entities.first(where: { $0.kind == .key && $0.name == id }) else {
                throw APIError(404, "no key \"\(id)\"", code: "not_found")
            }
            try edit(&key)
            return .put(.key(key), .update)
        }
        guard case .put(.key(let key), _) = write.change else { preconditionFailure("a key change stores a key") }
        return key
    }
}
