import Foundation
import Logging
import ServiceLifecycle
import SluicePolicy
import SluiceWire
import Synchronization


/// Fleet-wide budgets and alerts. Every agent enforces its own counters; this is the
/// fleet's view: when the spend of a team, project, key or service over its day or month
/// (in the settings' time zone) reaches its budget, the next bundle marks the scope
/// exhausted, and the policy version rises so long-polling agents fetch it at once.
///
/// Notices go to the alert webhooks (and `settings.budget_webhook_url`), once per scope,
/// rule and window across all replicas: spend crossing the soft-budget percentage, a budget
/// running out, an alert-only budget or daily quota crossed (`mode: alert`: never
/// enforced), and a spike (`spike`: the last hours against their trailing baseline).
///
/// Spend comes from the hourly rollups, summed from the hour containing the window's start:
/// with a zone whose offset is not whole hours, up to one hour before the window counts.
public final class BudgetWatcher: Service {
    public typealias Notice = AlertNotice

    private let store: any Store
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    private let interval: Int64
    private let sender: AlertSender
    private let state = Mutex<(lastCheck: Int64, exhausted: [ExhaustedScope])>((0, []))

    /// - Parameters:
    ///   - clock: Unix seconds.
    ///   - interval: least seconds between two checks triggered by usage.
    ///   - sender: posts the notices; run it as a service beside this one.
    public init(
        store: any Store, logger: Logger,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) },
        interval: Int64 = 1, sender: AlertSender
    ) {
        self.store = store
        self.logger = logger
        self.clock = clock
        self.interval = interval
        self.sender = sender
    }

    /// The scopes exhausted now, for a bundle being built: the budgets alone, without the
    /// quota and spike queries whose notices only ``check(now:)`` sends.
    public func exhaustedScopes() async throws -> [ExhaustedScope] {
        try await BudgetLedger.read(store, now: clock()).exhausted
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
            let (exhausted, notices, legacyURL) = try await evaluate(now: now)
            let changed = state.withLock { state -> Bool in
                defer { state.exhausted = exhausted }
                return state.exhausted != exhausted
            }
            if changed { try await store.bumpPolicyVersion() }
            if sender.hasWebhooks || legacyURL != nil {
                for notice in notices {
                    guard try await store.recordNotice(notice.key) else { continue }
                    sender.send(notice, legacyURL: legacyURL)
                }
            }
            return changed
        } catch {
            logger.error("budget check failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    private typealias Watched = BudgetLedger.Scope

    private func evaluate(
        now: Int64
    ) async throws -> (exhausted: [ExhaustedScope], notices: [Notice], legacyURL: URL?) {
        let ledger = try await BudgetLedger.read(store, now: now)
        var notices: [Notice] = []
        for standing in ledger.standings {
            let scope = standing.scope
            func notice(_ event: String) -> Notice {
                var notice = Notice(
                    event: event, scopeKind: scope.kind, scope: scope.name, limit: standing.limit.rawValue,
                    mode: scope.mode, windowStart: standing.windowStart, windowEnd: standing.windowEnd)
                notice.budgetUSD = standing.budgetUSD
                notice.spentUSD = Double(standing.spentPicoUSD) / 1e12
                notice.percent = standing.percent
                return notice
            }
            if standing.isSpent {
                notices.append(notice(scope.mode == .alert ? "budget_exceeded" : "budget_exhausted"))
            } else if let soft = standing.softPercent, standing.percent >= soft {
                notices.append(notice("soft_budget_reached"))
            }
        }
        let zone = TimeZones.rules(named: ledger.settings.timeZone) ?? .utc
        let today = (zone.startOfDay(containing: now), zone.startOfNextDay(after: now))
        notices += try await quotaNotices(
            ledger.scopes.filter { $0.mode == .alert && $0.limits.requestsPerDay != nil }, today: today)
        notices += try await spikeNotices(ledger.scopes.filter { $0.limits.spike != nil }, now: now)
        let legacyURL = ledger.settings.budgetWebhookURL.flatMap(URL.init(string:))
        return (ledger.exhausted, notices, legacyURL)
    }

    /// Alert-only daily request quotas crossed today. (Enforced ones are leased to agents,
    /// which refuse past them.)
    private func quotaNotices(_ scopes: [Watched], today: (Int64, Int64)) async throws -> [Notice] {
        guard !scopes.isEmpty else { return [] }
        let counts = try await BudgetLedger.totals(store, of: scopes, from: today.0 - today.0 % 3600, to: today.1)
        return scopes.compactMap { scope in
            guard let quota = scope.limits.requestsPerDay else { return nil }
            let requests = counts[scope.dimension]?[scope.name]?.requests ?? 0
            guard requests > Int64(quota) else { return nil }
            var notice = Notice(
                event: "quota_exceeded", scopeKind: scope.kind, scope: scope.name,
                limit: LimitKind.requestsPerDay.rawValue, mode: .alert, windowStart: today.0, windowEnd: today.1)
            notice.quota = Int64(quota)
            notice.requests = requests
            return notice
        }
    }

    /// Spikes: the window's spend or requests (the current hour included) against the
    /// average per window of the baseline hours before it.
    private func spikeNotices(_ scopes: [Watched], now: Int64) async throws -> [Notice] {
        var notices: [Notice] = []
        let hour = now - now % 3600
        let shapes = Set(scopes.compactMap { $0.limits.spike.map { [$0.windowHours, $0.baselineHours] } })
        for shape in shapes.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let (windowHours, baselineHours) = (Int64(shape[0]), Int64(shape[1]))
            let group = scopes.filter { $0.limits.spike.map { [$0.windowHours, $0.baselineHours] } == shape }
            let windowStart = hour - (windowHours - 1) * 3600
            let windowEnd = hour + 3600
            let recent = try await BudgetLedger.totals(store, of: group, from: windowStart, to: windowEnd)
            let before = try await BudgetLedger.totals(
                store, of: group, from: windowStart - baselineHours * 3600, to: windowStart)
            for scope in group {
                guard let rule = scope.limits.spike else { continue }
                func measure(_ row: UsageRow?) -> Double {
                    rule.metric == "spend" ? Double(row?.costPicoUSD ?? 0) / 1e12 : Double(row?.requests ?? 0)
                }
                let value = measure(recent[scope.dimension]?[scope.name])
                let baseline =
                    measure(before[scope.dimension]?[scope.name]) * Double(windowHours) / Double(baselineHours)
                guard value >= (rule.minimum ?? rule.defaultMinimum), value > rule.factor * baseline else { continue }
                var notice = Notice(
                    event: "spike", scopeKind: scope.kind, scope: scope.name, limit: "spike", mode: scope.mode,
                    windowStart: windowStart, windowEnd: windowEnd)
                notice.metric = rule.metric
                notice.value = value
                notice.baseline = baseline
                notice.factor = rule.factor
                notices.append(notice)
            }
        }
        return notices
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
