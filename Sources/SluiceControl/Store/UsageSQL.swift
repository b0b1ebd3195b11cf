import SluiceWire

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
                "CAST(SUM(cached_tokens) AS BIGINT) AS cached_tokens",
                "CAST(SUM(cache_creation_tokens) AS BIGINT) AS cache_creation_tokens",
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

    /// Adds refusals to the usage rows of their groups: by reason, and by rule from the cells
    /// kept as `rule:RULE`. A group refused every call has no usage row: it gets one of its
    /// own (zero usage), after the others, within the limit.
    static func attach(
        _ denials: [(group: [String: String], reason: String, count: Int64)], to rows: [UsageRow],
        limit: Int?
    ) -> [UsageRow] {
        var rows = rows
        var index = Dictionary(rows.enumerated().map { ($1.group, $0) }, uniquingKeysWith: { first, _ in first })
        for denial in denials.sorted(by: { $0.group.description < $1.group.description }) {
            let position: Int
            if let found = index[denial.group] {
                position = found
            } else if limit.map({ rows.count < $0 }) ?? true {
                position = rows.count
                index[denial.group] = position
                rows.append(
                    UsageRow(group: denial.group, requests: 0, promptTokens: 0, completionTokens: 0, costPicoUSD: 0))
            } else {
                continue
            }
            if denial.reason.hasPrefix(ruleMark) {
                rows[position].denialRules[String(denial.reason.dropFirst(ruleMark.count)), default: 0] += denial.count
            } else {
                rows[position].denials[denial.reason, default: 0] += denial.count
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
            case .hour: (dimension, "start")
            }
        }
    }

    /// Day grouping reads the daily cells when the range is whole days; otherwise hourly, as
    /// hour grouping always does.
    private static func granularity(_ query: UsageQuery) -> String {
        !query.groupBy.contains(.hour) && query.from % 86_400 == 0 && query.to % 86_400 == 0 ? "day" : "hour"
    }
}

/// How a refusal by rule is kept in the denial rollups' reason column, beside the reason
/// codes (which may not start with it): one table, one retention, one query for both.
let ruleMark = "rule:"

/// A batch's deltas summed into the rollup cells they add to (hourly and daily), in one
/// order: a store can write each cell once, and concurrent batches lock shared cells in the
/// same order, so they queue instead of deadlocking.
struct RollupCells {
    struct Cell: Hashable, Comparable {
        var granularity: String
        var start: Int64
        var team: String
        var project: String
        var service: String
        var keyID: String
        var model: String

        static func < (left: Cell, right: Cell) -> Bool {
            // Tuples compare up to six elements: the first four, then the rest.
            let (leftHead, rightHead) = (
                (left.granularity, left.start, left.team, left.project),
                (right.granularity, right.start, right.team, right.project)
            )
            if leftHead != rightHead { return leftHead < rightHead }
            return (left.service, left.keyID, left.model) < (right.service, right.keyID, right.model)
        }
    }

    struct Totals {
        var requests: Int64 = 0
        var promptTokens: Int64 = 0
        var completionTokens: Int64 = 0
        var costPicoUSD: Int64 = 0
        var cachedPromptTokens: Int64 = 0
        var cacheCreationTokens: Int64 = 0
    }

    /// Cells with usage to add, sorted.
    var usage: [(cell: Cell, totals: Totals)]
    /// Cells with refusals to add, by reason, sorted.
    var denials: [(cell: Cell, reason: String, count: Int64)]

    init(_ batch: UsageBatch) { self.init(deltas: batch.deltas) }

    /// The cells of several batches' deltas together: each cell once, their sums.
    init(deltas: some Sequence<UsageDelta>) {
        var usage: [Cell: Totals] = [:]
        var denials: [DenialCell: Int64] = [:]
        for delta in deltas {
            for (granularity, start) in [("hour", delta.hour), ("day", delta.hour - delta.hour % 86_400)] {
                let cell = Cell(
                    granularity: granularity, start: start, team: delta.team ?? "", project: delta.project ?? "",
                    service: delta.service, keyID: delta.keyID ?? "", model: delta.model)
                if delta.requests > 0 || delta.promptTokens > 0 || delta.completionTokens > 0 || delta.costPicoUSD > 0 {
                    usage[cell, default: Totals()].requests += delta.requests
                    usage[cell, default: Totals()].promptTokens += delta.promptTokens
                    usage[cell, default: Totals()].completionTokens += delta.completionTokens
                    usage[cell, default: Totals()].costPicoUSD += delta.costPicoUSD
                    usage[cell, default: Totals()].cachedPromptTokens += delta.cachedPromptTokens
                    usage[cell, default: Totals()].cacheCreationTokens += delta.cacheCreationTokens
                }
                for (reason, count) in delta.denials where count > 0 {
                    denials[DenialCell(cell: cell, reason: reason), default: 0] += count
                }
                for (rule, count) in delta.denialRules where count > 0 {
                    denials[DenialCell(cell: cell, reason: ruleMark + rule), default: 0] += count
                }
            }
        }
        self.usage = usage.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        self.denials = denials.sorted { ($0.key.cell, $0.key.reason) < ($1.key.cell, $1.key.reason) }
            .map { ($0.key.cell, $0.key.reason, $0.value) }
    }

    private struct DenialCell: Hashable {
        var cell: Cell
        var reason: String
    }
}

/// Which batches of a group are new, decided against each agent's mark as it stands and as
/// the batches before it in the group move it (an agent's retry may share a group with the
/// batch it repeats).
struct GroupMarks {
    struct Key: Hashable {
        var agentID: String
        var epoch: String
    }

    /// Each key's mark before the group.
    var stored: [Key: Int64]
    /// The answers, in the batches' order.
    private(set) var acks: [UsageAck] = []
    /// The batches to add to the rollups.
    private(set) var fresh: [UsageBatch] = []
    /// The keys whose mark rose, and to what.
    private(set) var raised: [Key: Int64] = [:]

    init(stored: [Key: Int64], batches: [UsageBatch]) {
        self.stored = stored
        for batch in batches {
            let key = Key(agentID: batch.agentID, epoch: batch.epoch)
            let mark = raised[key] ?? stored[key] ?? 0
            if batch.sequence <= mark {
                acks.append(
                    UsageAck(agentID: batch.agentID, epoch: batch.epoch, acknowledgedSequence: mark, duplicate: true))
                continue
            }
            raised[key] = batch.sequence
            fresh.append(batch)
            acks.append(
                UsageAck(
                    agentID: batch.agentID, epoch: batch.epoch, acknowledgedSequence: batch.sequence, duplicate: false))
        }
    }

    /// The raised marks in the keys' fixed order.
    var raisedInOrder: [(key: Key, sequence: Int64)] {
        raised.sorted { ($0.key.agentID, $0.key.epoch) < ($1.key.agentID, $1.key.epoch) }.map { ($0.key, $0.value) }
    }

    /// The distinct keys of `batches`, in a fixed order (locks are taken in it).
    static func keys(_ batches: [UsageBatch]) -> [Key] {
        Set(batches.map { Key(agentID: $0.agentID, epoch: $0.epoch) }).sorted {
            ($0.agentID, $0.epoch) < ($1.agentID, $1.epoch)
        }
    }
}
