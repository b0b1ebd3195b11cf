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
            guard since.hasSuffix("d") || since.hasSuffix("h"), let amount = Int64(since.dropLast()), amount > 0 else {
                throw APIError(400, "since must look like 30d or 12h", code: "invalid_since")
            }
            from = now - amount * (since.hasSuffix("d") ? 86_400 : 3600)
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