import SluicePolicy
import SluiceWire

/// The fleet's budgets as the rollups stand at one moment: every team, project, key and
/// service with limits, and for each daily or monthly budget its current window (in the
/// settings' time zone) and what was spent in it. The budget watcher decides exhaustion and
/// notices from it and the dashboard shows it, so both read the same figures.
///
/// Spend comes from the hourly rollups, summed from the hour containing the window's start:
/// with a zone whose offset is not whole hours, up to one hour before the window counts.
struct BudgetLedger: Sendable {
    /// A scope with limits: its rollup dimension, kind, name and limits.
    struct Scope: Sendable {
        var dimension: UsageQuery.Dimension
        var kind: String
        var name: String
        var limits: LimitsDocument
        var mode: LimitMode { limits.isAlertOnly ? .alert : .enforce }
    }

    /// One budget in its current window.
    struct Standing: Sendable {
        var scope: Scope
        var limit: LimitKind
        var budgetUSD: Double
        var budgetPicoUSD: Int64
        var spentPicoUSD: Int64
        var windowStart: Int64
        var windowEnd: Int64
        /// The soft-budget percentage that applies (the scope's own, else the settings').
        var softPercent: Int?

        /// Spent as a percentage of the budget, capped at 10,000.
        var percent: Int {
            budgetPicoUSD > 0
                ? Int(min(Double(spentPicoUSD) / Double(budgetPicoUSD) * 100, 10_000)) : (spentPicoUSD > 0 ? 100 : 0)
        }
        var isSpent: Bool { spentPicoUSD >= budgetPicoUSD }
    }

    var scopes: [Scope]
    var standings: [Standing]
    var settings: SettingsDocument

    /// Reads the policy and the spend of every budgeted scope in its current window.
    static func read(_ store: any Store, now: Int64) async throws -> BudgetLedger {
        let snapshot = try await store.snapshot()
        let zone = TimeZones.rules(named: snapshot.settings.timeZone) ?? .utc
        var scopes: [Scope] = []
        for entity in snapshot.entities {
            switch entity {
            case .team(let team):
                if let limits = team.limits {
                    scopes.append(.init(dimension: .team, kind: "team", name: team.name, limits: limits))
                }
            case .project(let project):
                if let limits = project.limits {
                    scopes.append(.init(dimension: .project, kind: "project", name: project.name, limits: limits))
                }
            case .key(let key):
                if let limits = key.limits {
                    scopes.append(.init(dimension: .key, kind: "key", name: key.id, limits: limits))
                }
            case .service(let service):
                if let limits = service.limits {
                    scopes.append(.init(dimension: .service, kind: "service", name: service.name, limits: limits))
                }
            // End users' spend is not rolled up fleet-wide: their budgets hold per agent.
            case .model, .endUser: break
            }
        }
        var standings: [Standing] = []
        let windows: [(LimitKind, Int64, Int64, KeyPath<LimitsDocument, Double?>)] = [
            (.dailySpend, zone.startOfDay(containing: now), zone.startOfNextDay(after: now), \.dailySpendUSD),
            (.monthlySpend, zone.startOfMonth(containing: now), zone.startOfNextMonth(after: now), \.monthlySpendUSD),
        ]
        for (limit, start, end, field) in windows {
            let relevant = scopes.filter { $0.limits[keyPath: field] != nil }
            guard !relevant.isEmpty else { continue }
            let spend = try await totals(store, of: relevant, from: start - start % 3600, to: end)
            for scope in relevant {
                guard let usd = scope.limits[keyPath: field], let cap = Cost(usd: usd) else { continue }
                standings.append(
                    Standing(
                        scope: scope, limit: limit, budgetUSD: usd, budgetPicoUSD: cap.picoUSD,
                        spentPicoUSD: spend[scope.dimension]?[scope.name]?.costPicoUSD ?? 0, windowStart: start,
                        windowEnd: end,
                        softPercent: scope.limits.softBudgetPercent ?? snapshot.settings.softBudgetPercent))
            }
        }
        return BudgetLedger(scopes: scopes, standings: standings, settings: snapshot.settings)
    }

    /// The enforced budgets spent in full: what bundles mark exhausted until the window ends.
    var exhausted: [ExhaustedScope] {
        standings.filter { $0.isSpent && $0.scope.mode == .enforce }
            .map {
                ExhaustedScope(kind: $0.scope.kind, name: $0.scope.name, limit: $0.limit.rawValue, until: $0.windowEnd)
            }
            .sorted { ($0.kind, $0.name, $0.limit) < ($1.kind, $1.name, $1.limit) }
    }

    /// Usage between `from` and `to`, per dimension the scopes use and per scope name.
    static func totals(
        _ store: any Store, of scopes: [Scope], from: Int64, to: Int64
    ) async throws -> [UsageQuery.Dimension: [String: UsageRow]] {
        var totals: [UsageQuery.Dimension: [String: UsageRow]] = [:]
        for dimension in Set(scopes.map(\.dimension)) {
            let rows = try await store.usage(UsageQuery(groupBy: [dimension], from: from, to: to))
            totals[dimension] = Dictionary(
                rows.map { ($0.group[dimension.rawValue] ?? "", $0) },
                uniquingKeysWith: { first, second in
                    var sum = first
                    sum.requests += second.requests
                    sum.costPicoUSD += second.costPicoUSD
                    return sum
                })
        }
        return totals
    }
}
