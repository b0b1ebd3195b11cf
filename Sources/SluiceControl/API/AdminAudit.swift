import Foundation
import Hummingbird
import Logging

/// What every admin write does once it is stored: wake waiting agents, log one structured
/// line and append the change to the audit trail (`GET /v1/admin/audit`, `sluice audit`).
/// Only names are recorded: entity ids and the fields a patch named, never a value.
struct AdminAudit: Sendable {
    let store: any Store
    let publisher: PolicyPublisher
    let logger: Logger

    /// Records a write that is already stored. A failure to append to the trail is logged,
    /// not returned: the change itself has happened and the admin must hear that it did.
    /// `actor` overrides the `Sluice-Actor` header (the dashboard names itself).
    func changed(
        _ request: Request, _ action: String, _ kind: String, _ name: String, fields: [String] = [],
        policy: Bool = true, actor: String? = nil
    ) async {
        if policy { publisher.policyChanged() }
        let change = AdminChange(
            at: Int64(Date().timeIntervalSince1970), actor: actor ?? Self.actor(request), action: action, kind: kind,
            name: name, fields: fields)
        logger.info(
            "admin change",
            metadata: [
                "actor": "\(change.actor)", "action": "\(action)", "kind": "\(kind)", "name": "\(name)",
                "fields": "\(fields.joined(separator: ","))",
            ])
        do {
            try await store.recordAdminChange(change)
        } catch {
            logger.error(
                "cannot append to the admin audit trail",
                metadata: [
                    "action": "\(action)", "kind": "\(kind)", "name": "\(name)",
                    "error": "\(error)",
                ])
        }
    }

    /// The `Sluice-Actor` header when it is a plain name (up to 64 bytes of
    /// `A-Z a-z 0-9 . _ @ + -`), else `admin`: one token is shared, so this is what the
    /// client says, kept only as a hint.
    static func actor(_ request: Request) -> String {
        guard let value = request.headers[.init("sluice-actor")!] else { return "admin" }
        let bytes = Array(value.utf8)
        let plain =
            (1...64).contains(bytes.count)
            && bytes.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || Array("._@+-".utf8).contains(byte)
            }
        return plain ? value : "admin"
    }

    /// The top-level member names of a JSON object body, sorted: what a patch changed.
    static func fieldNames(_ body: Data) -> [String] {
        ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]).map { $0.keys.sorted() } ?? []
    }
}
