/// The rollup query both stores share: plain SQL that SQLite and PostgreSQL both accept.
/// Dimensions come from a closed enum, never from caller text, so nothing caller-supplied
/// is spliced into the statement.
enum UsageSQL {
    /// - Parameter placeholder: the n-th (1-based) bind marker: `?` for SQLite, `$n` for PostgreSQL.
    static func select(_ query: UsageQuery, placeholder: (Int) -> String) -> (sql: String, arguments: [Int64]) {
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
            // CAST: PostgreSQL sums BIGINT into NUMERIC; both engines accept this spelling.
            "CAST(SUM(requests) AS BIGINT) AS requests", "CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens",
            "CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens", "CAST(SUM(cost_pico) AS BIGINT) AS cost_pico",
        ]).joined(separator: ", ")
        sql += " FROM usage_rollups WHERE granularity = '\(granularity)' AND start >= \(placeholder(1)) AND start < \(placeholder(2))"
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
}
