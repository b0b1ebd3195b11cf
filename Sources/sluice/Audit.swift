import ArgumentParser
import Foundation

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Admin changes: who changed what, oldest first (names only, never a value).")
    @Option(help: "How far back: 30m, 12h, 7d, or a UTC date such as 2026-11-01.") var since: String = "1d"
    @Option(help: "At most this many changes.") var limit: Int = 1000
    @OptionGroup var connection: Connection

    func run() async throws {
        try await perform {
            let data = try await connection.client().send(
                "GET", "/v1/admin/audit?since=\(pathSegment(since))&limit=\(limit)")
            if try connection.format() == .json {
                try Printer.show(data, format: .json, columns: [])
                return
            }
            let rows = (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
            Printer.table(
                rows.map { row in
                    let at = Date(timeIntervalSince1970: Double(row["at"] as? Int ?? 0))
                    return [
                        Printer.timestamp(at), Printer.text(row["actor"]), Printer.text(row["action"]),
                        Printer.text(row["kind"]),
                        Printer.text(row["name"]), (row["fields"] as? [String] ?? []).joined(separator: ","),
                    ]
                }, headers: ["at", "actor", "action", "kind", "name", "fields"])
        }
    }
}
