/// The rollup query both stores share: plain SQL that SQLite and PostgreSQL both accept.
/// Dimensions come from a closed enum, never from caller text, so nothing caller-supplied
/// is spliced into the statement.
enum UsageSQL {
    static func select(_ query: UsageQuery) -> (sql: String, arguments: [Int64]) {
        let columns: [(UsageQuery.Dimension, String)] = query.groupBy.map { dimension in
            switch dimension {
            case .team: (dimension, "team")
            case .project: (dimension, "project")
            case .service: (dimension, "service")
            case .key: (dimension, "key_id")
            case .model: (dimension, "model")
            case .day: (dimension, "(start - start % 86400)")
            }
        }
        // Day grouping reads the daily cells when the range is whole days; otherwise hourly.
        let wholeDays = query.from % 86_400 == 0 && query.to % 86_400 == 0
        let granularity = wholeDays ? "day" : "hour"
        let selected = columns.map { "\($0.1) AS g_\($0.0.rawValue)" }
        let grouped = columns.map(\.1)
        var sql = "SELECT " + (selected + [
            "SUM(requests) AS requests", "SUM(prompt_tokens) AS prompt_tokens",
            "SUM(completion_tokens) AS completion_tokens", "SUM(cost_pico) AS cost_pico",
        ]).joined(separator: ", ")
        sql += " FROM usage_rollups WHERE granularity = '\(granularity)' AND start >= ? AND start < ?"
        if !grouped.isEmpty { sql += " GROUP BY " + grouped.joined(separator: ", ") }
        // Without it, an ungrouped sum over no cells is one row of NULLs.
        sql += " HAVING COUNT(*) > 0"
        sql += " ORDER BY cost_pico DESC" + (grouped.isEmpty ? "" : ", " + grouped.joined(separator: ", "))
        var arguments = [query.from, query.to]
        if let limit = query.limit {
            sql += " LIMIT ?"
            arguments.append(Int64(limit))
        }
        return (sql, arguments)
    }
}
