import Foundation
import SluiceWire

/// JSON Merge Patch (RFC 7396) over the wire documents: a member given replaces the stored
/// one, `null` removes it (for optional fields: clears it), an object merges member by
/// member, and anything else (arrays included) is replaced whole. The result is decoded
/// strictly, so a patch can name no field the document does not have, and it goes through
/// the same checks as a full replacement.
enum MergePatch {
    /// `document` with `patch` applied. Throws 400 naming the field for a patch that is not
    /// a JSON object or whose result is not a valid `Document`.
    static func apply<Document: Codable>(_ patch: Data, to document: Document) throws -> Document {
        let patchObject: [String: Any]
        do {
            guard
                let object = try JSONSerialization.jsonObject(with: patch, options: [.fragmentsAllowed])
                    as? [String: Any]
            else {
                throw APIError(400, "a patch is a JSON object of the fields to change", code: "invalid_body")
            }
            patchObject = object
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(400, "the body is not valid JSON", code: "invalid_json")
        }
        let stored =
            try JSONSerialization.jsonObject(with: WireCoding.encoder.encode(document)) as? [String: Any] ?? [:]
        let merged = merge(patchObject, into: stored)
        let data = try JSONSerialization.data(withJSONObject: merged)
        do {
            return try WireCoding.decodeStrict(Document.self, from: data)
        } catch let error as DecodingError {
            let name = "\(Document.self)".replacingOccurrences(of: "Document", with: "").lowercased()
            throw APIError(
                400, "the \(name) after this patch is not valid: \(WireCoding.describe(error))", code: "invalid_body")
        }
    }

    static func merge(_ patch: [String: Any], into target: [String: Any]) -> [String: Any] {
        var result = target
        for (name, value) in patch {
            if value is NSNull {
                result[name] = nil
            } else if let object = value as? [String: Any] {
                result[name] = merge(object, into: result[name] as? [String: Any] ?? [:])
            } else {
                result[name] = value
            }
        }
        return result
    }
}
