/// The rollup query both stores share: plain SQL that SQLite and PostgreSQL both accept.
/// Dimensions come from a closed enum, never from caller text, so nothing caller-supplied
/// is spliced into the statement.
enum UsageSQL {
    /// - Parameter placeholder: the n-th (1-based) bind marker: `?` for SQLite, `$n` for PostgreSQL.
    static func select(_ query: UsageQuery, placeholder: (Int) -> String) -> (sql: String, arguments: [Int64]) {
        let columns = columns(query)
        let granularity = granularity(query)
        let selected = columns.map { "\($0.1) AS g_\($0.0.rawValue)" }
        let grouped = columns.map(\.1)
        var sql =
            "SELECT "
            + (selected + [
                // CAST: PostgreSQL sums BIGINT into NUMERIC; both engines accept this spelling.
                "CAST(SUM(requests) AS BIGINT) AS requests", "CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens",
                "CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens",
                "CAST(SUM(cost_pico) AS BIGINT) AS cost_pico",
            ]).joined(separator: ", ")
        sql +=
            " FROM usage_rollups WHERE granularity = '\(granularity)'"
            + " AND start >= \(placeholder(1)) AND start < \(placeholder(2))"
        if !grouped.isEmpty { sql += " GROUP BY " + grouped.joined(separator: ", ") }
        // Without it, an ungrouped sum over no cells is one row of NULLs.
        sql += " HAVING COUNT(*) > 0"
        sql += " ORDER BY cost_pico DESC" + (grouped.isEmpty ? "" : ", " + grouped.joined(separator: ", "))
        var arguments = [query.from, query.to]
        if let limit = query.limit {
            sql += " LIMIT \(placeholder(3))"
            arguments.append(Int64(limit))
        }
        return (sql, arguments)
    }

    /// Refusals by reason for the same groups and window, from the denial rollups: one row
    /// per group and reason (group columns, then `reason`, then `denied`).
    static func denials(_ query: UsageQuery, placeholder: (Int) -> String) -> (sql: String, arguments: [Int64]) {
        let columns = columns(query)
        let selected = columns.map { "\($0.1) AS g_\($0.0.rawValue)" }
        let grouped = columns.map(\.1) + ["reason"]
        var sql = "SELECT " + (selected + ["reason", "CAST(SUM(count) AS BIGINT) AS denied"]).joined(separator: ", ")
        sql += " FROM denial_rollups WHERE granularity = '\(granularity(query))'"
        sql += " AND start >= \(placeholder(1)) AND start < \(placeholder(2))"
        sql += " GROUP BY " + grouped.joined(separator: ", ")
        return (sql, [query.from, query.to])
    }

    /// Adds refusals to the usage rows of their groups. A group refused every call has no
    /// usage row: it gets one of its own (zero usage), after the others, within the limit.
    static func attach(
        _ denials: [(group: [String: String], reason: String, count: Int64)], to rows: [UsageRow],
        limit: Int?
    ) -> [UsageRow] {
        var rows = rows
        var index = Dictionary(rows.enumerated().map { ($1.group, $0) }, uniquingKeysWith: { first, _ in first })
        for denial in denials.sorted(by: { $0.group.description < $1.group.description }) {
            if let position = index[denial.group] {
                rows[position].denials[denial.reason, default: 0] += denial.count
            } else if limit.map({ rows.count < $0 }) ?? true {
                index[denial.group] = rows.count
                rows.append(
                    UsageRow(
                        group: denial.group, requests: 0, promptTokens: 0, completionTokens: 0, costPicoUSD: 0,
                        denials: [denial.reason: denial.count]))
            }
        }
        return rows
    }

    /// The grouped columns, by dimension. Dimensions are a closed enum: no caller text.
    private static func columns(_ query: UsageQuery) -> [(UsageQuery.Dimension, String)] {
        query.groupBy.map { dimension in
            switch dimension {
            case .team: (dimension, "team")
            case .project: (dimension, "project")
            case .service: (dimension, "service")
            case .key: (dimension, "key_id")
            case .model: (dimension, "model")
            case .day: (dimension, "(start - start % 86400)")
            }
        }
    }

    /// Day grouping reads the daily cells when the range is whole days; otherwise hourly.
    private static func granularity(_ query: UsageQuery) -> String {
        query.from % 86_400 == 0 && query.to % 86_400 == 0 ? "day" : "hour"
    }
}
