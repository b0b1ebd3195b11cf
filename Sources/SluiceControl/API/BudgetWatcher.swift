import Foundation
import Logging
import ServiceLifecycle
import SluicePolicy
import SluiceWire
import Synchronization

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Fleet-wide budgets. Every agent enforces its own counters; this is the fleet's view:
/// when the spend of a team, project, key or service over its day or month (in the
/// settings' time zone) reaches its budget, the next bundle marks the scope exhausted, and
/// the policy version rises so long-polling agents fetch it at once. When spend crosses the
/// soft-budget percentage (and again at exhaustion) a webhook is posted, once per scope,
/// limit and window across all replicas.
///
/// Spend comes from the hourly rollups, summed from the hour containing the window's start:
/// with a zone whose offset is not whole hours, up to one hour before the window counts.
public final class BudgetWatcher: Service {
    private let store: any Store
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    private let interval: Int64
    private let send: @Sendable (URL, Data) async throws -> Void
    private let state = Mutex<(lastCheck: Int64, exhausted: [ExhaustedScope])>((0, []))

    /// - Parameters:
    ///   - clock: Unix seconds.
    ///   - interval: least seconds between two checks triggered by usage.
    ///   - send: posts a webhook body (URLSession by default; injectable for tests).
    public init(
        store: any Store, logger: Logger,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) },
        interval: Int64 = 1, send: (@Sendable (URL, Data) async throws -> Void)? = nil
    ) {
        self.store = store
        self.logger = logger
        self.clock = clock
        self.interval = interval
        self.send = send ?? Self.post
    }

    /// A webhook payload: which budget, how much of it is spent, in which window.
    public struct Notice: Codable, Sendable, Equatable {
        public var event: String
        public var scopeKind: String
        public var scope: String
        public var limit: String
        public var budgetUSD: Double
        public var spentUSD: Double
        public var percent: Int
        public var windowStart: Int64
        public var windowEnd: Int64

        enum CodingKeys: String, CodingKey {
            case event
            case scopeKind = "scope_kind"
            case scope, limit
            case budgetUSD = "budget_usd"
            case spentUSD = "spent_usd"
            case percent
            case
                windowStart = "window_start"
            case windowEnd = "window_end"
        }
    }

    /// The scopes exhausted now, for a bundle being built.
    public func exhaustedScopes() async throws -> [ExhaustedScope] {
        try await evaluate(now: clock()).exhausted
    }

    /// Called after usage arrives: at most once per interval, re-evaluates; a change in the
    /// exhausted set raises the policy version; notices due are sent.
    /// - Returns: whether the policy version was raised.
    @discardableResult
    public func usageArrived() async -> Bool {
        let now = clock()
        let due = state.withLock { state -> Bool in
            guard now - state.lastCheck >= interval else { return false }
            state.lastCheck = now
            return true
        }
        guard due else { return false }
        return await check(now: now)
    }

    /// Re-evaluates every `period` while the control plane runs, so that a window rolling
    /// over (midnight, the 1st) or usage ingested by another replica is noticed without
    /// waiting for this replica's next batch.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(30))
                await self.check()
            }
        }
    }

    /// Evaluates now, regardless of the interval.
    @discardableResult
    public func check(now: Int64? = nil) async -> Bool {
        let now = now ?? clock()
        do {
            let (exhausted, notices, webhook) = try await evaluate(now: now)
            let changed = state.withLock { state -> Bool in
                defer { state.exhausted = exhausted }
                return state.exhausted != exhausted
            }
            if changed { try await store.bumpPolicyVersion() }
            if let webhook {
                for notice in notices {
                    let key =
                        "\(notice.event):\(notice.scopeKind):\(notice.scope):\(notice.limit):\(notice.windowStart)"
                    guard try await store.recordNotice(key) else { continue }
                    do {
                        try await send(webhook, try WireCoding.encoder.encode(notice))
                    } catch {
                        logger.error(
                            "budget webhook failed; the notice is not retried",
                            metadata: ["scope": "\(notice.scope)", "error": "\(error)"])
                    }
                }
            }
            return changed
        } catch {
            logger.error("budget check failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    private func evaluate(now: Int64) async throws -> (exhausted: [ExhaustedScope], notices: [Notice], webhook: URL?) {
        let snapshot = try await store.snapshot()
        let zone = TimeZones.rules(named: snapshot.settings.timeZone) ?? .utc
        var budgets: [(kind: UsageQuery.Dimension, scopeKind: String, name: String, limits: LimitsDocument)] = []
        for entity in snapshot.entities {
            switch entity {
            case .team(let team): if let limits = team.limits { budgets.append((.team, "team", team.name, limits)) }
            case .project(let project):
                if let limits = project.limits { budgets.append((.project, "project", project.name, limits)) }
            case .key(let key): if let limits = key.limits { budgets.append((.key, "key", key.id, limits)) }
            case .service(let service):
                if let limits = service.limits { budgets.append((.service, "service", service.name, limits)) }
            // End users' spend is not rolled up fleet-wide: their budgets hold per agent.
            case .model, .endUser: break
            }
        }
        var exhausted: [ExhaustedScope] = []
        var notices: [Notice] = []
        let soft = snapshot.settings.softBudgetPercent
        let windows: [(LimitKind, Int64, Int64, KeyPath<LimitsDocument, Double?>)] = [
            (.dailySpend, zone.startOfDay(containing: now), zone.startOfNextDay(after: now), \.dailySpendUSD),
            (.monthlySpend, zone.startOfMonth(containing: now), zone.startOfNextMonth(after: now), \.monthlySpendUSD),
        ]
        for (limit, start, end, field) in windows {
            let relevant = budgets.filter { $0.limits[keyPath: field] != nil }
            guard !relevant.isEmpty else { continue }
            var spend: [UsageQuery.Dimension: [String: Int64]] = [:]
            for dimension in Set(relevant.map(\.kind)) {
                let rows = try await store.usage(UsageQuery(groupBy: [dimension], from: start - start % 3600, to: end))
                spend[dimension] = Dictionary(
                    rows.map { ($0.group[dimension.rawValue] ?? "", $0.costPicoUSD) }, uniquingKeysWith: +)
            }
            for budget in relevant {
                guard let usd = budget.limits[keyPath: field], let cap = Cost(usd: usd) else { continue }
                let spent = spend[budget.kind]?[budget.name] ?? 0
                let percent =
                    cap.picoUSD > 0
                    ? Int(min(Double(spent) / Double(cap.picoUSD) * 100, 10_000)) : (spent > 0 ? 100 : 0)
                func notice(_ event: String) -> Notice {
                    Notice(
                        event: event, scopeKind: budget.scopeKind, scope: budget.name, limit: limit.rawValue,
                        budgetUSD: usd,
                        spentUSD: Double(spent) / 1e12, percent: percent, windowStart: start, windowEnd: end)
                }
                if spent >= cap.picoUSD {
                    exhausted.append(
                        ExhaustedScope(kind: budget.scopeKind, name: budget.name, limit: limit.rawValue, until: end))
                    notices.append(notice("budget_exhausted"))
                } else if let soft, percent >= soft {
                    notices.append(notice("soft_budget_reached"))
                }
            }
        }
        exhausted.sort { ($0.kind, $0.name, $0.limit) < ($1.kind, $1.name, $1.limit) }
        let webhook = snapshot.settings.budgetWebhookURL.flatMap(URL.init(string:))
        return (exhausted, notices, webhook)
    }

    private static func post(_ url: URL, _ body: Data) async throws {
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = body
        request.timeoutInterval = 10
        let (_, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else { throw StoreError(.invalid, "the webhook answered \(status)") }
    }
}

/// Time zone rules on the control plane: `UTC`, fixed offsets, or the system's TZif files.
enum TimeZones {
    static func rules(named name: String) -> TimeZoneRules? {
        if let fixed = TimeZoneRules(fixedOffset: name) { return fixed }
        guard !name.contains(".."), !name.hasPrefix("/"),
            let data = FileManager.default.contents(atPath: "/usr/share/zoneinfo/\(name)")
        else { return nil }
        return try? TimeZoneRules(name: name, tzif: Array(data))
    }
}
