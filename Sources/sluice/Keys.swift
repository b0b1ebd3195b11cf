import ArgumentParser
import Foundation

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Virtual keys: create, list, change, rotate, revoke.",
        subcommands: [
            Create.self, List.self, Get.self, Update.self, Rotate.self, Revoke.self, Delete.self, ImportLiteLLM.self,
        ])
    static let columns = ["id", "prefix", "team", "project", "allowed_models", "limits", "metadata", "revoked"]

    struct KeyFields: ParsableArguments {
        @Option(help: "The key's team.") var team: String?
        @Option(help: "The key's project (in that team).") var project: String?
        @Option(help: "Comma-separated aliases the key may use.") var models: String?
        @Option(help: "Comma-separated aliases the key may not use.") var deny: String?
        @Option(help: "Metadata as key=value; repeat for more.") var meta: [String] = []
        @Option(help: "Expiry as Unix seconds.") var expiresAt: Int64?
        @OptionGroup var limits: LimitOptions

        func body() throws -> [String: Any] {
            var body: [String: Any] = [:]
            if let team { body["team"] = team }
            if let project { body["project"] = project }
            // `--models ''` means "no allowlist" (any model), never "no model at all".
            if let allowed = list(models) { body["allowed_models"] = allowed.isEmpty ? NSNull() : allowed }
            if let denied = list(deny) { body["denied_models"] = denied }
            if !meta.isEmpty {
                var metadata: [String: String] = [:]
                for pair in meta {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2 else { throw ValidationError("--meta takes key=value, not \(pair)") }
                    metadata[String(parts[0])] = String(parts[1])
                }
                body["metadata"] = metadata
            }
            if let expiresAt { body["expires_at"] = expiresAt }
            if let limits = limits.json { body["limits"] = limits }
            return body
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a key. The key is printed once: store it now.")
        @Option(help: "An id for the key (one is made up otherwise).") var id: String?
        @Flag(help: "Create the team and project the key names if they do not exist yet.") var createMissing = false
        @OptionGroup var fields: KeyFields
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                var body = try fields.body()
                guard body["team"] != nil else { throw ValidationError("--team is required") }
                if let id { body["id"] = id }
                if body["allowed_models"] is NSNull { body["allowed_models"] = nil }
                if createMissing { body["create_missing"] = true }
                let data = try await connection.client().send("POST", "/v1/admin/keys", body: try jsonBody(body))
                try Keys.showIssued(data, format: try connection.format())
            }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/keys"), format: try connection.format(),
                    columns: Keys.columns)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        @Argument var id: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try Printer.show(
                    try await connection.client().send("GET", "/v1/admin/keys/\(pathSegment(id))"),
                    format: try connection.format(), columns: Keys.columns)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: """
                Change only the settings given; every agent applies it, the secret stays the same. \
                --meta merges by key; --unset-meta removes one; --clear removes a setting.
                """)
        @Argument var id: String
        @OptionGroup var fields: KeyFields
        @Option(help: "Remove a metadata key; repeat for more.") var unsetMeta: [String] = []
        @OptionGroup var clear: ClearOptions
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                var body = try fields.body()
                if !unsetMeta.isEmpty {
                    var metadata = body["metadata"] as? [String: Any] ?? [:]
                    for name in unsetMeta { metadata[name] = NSNull() }
                    body["metadata"] = metadata
                }
                try clear.apply(to: &body, fields: Keys.clearable)
                guard !body.isEmpty else { throw ValidationError("nothing to change: give a setting or --clear") }
                let data = try await connection.client().send(
                    "PATCH", "/v1/admin/keys/\(pathSegment(id))", body: try jsonBody(body))
                try Printer.show(data, format: try connection.format(), columns: Keys.columns)
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a new secret for the same key id; the old one works for --grace.")
        @Argument var id: String
        @Option(help: "How long the old secret keeps working, e.g. 3600s, 30m, 24h (default: not at all).") var grace:
            String?
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                var seconds: Int64 = 0
                if let grace {
                    let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
                    guard let unit = grace.last.flatMap({ units[$0] }), let amount = Int64(grace.dropLast()) else {
                        throw ValidationError("--grace takes a duration like 3600s, 30m, 24h or 2d")
                    }
                    seconds = amount * unit
                }
                let data = try await connection.client().send(
                    "POST", "/v1/admin/keys/\(pathSegment(id))/rotate",
                    body: try jsonBody(["grace_period_seconds": seconds]))
                try Keys.showIssued(data, format: try connection.format())
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        @Argument var id: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                let data = try await connection.client().send(
                    "POST", "/v1/admin/keys/\(pathSegment(id))/revoke", body: try jsonBody([:]))
                try Printer.show(data, format: try connection.format(), columns: Keys.columns)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a key: its secrets stop working, and its team can then be deleted.")
        @Argument var id: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await perform {
                try await connection.client().send("DELETE", "/v1/admin/keys/\(pathSegment(id))")
                print("deleted key \(id)")
            }
        }
    }

    /// `--clear NAME` → the field it sets to null.
    static let clearable = ClearOptions.common.merging(["project": "project", "expires-at": "expires_at"]) { $1 }

    /// Moves keys from a LiteLLM proxy: each entry of a JSON export (a list, or `{"keys": […]}`,
    /// as LiteLLM's `/key/list?return_full_object=true` or a database dump gives them) goes
    /// to `/key/generate` with its alias, team, models, limits, budget and metadata. An entry
    /// that holds its secret (`key` or `token` starting `sk-`) keeps it, so callers change
    /// nothing; LiteLLM itself stores only hashes, and for those a new secret is issued and
    /// printed once.
    struct ImportLiteLLM: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-litellm",
            abstract: "Import keys from a LiteLLM export, keeping the secrets it holds and issuing the rest anew.")
        @Argument(help: "The JSON export.") var file: String
        @Option(help: "The team for entries without team_id (created if missing).") var defaultTeam = "default"
        @OptionGroup var connection: Connection

        static let copied = [
            "key_alias", "team_id", "models", "rpm_limit", "tpm_limit", "max_parallel_requests", "max_budget",
            "budget_duration",
        ]

        func run() async throws {
            try await perform {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw ValidationError("\(file) cannot be read")
                }
                let parsed = try JSONSerialization.jsonObject(with: data)
                guard
                    let entries = (parsed as? [[String: Any]])
                        ?? ((parsed as? [String: Any])?["keys"] as? [[String: Any]])
                else { throw ValidationError("\(file) is not a list of keys, nor {\"keys\": [...]}") }
                let client = try connection.client()
                var rows: [[String: Any]] = []
                for (index, entry) in entries.enumerated() {
                    let name = entry["key_alias"] as? String ?? "#\(index)"
                    var body: [String: Any] = [:]
                    for field in Self.copied { if let value = entry[field], !(value is NSNull) { body[field] = value } }
                    if body["team_id"] == nil { body["team_id"] = defaultTeam }
                    if let metadata = entry["metadata"] as? [String: Any] {
                        // Sluice keeps metadata as strings: other values are carried as their JSON text.
                        body["metadata"] = metadata.mapValues { value -> String in
                            if let text = value as? String { return text }
                            let json = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed])
                            return json.map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
                        }
                    }
                    if let expires = entry["expires"] as? String, !expires.isEmpty {
                        guard let date = ISO8601DateFormatter().date(from: expires) else {
                            rows.append(["key_alias": name, "result": "skipped: expires \(expires) is not a date"])
                            continue
                        }
                        let left = Int(date.timeIntervalSinceNow)
                        guard left > 0 else {
                            rows.append(["key_alias": name, "result": "skipped: expired"])
                            continue
                        }
                        body["duration"] = "\(left)s"
                    }
                    let secret = [entry["key"], entry["token"]].compactMap { $0 as? String }.first {
                        $0.hasPrefix("sk-")
                    }
                    if let secret { body["key"] = secret }
                    do {
                        let answer = try await client.send("POST", "/key/generate", body: try jsonBody(body))
                        let issued = try JSONSerialization.jsonObject(with: answer) as? [String: Any] ?? [:]
                        let result =
                            secret != nil
                            ? "imported, keeps its secret"
                            : "new secret (LiteLLM keeps only a hash): \(issued["key"] as? String ?? "?")"
                        rows.append(["key_alias": issued["key_alias"] as? String ?? name, "result": result])
                    } catch {
                        rows.append(["key_alias": name, "result": "refused: \(error)"])
                    }
                }
                try Printer.show(
                    try JSONSerialization.data(withJSONObject: rows), format: try connection.format(),
                    columns: ["key_alias", "result"])
                if rows.contains(where: { ($0["result"] as? String)?.hasPrefix("new secret") == true }) {
                    print("(new secrets are shown once: hand them to their owners now)")
                }
            }
        }
    }

    static func showIssued(_ data: Data, format: OutputFormat) throws {
        if format == .json {
            try Printer.show(data, format: .json, columns: [])
            return
        }
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        print("key: \(object["key"] as? String ?? "?")")
        print("(shown once: store it now; only its hash is kept)")
        let details = try JSONSerialization.data(withJSONObject: object["details"] ?? [:])
        try Printer.show(details, format: .table, columns: columns)
    }
}

