import ArgumentParser
import Foundation

struct EndUsers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "end-users",
        abstract: "End users: the `user` a request names, with limits of their own or blocked.",
        discussion: """
            Their limits hold in each agent (every agent enforces the whole limit); a block holds \
            everywhere. Callers naming no listed end user get settings.end_user_default_limits.
            """,
        subcommands: [Create.self, List.self, Get.self, Update.self, Delete.self])
    static let columns = ["name", "blocked", "limits"]
    /// `--clear NAME` for an end user: its limits, one by one or all.
    static let clearable = ClearOptions.common.filter { $0.value.hasPrefix("limits") }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an end user (or replace it with --replace).")
        @Argument var name: String
        @Flag(help: "Refuse every call naming this end user.") var blocked = false
        @Flag(help: "Replace an existing end user instead of failing.") var replace = false
        @OptionGroup var limits: LimitOptions
        @OptionGroup var connection: Connection

        func run() async throws {
            try await perform {
                var body: [String: Any] = ["name": name, "blocked": blocked]
                if let limits = limits.json { body["limits"] = limits }
                let data = try await connection.client().send(
                    replace ? "PUT" : "POST",
                    replace ? "/v1/admin/end-users/\(pathSegment(name))" : "/v1/admin/end-users",
                    body: try jsonBody(body))
                try Printer.show(data, format: try connection.format(), columns: EndUsers.columns)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Block, unblock, or change only the limits given (--clear removes one).")
        @Argument var name: String
        @Flag(help: "Refuse every call naming this end user.") var block = false
        @Flag(help: "Take a block back.") var unblock = false
        @OptionGroup var limits: LimitOptions
        @OptionGroup var clear: ClearOptions
        @OptionGroup var connection: Connection

        func validate() throws {
            if block && unblock { throw ValidationError("give --block or --unblock, not both") }
        }

        func run() async throws {
            try await perform {
                let fields: [String: Any] = block || unblock ? ["blocked": block] : [:]
                let body = try patchBody(
                    fields, models: nil, deny: nil, limits: limits, clear: clear, clearable: EndUsers.clearable)
                let data = try await connection.client().send(
                    "PATCH", "/v1/admin/end-users/\(pathSegment(name))", body: try jsonBody(body))
                try Printer.show(data, format: try connection.format(), columns: EndUsers.columns)
            }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/end-users"),
                    format: try connection.format(), columns: EndUsers.columns)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        @Argument var name: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/end-users/\(pathSegment(name))"),
                    format: try connection.format(), columns: EndUsers.columns)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        @Argument var name: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try await connection.client().send("DELETE", "/v1/admin/end-users/\(pathSegment(name))")
                print("deleted end user \(name)")
            }
        }
    }
}
