import SluicePolicy
import SluiceWire

/// What each dashboard page shows, built from the same store queries the admin API answers
/// with (``Store/usage(_:)``, ``Store/entities(_:)``, ``Store/agents()``,
/// ``Store/adminChanges(since:limit:)``, and ``BudgetLedger`` as the budget watcher reads
/// it), so a figure on a page and the API's answer cannot disagree. The templates render
/// these values and escape every one of them.
struct DashboardPages: Sendable {
    let store: any Store
    let activity: AgentActivity

    /// A row of a usage table.
    struct UsageLine: Sendable {
        var group: String
        var spend: String
        var pico: Int64
        var requests: Int64
        var promptTokens: Int64
        var completionTokens: Int64
    }

    struct SpendPage: Sendable {
        var by: String
        var dimensions: [Choice]
        var metrics: [Choice]
        var chart: String
        var rows: [UsageLine]
        var total: String
    }

    /// An option of a `<select>`.
    struct Choice: Sendable {
        var value: String
        var selected: Bool
    }

    static let spendDimensions: [UsageQuery.Dimension] = [.team, .service, .project, .key, .model]

    /// Spend (or requests) over time, stacked by one dimension: the top eight groups by
    /// spend and the rest as "other".
    func spend(_ parameters: [String: String], range: DashboardRange) async throws -> SpendPage {
        let by = UsageQuery.Dimension(rawValue: parameters["by"] ?? "team") ?? .team
        guard Self.spendDimensions.contains(by) else { throw DashboardError(400, "by must be one of the dimensions") }
        let metric = parameters["metric"] ?? "spend"
        guard metric == "spend" || metric == "requests" else {
            throw DashboardError(400, "metric must be spend or requests")
        }
        let rows = try await store.usage(UsageQuery(groupBy: [by, range.step], from: range.from, to: range.to))
        var totals: [String: UsageRow] = [:]
        for row in rows {
            let name = row.group[by.rawValue] ?? ""
            let empty = UsageRow(group: [:], requests: 0, promptTokens: 0, completionTokens: 0, costPicoUSD: 0)
            totals[name, default: empty].add(row)
        }
        let ranked = totals.sorted { ($1.value.costPicoUSD, $0.key) < ($0.value.costPicoUSD, $1.key) }
        let chart = Self.stacked(
            rows, ranked: ranked.map(\.key), range: range,
            format: metric == "spend" ? { String(format: "$%.2f", $0) } : Self.count,
            title: "\(metric == "spend" ? "Spend" : "Requests") by \(by.rawValue)"
        ) { row in
            [(row.group[by.rawValue] ?? "", metric == "spend" ? Double(row.costPicoUSD) / 1e12 : Double(row.requests))]
        }
        let total = ranked.reduce(Int64(0)) { $0 + $1.value.costPicoUSD }
        return SpendPage(
            by: by.rawValue, dimensions: Self.spendDimensions.map { Choice(value: $0.rawValue, selected: $0 == by) },
            metrics: ["spend", "requests"].map { Choice(value: $0, selected: $0 == metric) }, chart: chart,
            rows: ranked.map { Self.line($0.key, $0.value) }, total: dashboardUSD(total))
    }

    struct TopPage: Sendable {
        var keys: [UsageLine]
        var services: [UsageLine]
        var teams: [UsageLine]
    }

    /// The ten keys, services and teams that spent most in the range.
    func top(range: DashboardRange) async throws -> TopPage {
        func top(_ dimension: UsageQuery.Dimension) async throws -> [UsageLine] {
            try await store.usage(UsageQuery(groupBy: [dimension], from: range.from, to: range.to, limit: 10))
                .filter { $0.requests > 0 || $0.costPicoUSD > 0 }
                .map { Self.line($0.group[dimension.rawValue] ?? "", $0) }
        }
        return TopPage(keys: try await top(.key), services: try await top(.service), teams: try await top(.team))
    }

    struct BudgetLine: Sendable {
        var kind: String
        var name: String
        var window: String
        var mode: String
        var budget: String
        var spent: String
        var pico: Int64
        var percent: Int
        var barWidth: Int
        var state: String
        var projection: String
        var burnDown: String
    }

