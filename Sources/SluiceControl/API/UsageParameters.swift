import Foundation
import Hummingbird
import SluicePolicy
import SluiceWire

/// `GET /v1/admin/usage?group_by=team,model&from=…&to=…&limit=N` (Unix seconds; `since=30d`
/// is shorthand for from = now − 30 days).
enum UsageParameters {
    static func query(_ request: Request) throws -> UsageQuery {
        let parameters = request.uri.queryParameters
        var groupBy: [UsageQuery.Dimension] = []
        if let text = parameters.get("group_by"), !text.isEmpty {
            for part in text.split(separator: ",") {
                guard let dimension = UsageQuery.Dimension(rawValue: String(part)) else {
                    throw APIError(400, "group_by: \(part.prefix(32)) is not one of team, project, service, key, model, day", code: "invalid_group_by")
                }
                groupBy.append(dimension)
            }
        }
        let now = Int64(Date().timeIntervalSince1970)
        var from = Int64(parameters.get("from") ?? "") ?? 0
        if let since = parameters.get("since") {
            // Rollups are hourly: the window starts at the hour that holds `since`.
            from = try Since.start(since, now: now)
            from -= from % 3600
        }
        let to = Int64(parameters.get("to") ?? "") ?? (now - now % 3600 + 3600)
        guard from < to else { throw APIError(400, "from must be before to", code: "invalid_range") }
        var limit: Int?
        if let text = parameters.get("limit") {
            guard let value = Int(text), (1...10_000).contains(value) else { throw APIError(400, "limit must be 1 to 10000", code: "invalid_limit") }
            limit = value
        }
        return UsageQuery(groupBy: groupBy, from: from, to: to, limit: limit)
    }
}
/// `since=` in the admin API: a duration back from now (`30m`, `12h`, `7d`) or a UTC date
/// (`2026-11-01`), as Unix seconds.
enum Since {
    static func start(_ text: String, now: Int64) throws -> Int64 {
        let units: [Character: Int64] = ["m": 60, "h": 3600, "d": 86_400]
        if let unit = text.last.flatMap({ units[$0] }), let amount = Int64(text.dropLast()), (1...100_000).contains(amount) {
            return now - amount * unit
        }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        if parts.count == 3, let year = parts[0], let month = parts[1], let day = parts[2], text.utf8.count == 10,
           (1970...9999).contains(year), (1...12).contains(month), (1...31).contains(day) {
            var components = DateComponents()
            (components.year, components.month, components.day) = (year, month, day)
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            if let date = calendar.date(from: components), calendar.component(.day, from: date) == day {
                return Int64(date.timeIntervalSince1970)
            }
        }
        throw APIError(400, "since must be a duration (30m, 12h, 7d) or a UTC date (2026-11-01), not \(Identifier.quoted(String(text.prefix(32))))",
                       code: "invalid_since")
    }
}
