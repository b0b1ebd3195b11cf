import ArgumentParser
import Foundation

struct Agents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents", abstract: "Agent tokens: issue, list, revoke.",
        subcommands: [Create.self, List.self, Revoke.self])
    static let columns = ["id", "service", "created_at"]

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: """
                Issue a token for an agent (printed once). With --service its bundles hold only what that \
                service can use, and it needs only those credentials. Issuing an id again replaces its token.
                """)
        @Argument(help: "The agent's id, e.g. shop/checkout/pod-1 or shop-checkout.") var id: String
        @Option(help: "The namespace/service the agent serves.") var service: String?
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                var body: [String: Any] = ["id": id]
                if let service { body["service"] = service }
                let data = try await connection.client().send("POST", "/v1/admin/agents", body: try jsonBody(body))
                if try connection.format() == .json {
                    try Printer.show(data, format: .json, columns: [])
                    return
                }
                let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
                print("token: \(object["token"] as? String ?? "?")")
                print("(shown once: give it to the agent as --agent-token-file; only its hash is kept)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/agents"), format: try connection.format(),
                    columns: Agents.columns)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke an agent's token: it can no longer fetch policy or report usage.")
        @Argument var id: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try await connection.client().send("DELETE", "/v1/admin/agents/\(pathSegment(id))")
                print("revoked agent \(id)")
            }
        }
    }
}
