import ArgumentParser
import Foundation
import SluiceWire
import Yams

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Print the control plane's policy as an apply file: teams, projects, services, models, end users and"
            + " settings.",
        discussion: """
            Keys are left out (their secrets are never in files). The output round-trips: \
            sluice export > policy.yaml; sluice apply -f policy.yaml --dry-run shows no changes.
            """)
    @OptionGroup var connection: Connection

    func run() async throws {
        try await perform {
            let client = try connection.client()
            func fetch<Document: Decodable>(_ path: String, as type: Document.Type) async throws -> Document {
                try WireCoding.decoder.decode(Document.self, from: try await client.send("GET", path))
            }
            let file = PolicyFile(
                teams: try await fetch("/v1/admin/teams", as: [TeamDocument].self),
                projects: try await fetch("/v1/admin/projects", as: [ProjectDocument].self),
                services: try await fetch("/v1/admin/services", as: [ServiceDocument].self),
                models: try await fetch("/v1/admin/models", as: [ModelDocument].self),
                endUsers: try await fetch("/v1/admin/end-users", as: [EndUserDocument].self),
                settings: try await fetch("/v1/admin/settings", as: SettingsDocument.self))
            let encoder = YAMLEncoder()
            encoder.options.sortKeys = true
            // Yams writes doubles with 17 significant digits (2.5000000000000002e-06); prices
            // read better, and round-trip the same, as the shortest plain decimal.
            guard let node = try Yams.compose(yaml: try encoder.encode(file)) else { return }
            print("# sluice export: apply with `sluice apply -f FILE`; keys are managed with `sluice keys`.")
            print(try Yams.serialize(node: Self.plainFloats(node), sortKeys: true), terminator: "")
        }
    }

    static func plainFloats(_ node: Node) -> Node {
        switch node {
        case .scalar(let scalar) where node.tag == Tag(.float):
            guard let value = Double(scalar.string), value.isFinite else { return node }
            return Node(plainDecimal(value))
        case .mapping(let mapping):
            return .mapping(Node.Mapping(mapping.map { ($0.key, plainFloats($0.value)) }))
        case .sequence(let sequence):
            return .sequence(Node.Sequence(sequence.map(plainFloats)))
        default:
            return node
        }
    }

    /// The shortest decimal that reads back as `value`, without an exponent and with a
    /// point (YAML needs one to read a float): `0.0000025`, `10.5`, `1.0`.
    static func plainDecimal(_ value: Double) -> String {
        let shortest = "\(value)"
        guard let exponentIndex = shortest.firstIndex(where: { $0 == "e" || $0 == "E" }),
            let exponent = Int(shortest[shortest.index(after: exponentIndex)...])
        else {
            return shortest.contains(".") ? shortest : shortest + ".0"
        }
        var mantissa = String(shortest[..<exponentIndex])
        let negative = mantissa.hasPrefix("-")
        if negative { mantissa.removeFirst() }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        let whole = String(parts[0])
        let fraction = parts.count > 1 ? String(parts[1]) : ""
        let digits = whole + fraction
        let point = whole.count + exponent
        var text: String
        if point <= 0 {
            text = "0." + String(repeating: "0", count: -point) + digits
        } else if point >= digits.count {
            text = digits + String(repeating: "0", count: point - digits.count) + ".0"
        } else {
            text = String(digits.prefix(point)) + "." + String(digits.dropFirst(point))
        }
        while text.hasSuffix("0"), !text.hasSuffix(".0") { text.removeLast() }
        return (negative ? "-" : "") + text
    }
}
