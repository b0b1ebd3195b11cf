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
        case id, prefix, team, project, metadata, allowedModels = "allowed_models", deniedModels = "denied_models", limits,
             expiresAt = "expires_at", revoked, rotationGraceEndsAt = "rotation_grace_ends_at", createdAt = "created_at"
    }
}

/// What a client sends to create or change a key. Every field of an update is optional:
/// what is absent stays as it was.
struct KeyRequest: Codable, Sendable {
    var id: String?
    var team: String?
    var project: String?
    var metadata: [String: String]?
    var allowedModels: [String]?
    var deniedModels: [String]?
    var limits: LimitsDocument?
    var expiresAt: Int64?

    enum CodingKeys: String, CodingKey {
        case id, team, project, metadata, allowedModels = "allowed_models", deniedModels = "denied_models", limits, expiresAt = "expires_at"
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
    func keyRoutes(_ group: RouterGroup<ControlContext>) {
        let store = self.store
        let publisher = self.publisher
        let hasher = self.keyHasher
        group.get("keys") { _, _ in try jsonResponse(try await store.entities(.key).map(Self.payload)) }
        group.get("keys/:id") { _, context in
            let id = try context.parameters.require("id")
            return try jsonResponse(KeyView(try await Self.key(id, in: store)))
        }
        group.post("keys") { request, context in
            let body = try await decode(KeyRequest.self, request, context)
            guard let team = body.team else { throw APIError(400, "team is required", code: "missing_team") }
            var generator = SystemRandomNumberGenerator()
            let secret = VirtualKey.generate(using: &generator)
            // The id is drawn separately: nothing of the secret may appear in listings or bundles.
            let id = body.id ?? "key_" + String(VirtualKey.generate(using: &generator).suffix(12))
            var key = KeyDocument(id: id, hash: hasher.hash(secret).encoded, team: team, project: body.project,
                                  metadata: body.metadata ?? [:], expiresAt: body.expiresAt, allowedModels: body.allowedModels,
                                  deniedModels: body.deniedModels ?? [], limits: body.limits)
            key.prefix = VirtualKey.displayPrefix(of: secret)
            key.createdAt = Int64(Date().timeIntervalSince1970)
            try Validation.check(.key(key))
            try await store.put(.key(key), mode: .create)
            publisher.policyChanged()
            return try jsonResponse(IssuedKey(key: secret, details: KeyView(key)), status: .created)
        }
        group.patch("keys/:id") { request, context in
            let id = try context.parameters.require("id")
            let body = try await decode(KeyRequest.self, request, context)
            if let newID = body.id, newID != id { throw APIError(400, "a key's id cannot change", code: "id_immutable") }
            var key = try await Self.key(id, in: store)
            if let team = body.team { key.team = team }
            if let project = body.project { key.project = project.isEmpty ? nil : project }
            if let metadata = body.metadata { key.metadata = metadata }
            if let allowed = body.allowedModels { key.allowedModels = allowed }
            if let denied = body.deniedModels { key.deniedModels = denied }
            if let limits = body.limits { key.limits = limits }
            if let expiresAt = body.expiresAt { key.expiresAt = expiresAt }
            try Validation.check(.key(key))
            try await store.put(.key(key), mode: .update)
            publisher.policyChanged()
            return try jsonResponse(KeyView(key))
        }
        group.post("keys/:id/rotate") { request, context in
            let id = try context.parameters.require("id")
            let body = try await decode(RotateRequest.self, request, context)
            let grace = body.gracePeriodSeconds ?? 0
            guard (0...30 * 86_400).contains(grace) else { throw APIError(400, "grace_period_seconds must be 0 to 2592000", code: "invalid_grace") }
            var key = try await Self.key(id, in: store)
            guard !key.revoked else { throw APIError(409, "key \"\(id)\" is revoked; create a new one", code: "key_revoked") }
            var generator = SystemRandomNumberGenerator()
            let secret = VirtualKey.generate(using: &generator)
            let now = Int64(Date().timeIntervalSince1970)
            key.previousHash = grace > 0 ? key.hash : nil
            key.previousHashExpiresAt = grace > 0 ? now + grace : nil
            key.hash = hasher.hash(secret).encoded
            key.prefix = VirtualKey.displayPrefix(of: secret)
            try await store.put(.key(key), mode: .update)
            publisher.policyChanged()
            return try jsonResponse(IssuedKey(key: secret, details: KeyView(key)))
        }
        group.post("keys/:id/revoke") { _, context in
            let id = try context.parameters.require("id")
            var key = try await Self.key(id, in: store)
            key.revoked = true
            key.previousHash = nil
            key.previousHashExpiresAt = nil
            try await store.put(.key(key), mode: .update)
            publisher.policyChanged()
            return try jsonResponse(KeyView(key))
        }
    }

    static func key(_ id: String, in store: any Store) async throws -> KeyDocument {
        guard case .key(let key) = try await store.entity(.key, name: id) else { throw APIError(404, "no key \"\(id)\"", code: "not_found") }
        return key
    }
}