struct Usage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage", abstract: "Spend and tokens, grouped, from the control plane's rollups.")
    @Option(
        help: "Comma-separated: team, project, service, key, model, day, hour, or meta.NAME (a key metadata field).")
    var by: String = "team"
    @Option(help: "How far back: 30m, 12h, 7d, or a UTC date such as 2026-11-01.") var since: String = "30d"
    @Option(help: "Only the top N groups by spend.") var top: Int?
    @OptionGroup var connection: Connection

    func run() async throws {
        try await perform {
            var path =
                "/v1/admin/usage?group_by="
                + by.split(separator: ",").map { pathSegment(String($0)) }.joined(separator: ",")
                + "&since=\(pathSegment(since))"
            if let top { path += "&limit=\(top)" }
            let data = try await connection.client().send("GET", path)
            if try connection.format() == .json {
                try Printer.show(data, format: .json, columns: [])
                return
            }
            let rows = (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
            let dimensions = by.split(separator: ",").map(String.init)
            Printer.table(
                rows.map { row in
                    let group = row["group"] as? [String: Any] ?? [:]
                    let picos = (row["cost_pico_usd"] as? Int) ?? 0
                    // Refusals by reason, most first: "budget_exceeded=3 rate_limited=1".
                    let denials = ((row["denials"] as? [String: Int]) ?? [:]).sorted {
                        ($1.value, $0.key) < ($0.value, $1.key)
                    }
                    return dimensions.map { Printer.text(group[$0]).isEmpty ? "-" : Printer.text(group[$0]) }
                        + [
                            Printer.text(row["requests"]), Printer.text(row["prompt_tokens"]),
                            Printer.text(row["cached_tokens"] ?? 0), Printer.text(row["completion_tokens"]),
                            String(format: "%.6f", Double(picos) / 1e12),
                            denials.isEmpty ? "-" : denials.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
                        ]
                }, headers: dimensions + ["requests", "tokens_in", "cached_in", "tokens_out", "cost_usd", "denied"])
        }
    }
}
