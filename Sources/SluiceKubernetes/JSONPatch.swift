import Foundation
import SluiceAPI

/// RFC 6902 JSON Patch, the `add` operation: all the injector needs, and what a Kubernetes
/// API server applies from an AdmissionReview response.
public struct JSONPatchOperation: Sendable, Equatable {
    /// An RFC 6901 pointer; `/-` at the end of an array path appends.
    public var path: String
    /// The value added at ``path``.
    public var value: JSONValue

    public init(path: String, value: JSONValue) {
        self.path = path
        self.value = value
    }

    /// The operation as JSON: `{"op":"add","path":…,"value":…}`.
    public var json: JSONValue {
        .object([("op", .string("add")), ("path", .string(path)), ("value", value)])
    }

    /// `token` escaped for a JSON pointer (`~` → `~0`, `/` → `~1`).
    public static func escape(_ token: String) -> String {
        token.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }
}

/// Why a patch did not apply.
public struct JSONPatchError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension JSONValue {
    /// This document with `operations` applied in order, as an API server would.
    public func applying(_ operations: [JSONPatchOperation]) throws(JSONPatchError) -> JSONValue {
        var document = self
        for operation in operations {
            guard operation.path.hasPrefix("/") else {
                throw JSONPatchError(message: "\(operation.path): a pointer starts with /")
            }
            let tokens = operation.path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
                $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            }
            try document.add(operation.value, at: tokens[...], path: operation.path)
        }
        return document
    }

    private mutating func add(_ value: JSONValue, at tokens: ArraySlice<String>, path: String) throws(JSONPatchError) {
        guard let token = tokens.first else {
            self = value
            return
        }
        let last = tokens.count == 1
        switch self {
        case .object(var members):
            if let index = members.firstIndex(where: { $0.key == token }) {
                if last {
                    members[index].value = value
                } else {
                    try members[index].value.add(value, at: tokens.dropFirst(), path: path)
                }
            } else {
                guard last else { throw JSONPatchError(message: "\(path): no member \(token)") }
                members.append((token, value))
            }
            self = .object(members)
        case .array(var elements):
            let index = token == "-" ? elements.count : Int(token)
            guard let index, index >= 0, index <= elements.count, last || index < elements.count else {
                throw JSONPatchError(message: "\(path): no element \(token)")
            }
            if last {
                elements.insert(value, at: index)
            } else {
                try elements[index].add(value, at: tokens.dropFirst(), path: path)
            }
            self = .array(elements)
        default:
            throw JSONPatchError(message: "\(path): \(token) is inside a value that is not an object or array")
        }
    }
}
