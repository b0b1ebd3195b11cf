import ArgumentParser
import Foundation

struct Settings: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settings", abstract: "Fleet settings: time zone, budgets, router, leases.",
        subcommands: [Get.self, Set.self])

    struct Get: AsyncParsableCommand {
        @OptionGroup var connection: Connection
        func run() async throws {
            // Settings are one nested object: JSON shows it whole, whatever --output says.
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/settings"), format: .json, columns: [])
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change only the settings named.",
            discussion: """
                Each change is FIELD=VALUE, with dots for nested fields. A VALUE that is JSON (a number, true, \
                ["a","b"]) is used as such, anything else as a string; FIELD= clears the field.
                  sluice settings set time_zone=Europe/Berlin soft_budget_percent=80 router.num_retries=2
                """)
        @Argument(help: "FIELD=VALUE changes.") var changes: [String]
        @OptionGroup var connection: Connection

        func run() async throws {
            try await perform {
                let patch = try Self.patch(changes)
                let data = try await connection.client().send("PATCH", "/v1/admin/settings", body: try jsonBody(patch))
                try Printer.show(data, format: .json, columns: [])
            }
        }

        /// The merge patch for `FIELD=VALUE` changes.
        static func patch(_ changes: [String]) throws -> [String: Any] {
            guard !changes.isEmpty else { throw ValidationError("name at least one FIELD=VALUE") }
            var patch: [String: Any] = [:]
            for change in changes {
                let parts = change.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty else {
                    throw ValidationError("\(change): a change is FIELD=VALUE")
                }
                let text = String(parts[1])
                let value: Any =
                    text.isEmpty
                    ? NSNull()
                    : (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) ?? text
                set(value, at: parts[0].split(separator: ".").map(String.init), in: &patch)
            }
            return patch
        }

        private static func set(_ value: Any, at path: [String], in object: inout [String: Any]) {
            guard let first = path.first else { return }
            if path.count == 1 {
                object[first] = value
                return
            }
            var child = object[first] as? [String: Any] ?? [:]
            set(value, at: Array(path.dropFirst()), in: &child)
            object[first] = child
        }
    }
}