    /// Every budget in its current window: spent, a burn-down, and when it runs out at the
    /// rate spent so far.
    func budgets(now: Int64) async throws -> [BudgetLine] {
        let ledger = try await BudgetLedger.read(store, now: now)
        var lines: [BudgetLine] = []
        var spendByStep: [String: [String: [Int64: Int64]]] = [:]
        for standing in ledger.standings {
            let daily = standing.limit == .dailySpend
            let step: UsageQuery.Dimension = daily ? .hour : .day
            let stepSeconds: Int64 = daily ? 3600 : 86_400
            let start = standing.windowStart - standing.windowStart % stepSeconds
            let cacheKey = "\(standing.scope.dimension.rawValue)/\(step.rawValue)/\(start)"
            if spendByStep[cacheKey] == nil {
                var cells: [String: [Int64: Int64]] = [:]
                let rows = try await store.usage(
                    UsageQuery(groupBy: [standing.scope.dimension, step], from: start, to: standing.windowEnd))
                for row in rows {
                    guard let at = row.group[step.rawValue].flatMap({ Int64($0) }) else { continue }
                    cells[row.group[standing.scope.dimension.rawValue] ?? "", default: [:]][at, default: 0] +=
                        row.costPicoUSD
                }
                spendByStep[cacheKey] = cells
            }
            let cells = spendByStep[cacheKey]?[standing.scope.name] ?? [:]
            let buckets = Array(stride(from: start, to: standing.windowEnd, by: Int(stepSeconds)))
            var remaining: [Double] = []
            var left = Double(standing.budgetPicoUSD)
            for bucket in buckets where bucket <= now {
                left -= Double(cells[bucket] ?? 0)
                remaining.append(left)
            }
            let elapsed = max(1, now - standing.windowStart)
            let projection: String
            if standing.isSpent {
                projection = "spent"
            } else if standing.spentPicoUSD == 0 {
                projection = "no spend yet"
            } else {
                let left = Double(standing.budgetPicoUSD - standing.spentPicoUSD)
                let runsOut = now + Int64(left / (Double(standing.spentPicoUSD) / Double(elapsed)))
                projection =
                    runsOut >= standing.windowEnd
                    ? "lasts the window" : "runs out " + DashboardRange.format(time: runsOut)
            }
            let state =
                standing.isSpent
                ? (standing.scope.mode == .alert ? "over (alert only)" : "exhausted")
                : (standing.softPercent.map { standing.percent >= $0 } ?? false ? "past soft limit" : "ok")
            lines.append(
                BudgetLine(
                    kind: standing.scope.kind, name: standing.scope.name, window: daily ? "daily" : "monthly",
                    mode: standing.scope.mode.rawValue, budget: dashboardUSD(standing.budgetPicoUSD),
                    spent: dashboardUSD(standing.spentPicoUSD), pico: standing.spentPicoUSD,
                    percent: standing.percent, barWidth: min(100, standing.percent), state: state,
                    projection: projection,
                    burnDown: SVGChart.burnDown(
                        remaining: remaining, buckets: buckets.count, budget: Double(standing.budgetPicoUSD),
                        title: "\(standing.scope.kind) \(standing.scope.name): budget left")))
        }
        return lines.sorted { ($1.percent, $0.kind, $0.name) < ($0.percent, $1.kind, $1.name) }
    }

    struct DenialLine: Sendable {
        var group: String
        var reason: String
        var count: Int64
    }

    struct DenialsPage: Sendable {
        var chart: String
        var dimensions: [Choice]
        var byReason: [DenialLine]
        var byRule: [DenialLine]
        var byTeam: [DenialLine]
        var byService: [DenialLine]
        var total: Int64
    }

    /// Refused calls over time by reason or by rule, and by team and by service.
    func denials(_ parameters: [String: String], range: DashboardRange) async throws -> DenialsPage {
        let by = parameters["by"] ?? "reason"
        guard by == "reason" || by == "rule" else { throw DashboardError(400, "by must be reason or rule") }
        let overTime = try await store.usage(UsageQuery(groupBy: [range.step], from: range.from, to: range.to))
        func counts(_ row: UsageRow) -> [String: Int64] { by == "rule" ? row.denialRules : row.denials }
        var reasons: [String: Int64] = [:]
        var rules: [String: Int64] = [:]
        for row in overTime {
            for (reason, count) in row.denials { reasons[reason, default: 0] += count }
            for (rule, count) in row.denialRules { rules[rule, default: 0] += count }
        }
        func rank(_ counts: [String: Int64]) -> [(key: String, value: Int64)] {
            counts.sorted { ($1.value, $0.key) < ($0.value, $1.key) }
        }
        func grouped(_ dimension: UsageQuery.Dimension) async throws -> [DenialLine] {
            try await store.usage(UsageQuery(groupBy: [dimension], from: range.from, to: range.to))
                .flatMap { row in
                    row.denials.map {
                        DenialLine(
                            group: Self.display(row.group[dimension.rawValue] ?? ""), reason: $0.key, count: $0.value)
                    }
                }
                .sorted { ($1.count, $0.group, $0.reason) < ($0.count, $1.group, $1.reason) }
        }
        return DenialsPage(
            chart: Self.stacked(
                overTime, ranked: rank(by == "rule" ? rules : reasons).map(\.key), range: range, format: Self.count,
                title: "Refused calls by \(by)"
            ) { row in counts(row).map { ($0.key, Double($0.value)) } },
            dimensions: ["reason", "rule"].map { Choice(value: $0, selected: $0 == by) },
            byReason: rank(reasons).map { DenialLine(group: "", reason: $0.key, count: $0.value) },
            byRule: rank(rules).map { DenialLine(group: "", reason: $0.key, count: $0.value) },
            byTeam: try await grouped(.team), byService: try await grouped(.service),
            total: reasons.values.reduce(0, +))
    }

