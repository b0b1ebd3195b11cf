import SluiceAPI
import SluicePolicy

/// Why a Kubernetes-side configuration file (injection, identity, a key set) was refused;
/// the message names the field.
public struct KubernetesConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The injection file's errors, by their earlier name.
public typealias InjectionConfigError = KubernetesConfigError

/// One JSON object of a configuration file, read strictly: a member not in `known` is an
/// error naming its path (with the closest known name), as is a value of the wrong type.
struct StrictFields {
    let members: [(key: String, value: JSONValue)]
    let path: String

    init(_ value: JSONValue, at path: String, known: [String]) throws(KubernetesConfigError) {
        guard let members = value.objectValue else {
            throw KubernetesConfigError("\(path.isEmpty ? "(top level)" : String(path.dropLast())): not an object")
        }
        for (key, _) in members where !known.contains(key) {
            let hint = Suggestion.closest(to: key, among: known).map { " (did you mean \($0)?)" } ?? ""
            throw KubernetesConfigError("\(path)\(Identifier.quoted(key)): unknown field\(hint)")
        }
        self.members = members
        self.path = path
    }

    /// A whole file as one JSON object; `what` names the file in the error.
    static func object(_ bytes: [UInt8], naming what: String) throws(KubernetesConfigError) -> JSONValue {
        do {
            return try JSONValue.parseObject(bytes)
        } catch {
            throw KubernetesConfigError("\(what) is not a JSON object: \(error)")
        }
    }

    func value(_ name: String) -> JSONValue? { members.first { $0.key == name }?.value }

    func string(_ name: String) throws(KubernetesConfigError) -> String? {
        guard let value = value(name) else { return nil }
        guard let text = value.stringValue else { throw KubernetesConfigError("\(path)\(name): expected a string") }
        return text
    }

    func int(_ name: String, in range: ClosedRange<Int>) throws(KubernetesConfigError) -> Int? {
        guard let value = value(name) else { return nil }
        guard let number = value.intValue, range.contains(number) else {
            throw KubernetesConfigError(
                "\(path)\(name): expected a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    func bool(_ name: String) throws(KubernetesConfigError) -> Bool? {
        guard let value = value(name) else { return nil }
        guard let flag = value.boolValue else {
            throw KubernetesConfigError("\(path)\(name): expected true or false")
        }
        return flag
    }
}
