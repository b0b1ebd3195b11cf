import Foundation
import SluicePolicy

extension CodingUserInfoKey {
    /// Set to `true` on a decoder to refuse unknown fields (admin input: API bodies, apply
    /// files). Bundles are decoded without it, so an agent one release behind a control
    /// plane still reads a bundle that carries a field it does not know yet.
    public static let sluiceStrictFields = CodingUserInfoKey(rawValue: "sluice.strictFields")!
}

extension WireCoding {
    /// A JSON decoder for admin input: a field the document does not have is an error that
    /// names its path, with a "did you mean" where one is close.
    public static var strictDecoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.userInfo[.sluiceStrictFields] = true
        return decoder
    }

    /// Where a decoding error happened and why, as `teams[0].limits.requests_per_dya: unknown field`.
    public static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context, adding key: (any CodingKey)? = nil) -> String {
            let keys = context.codingPath + (key.map { [$0] } ?? [])
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\(printable($0.stringValue))" }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : (text.isEmpty ? "(top level)" : text)
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context, adding: key)): missing field"
        case .typeMismatch(let type, let context): return "\(path(context)): expected \(describe(type))"
        case .valueNotFound(let type, let context): return "\(path(context)): expected \(describe(type)), found null"
        case .dataCorrupted(let context): return "\(path(context)): \(context.debugDescription)"
        @unknown default: return "malformed"
        }
    }

    /// A field name as it may appear in a message: plain names as they are, anything else
    /// quoted, cut and escaped, so a hostile field name cannot forge a log line.
    static func printable(_ name: String) -> String {
        let plain =
            !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy {
                (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x5F
                    || $0 == 0x2D
            }
        return plain ? name : Identifier.quoted(name)
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type: "a whole number"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        case is [String].Type: "a list of strings"
        default: String(describing: type).hasPrefix("Array") ? "a list" : "an object"
        }
    }
}

/// Any field name, to list what an object holds.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// On a strict decoder, refuses any field that is not one of `Keys`, naming its path and
    /// the closest known field. A no-op on a lenient decoder.
    public func refuseUnknownFields<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        guard userInfo[.sluiceStrictFields] as? Bool == true else { return }
        let known = keys.allCases.map(\.stringValue)
        let container = try container(keyedBy: AnyCodingKey.self)
        for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue })
        where !known.contains(key.stringValue) {
            let hint = Suggestion.hint(for: key.stringValue, among: known)
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: codingPath + [key],
                    debugDescription: "unknown field\(hint); known: \(known.sorted().joined(separator: ", "))"))
        }
    }
}

/// One step of a path into a JSON document: a field, or a position in a list.
private struct PathKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension WireCoding {
    /// Decodes admin input with ``strictDecoder``. Foundation reports a fractional or
    /// out-of-range number where a whole number belongs as "not valid JSON" with no path;
    /// this finds which number it was (by decoding again with each suspect made whole) and
    /// names its path instead.
    public static func decodeStrict<Value: Decodable>(_ type: Value.Type, from data: Data) throws -> Value {
        do {
            return try strictDecoder.decode(type, from: data)
        } catch let error as DecodingError {
            guard case .dataCorrupted(let context) = error, context.codingPath.isEmpty,
                let document = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            else { throw error }
            for path in wholeNumberSuspects(in: document, at: []).prefix(64) {
                guard
                    let repaired = try? JSONSerialization.data(
                        withJSONObject: replacing(path[...], in: document), options: [.fragmentsAllowed])
                else { continue }
                do {
                    _ = try strictDecoder.decode(type, from: repaired)
                } catch let again as DecodingError {
                    if case .dataCorrupted(let other) = again, other.codingPath.isEmpty { continue }
                }
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: path.map { $0.intValue.map(PathKey.init(intValue:)) ?? $0 },
                        debugDescription: "expected a whole number from \(Int64.min) to \(Int64.max)"))
            }
            throw error
        }
    }

    /// Paths to the numbers no whole-number field could hold, in document order.
    private static func wholeNumberSuspects(in value: Any, at path: [PathKey]) -> [[PathKey]] {
        if let object = value as? [String: Any] {
            return object.keys.sorted().flatMap {
                wholeNumberSuspects(in: object[$0]!, at: path + [PathKey(stringValue: $0)])
            }
        }
        if let list = value as? [Any] {
            return list.indices.flatMap { wholeNumberSuspects(in: list[$0], at: path + [PathKey(intValue: $0)]) }
        }
        if let number = value as? NSNumber, !(value is Bool) {
            let type = String(cString: number.objCType)
            if type == "d" || type == "f" || number.doubleValue.magnitude >= 9.2e18 { return [path] }
        }
        return []
    }

    /// `document` with the number at `path` replaced by 0.
    private static func replacing(_ path: ArraySlice<PathKey>, in value: Any) -> Any {
        guard let step = path.first else { return 0 }
        if var object = value as? [String: Any], let inner = object[step.stringValue] {
            object[step.stringValue] = replacing(path.dropFirst(), in: inner)
            return object
        }
        if var list = value as? [Any], let index = step.intValue, list.indices.contains(index) {
            list[index] = replacing(path.dropFirst(), in: list[index])
            return list
        }
        return value
    }
}