    struct AgentLine: Sendable {
        var id: String
        var service: String
        var registered: String
        var policy: String
        var behind: Bool
        var policyAge: String
        var lastFlush: String
        var backlog: String
        var shares: [String]
    }

    struct AgentsPage: Sendable {
        var currentVersion: Int64
        var agents: [AgentLine]
    }

    /// Registered agents and every agent this replica heard from (service-account agents
    /// are never registered): the policy version each holds, its last flush, its spool
    /// backlog and its lease shares.
    func agents(now: Int64) async throws -> AgentsPage {
        let current = try await store.policyVersion()
        let registered = Dictionary(
            try await store.agents().map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let seen = activity.snapshot()
        let ids = Set(registered.keys).union(seen.keys).sorted()
        let lines = ids.map { id -> AgentLine in
            let record = registered[id]
            let heard = seen[id]
            return AgentLine(
                id: id, service: heard?.service ?? record?.service ?? "(any)",
                registered: record.map { DashboardRange.format(date: $0.createdAt) } ?? "service account",
                policy: heard?.policyVersion.map { "v\($0)" } ?? "—",
                behind: heard?.policyVersion.map { $0 < current } ?? false,
                policyAge: heard?.policyAt.map { dashboardAge(now - $0) + " ago" } ?? "never",
                lastFlush: heard?.usageAt.map { dashboardAge(now - $0) + " ago" } ?? "never",
                backlog: heard?.spoolBacklog.map { String($0) } ?? "—",
                shares: (heard?.grants ?? []).map(Self.share))
        }
        return AgentsPage(currentVersion: current, agents: lines)
    }

    struct KeyLine: Sendable {
        var id: String
        var prefix: String
        var team: String
        var project: String
        var metadata: [Field]
        var limits: String
        var expires: String
        var revoked: Bool
        var lastUsed: String
    }

    /// A name and a value.
    struct Field: Sendable {
        var name: String
        var value: String
    }

    /// Every key: never its secret or hash, only what `GET /v1/admin/keys` shows, and the
    /// last hour (within two days) or day (within 32) it was used.
    func keys(now: Int64) async throws -> [KeyLine] {
        let hourStart = now - now % 3600 - 47 * 3600
        let dayStart = now - now % 86_400 - 31 * 86_400
        var lastUsed: [String: String] = [:]
        let days = try await store.usage(UsageQuery(groupBy: [.key, .day], from: dayStart, to: now + 86_400))
        for row in days.sorted(by: { ($0.group["day"] ?? "") < ($1.group["day"] ?? "") }) where row.requests > 0 {
            if let day = row.group["day"].flatMap({ Int64($0) }) {
                lastUsed[row.group["key"] ?? ""] = "on " + DashboardRange.format(date: day)
            }
        }
        let hours = try await store.usage(UsageQuery(groupBy: [.key, .hour], from: hourStart, to: now + 3600))
        for row in hours.sorted(by: { (Int64($0.group["hour"] ?? "") ?? 0) < (Int64($1.group["hour"] ?? "") ?? 0) })
        where row.requests > 0 {
            if let hour = row.group["hour"].flatMap({ Int64($0) }) {
                lastUsed[row.group["key"] ?? ""] = "hour of " + DashboardRange.format(time: hour)
            }
        }
        return try await store.entities(.key).compactMap { entity -> KeyLine? in
            guard case .key(let key) = entity else { return nil }
            return KeyLine(
                id: key.id, prefix: key.prefix ?? "", team: key.team, project: key.project ?? "",
                metadata: key.metadata.sorted { $0.key < $1.key }.map { Field(name: $0.key, value: $0.value) },
                limits: key.limits.map(Self.summary) ?? "",
                expires: key.expiresAt.map(DashboardRange.format(date:)) ?? "",
                revoked: key.revoked, lastUsed: lastUsed[key.id] ?? "not in 32 days")
        }
    }

    struct ChangeLine: Sendable {
        var at: String
        var actor: String
        var action: String
        var kind: String
        var name: String
        var fields: String
    }

    /// The admin change log of the last 30 days, newest first (at most 1,000 entries).
    func changes(now: Int64) async throws -> [ChangeLine] {
        try await store.adminChanges(since: now - 30 * 86_400, limit: 10_000).suffix(1000).reversed().map {
            ChangeLine(
                at: DashboardRange.format(time: $0.at), actor: $0.actor, action: $0.action, kind: $0.kind,
                name: $0.name, fields: $0.fields.joined(separator: ", "))
        }
    }

    // MARK: - Formatting

    static func line(_ group: String, _ row: UsageRow) -> UsageLine {
        UsageLine(
            group: display(group), spend: dashboardUSD(row.costPicoUSD), pico: row.costPicoUSD,
            requests: row.requests, promptTokens: row.promptTokens, completionTokens: row.completionTokens)
    }

    /// A group with no value (keyless calls, keys without a project) is shown as `(none)`.
    static func display(_ group: String) -> String { group.isEmpty ? "(none)" : group }

    /// The chart of `rows` grouped by time: what `values` reads from each row is added to its
    /// bucket under its name; the eight names first in `ranked` are each a layer, the rest
    /// summed as "other".
    static func stacked(
        _ rows: [UsageRow], ranked: [String], range: DashboardRange, format: (Double) -> String, title: String,
        values: (UsageRow) -> [(name: String, value: Double)]
    ) -> String {
        let starts = range.bucketStarts
        let index = Dictionary(uniqueKeysWithValues: starts.enumerated().map { ($1, $0) })
        let shown = Array(ranked.prefix(ranked.count > 9 ? 8 : 9))
        var layers = Dictionary(uniqueKeysWithValues: shown.enumerated().map { ($1, $0) })
        var series = shown.map { SVGChart.Series(name: display($0), values: Array(repeating: 0, count: starts.count)) }
        if ranked.count > shown.count {
            layers["\u{0}other"] = series.count
            series.append(SVGChart.Series(name: "other", values: Array(repeating: 0, count: starts.count)))
        }
        for row in rows {
            guard let at = row.group[range.step.rawValue].flatMap({ Int64($0) }), let slot = index[at] else { continue }
            for (name, value) in values(row) {
                series[layers[name] ?? layers["\u{0}other"] ?? 0].values[slot] += value
            }
        }
        return SVGChart.stackedBars(buckets: starts.map(range.label), series: series, format: format, title: title)
    }

    /// A count for an axis or a tooltip: whole numbers as they are, an axis step between
    /// them (a peak of 2 has ticks at 0.5) with one decimal.
    static func count(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.1f", value)
    }

    static func share(_ grant: LeaseGrant) -> String {
        let amount: String
        switch LimitKind(rawValue: grant.limit) {
        case .dailySpend?, .monthlySpend?: amount = "up to " + dashboardUSD(Int64(grant.perMinute))
        case .requestsPerDay?: amount = "up to \(grant.perMinute) requests"
        default: amount = "\(grant.perMinute)/min" + (grant.burst.map { ", burst \($0)" } ?? "")
        }
        return "\(grant.scopeKind) \(grant.scope) \(grant.limit): \(amount)"
    }

    static func summary(_ limits: LimitsDocument) -> String {
        var parts: [String] = []
        if let value = limits.requestsPerMinute { parts.append("\(value) rpm") }
        if let value = limits.tokensPerMinute { parts.append("\(value) tpm") }
        if let value = limits.requestsPerDay { parts.append("\(value)/day") }
        if let value = limits.dailySpendUSD { parts.append("$\(value)/day") }
        if let value = limits.monthlySpendUSD { parts.append("$\(value)/month") }
        if limits.isAlertOnly { parts.append("alert only") }
        return parts.joined(separator: ", ")
    }
}

extension UsageRow {
    fileprivate mutating func add(_ other: UsageRow) {
        requests += other.requests
        promptTokens += other.promptTokens
        completionTokens += other.completionTokens
        costPicoUSD += other.costPicoUSD
    }
}
