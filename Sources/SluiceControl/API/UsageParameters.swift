import Foundation
import Hummingbird
import SluicePolicy
import SluiceWire

/// `GET /v1/admin/usage?group_by=team,model&from=…&to=…&limit=N` (Unix seconds; `since=30d`
/// is shorthand for from = now − 30 days). `group_by` also takes `meta.NAME`: the value of a
/// key's metadata field NAME (`""` for calls by keys without it, or without a key).
enum UsageParameters {
    /// Rows for `request`: the rollups, with key metadata groups folded from per-key rows.
    static func answer(_ request: Request, store: any Store) async throws -> [UsageRow] {
        let (query, metadata) = try parse(request)
        guard !metadata.isEmpty else { return try await store.usage(query) }
        var byKey = query
        if !byKey.groupBy.contains(.key) { byKey.groupBy.append(.key) }
        byKey.limit = nil
        var keys: [String: [String: String]] = [:]
        for case .key(let key) in try await store.entities(.key) { keys[key.id] = key.metadata }
        return fold(
            try await store.usage(byKey), metadata: metadata, keys: keys, keepKey: query.groupBy.contains(.key),
            limit: query.limit)
    }

    /// Regroups per-key rows by metadata fields, summing usage and refusals; most spend first.
    static func fold(
        _ rows: [UsageRow], metadata: [String], keys: [String: [String: String]], keepKey: Bool,
        limit: Int?
    ) -> [UsageRow] {
        var folded: [[String: String]: UsageRow] = [:]
        for row in rows {
            var group = row.group
            let key = group["key"] ?? ""
            if !keepKey { group["key"] = nil }
            for name in metadata { group["meta." + name] = keys[key]?[name] ?? "" }
            var sum =
                folded[group]
                ?? UsageRow(group: group, requests: 0, promptTokens: 0, completionTokens: 0, costPicoUSD: 0)
            sum.requests += row.requests
            sum.promptTokens += row.promptTokens
            sum.completionTokens += row.completionTokens
            sum.cachedPromptTokens += row.cachedPromptTokens
            sum.cacheCreationTokens += row.cacheCreationTokens
            sum.costPicoUSD += row.costPicoUSD
            sum.denials.merge(row.denials, uniquingKeysWith: +)
            sum.denialRules.merge(row.denialRules, uniquingKeysWith: +)
            folded[group] = sum
        }
        let sorted = folded.values.sorted { left, right in
            left.costPicoUSD != right.costPicoUSD
                ? left.costPicoUSD > right.costPicoUSD
                : left.group.sorted(by: <).description < right.group.sorted(by: <).description
        }
        return limit.map { Array(sorted.prefix($0)) } ?? sorted
    }

    /// The rollup query, and the key metadata fields to group by besides.
    static func parse(_ request: Request) throws -> (UsageQuery, metadata: [String]) {
        let parameters = request.uri.queryParameters
        var groupBy: [UsageQuery.Dimension] = []
        var metadata: [String] = []
        if let text = parameters.get("group_by"), !text.isEmpty {
            for part in text.split(separator: ",") {
                if part.hasPrefix("meta.") {
                    let name = String(part.dropFirst(5))
                    guard (1...64).contains(name.utf8.count), !metadata.contains(name) else {
                        throw APIError(
                            400, "group_by: meta. takes a metadata field of 1 to 64 bytes, once",
                            code: "invalid_group_by")
                    }
                    metadata.append(name)
                    continue
                }
                guard let dimension = UsageQuery.Dimension(rawValue: String(part)) else {
                    throw APIError(
                        400,
                        "group_by: \(Identifier.quoted(String(part.prefix(32))))"
                            + " is not one of team, project, service, key,"
                            + " model, day, hour or meta.NAME",
                        code: "invalid_group_by")
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
            guard let value = Int(text), (1...10_000).contains(value) else {
                throw APIError(400, "limit must be 1 to 10000", code: "invalid_limit")
            }
            limit = value
        }
        return (UsageQuery(groupBy: groupBy, from: from, to: to, limit: limit), metadata)
    }
}
/// `since=` in the admin API: a duration back from now (`30m`, `12h`, `7d`) or a UTC date
/// (`2026-11-01`), as Unix seconds.
enum Since {
    static func start(_ text: String, now: Int64) throws -> Int64 {
        let units: [Character: Int64] = ["m": 60, "h": 3600, "d": 86_400]
        if let unit = text.last.flatMap({ units[$0] }), let amount = Int64(text.dropLast()),
            (1...100_000).contains(amount)
        {
            return now - amount * unit
        }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        if parts.count == 3, let year = parts[0], let month = parts[1], let day = parts[2], text.utf8.count == 10,
            (1970...9999).contains(year), (1...12).contains(month), (1...31).contains(day)
        {
            var components = DateComponents()
            (components.year, components.month, components.day) = (year, month, day)
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            if let date = calendar.date(from: components), calendar.component(.day, from: date) == day {
                return Int64(date.timeIntervalSince1970)
            }
        }
        throw APIError(
            400,
            "since must be a duration (30m, 12h, 7d) or a UTC date (2026-11-01),"
                + " not \(Identifier.quoted(String(text.prefix(32))))",
            code: "invalid_since")
    }
}
