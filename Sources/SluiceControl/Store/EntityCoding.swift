import Foundation
import SluiceWire

/// Entities are stored as their wire documents' JSON: the same bytes the bundle carries.
enum EntityCoding {
    static func encode(_ entity: Entity) throws -> String {
        let encoder = WireCoding.encoder
        let data: Data
        switch entity {
        case .team(let document): data = try encoder.encode(document)
        case .project(let document): data = try encoder.encode(document)
        case .service(let document): data = try encoder.encode(document)
        case .model(let document): data = try encoder.encode(document)
        case .key(let document): data = try encoder.encode(document)
        case .endUser(let document): data = try encoder.encode(document)
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func decode(_ kind: EntityKind, _ body: String) throws -> Entity {
        let decoder = WireCoding.decoder
        let data = Data(body.utf8)
        switch kind {
        case .team: return .team(try decoder.decode(TeamDocument.self, from: data))
        case .project: return .project(try decoder.decode(ProjectDocument.self, from: data))
        case .service: return .service(try decoder.decode(ServiceDocument.self, from: data))
        case .model: return .model(try decoder.decode(ModelDocument.self, from: data))
        case .key: return .key(try decoder.decode(KeyDocument.self, from: data))
        case .endUser: return .endUser(try decoder.decode(EndUserDocument.self, from: data))
        }
    }

    static func encodeSettings(_ settings: SettingsDocument) throws -> String {
        String(decoding: try WireCoding.encoder.encode(settings), as: UTF8.self)
    }

    static func decodeSettings(_ body: String) throws -> SettingsDocument {
        try WireCoding.decoder.decode(SettingsDocument.self, from: Data(body.utf8))
    }
}

/// The references an entity must find, and what may not be deleted while referred to.
enum References {
    /// (kind, name) pairs that must exist for `entity` to be stored.
    static func required(by entity: Entity) -> [(EntityKind, String)] {
        var required: [(EntityKind, String)] = []
        if let team = entity.team { required.append((.team, team)) }
        if let project = entity.project { required.append((.project, project)) }
        return required
    }
}
