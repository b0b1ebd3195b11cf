import CoreMetrics
import Prometheus
import SluiceAPI
import SluiceExport
import SluicePolicy
import Synchronization

/// The agent's metrics, through swift-metrics into its own Prometheus registry (no global
/// bootstrap, so several agents can live in one test process).
///
/// Every series carries the workload's identity (`service` = `namespace/service`). Other
/// label values are bounded: aliases outside the catalog are `unknown`, teams come from
/// policy, and end users never appear. No label ever carries a key or a prompt.
public final class AgentMetrics: Sendable {
    /// Put first on every series.
    private let identityLabels: [(String, String)]
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    /// Every handle made so far, by name and labels: swift-metrics handles are meant to be
    /// created once and kept.
    private let handles = Mutex<[String: any Sendable]>([:])
    private let policy = Mutex<(version: String, loadedAt: Int64)?>(nil)
    /// Credential references reported missing by the policy in force, so one that is set
    /// again is reported back at 0 rather than left at 1.
    private let missingCredentials = Mutex<Set<String>>([])

    public init(identity: ServiceIdentity) {
        identityLabels = [("service", identity.qualifiedName)]
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let latencyBuckets: [Duration] = [
            .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
        ]
        factory.defaultDurationHistogramBuckets = latencyBuckets
        self.factory = factory
    }

    // MARK: - Request path

    /// The handles one (alias, team) pair's admitted calls touch, made once and then found
    /// with a single lookup: the allow path builds no label strings.
    final class CallHandles: Sendable {
        let alias: String
        let allowed: CoreMetrics.Counter
        let tokensIn: CoreMetrics.Counter
        let tokensOut: CoreMetrics.Counter
        let cost: FloatingPointCounter
        let latency: CoreMetrics.Timer
        let timeToFirstByte: CoreMetrics.Timer
        /// `sluice_upstream_responses_total` by status class, index 1...5.
        let responses: [CoreMetrics.Counter]

        fileprivate init(alias: String, team: String, metrics: AgentMetrics) {
            self.alias = alias
            allowed = metrics.counter(
                "sluice_requests_total", [("alias", alias), ("team", team), ("decision", "allow")])
            tokensIn = metrics.counter("sluice_tokens_total", [("alias", alias), ("team", team), ("direction", "in")])
            tokensOut = metrics.counter(
                "sluice_tokens_total", [("alias", alias), ("team", team), ("direction", "out")])
            cost = metrics.floatCounter("sluice_cost_usd_total", [("alias", alias), ("team", team)])
            latency = metrics.timer("sluice_upstream_latency_seconds", [("alias", alias)])
            timeToFirstByte = metrics.timer("sluice_time_to_first_byte_seconds", [("alias", alias)])
            responses = (0...5).map {
                metrics.counter("sluice_upstream_responses_total", [("alias", alias), ("status_class", "\($0)xx")])
            }
        }
    }

    private struct CallLabels: Hashable {
        let alias: String
        let team: String?
    }

    private let callHandles = Mutex<[CallLabels: CallHandles]>([:])

    /// An admitted call: counts the decision and returns the handles its completion uses.
    func allowed(alias: String, team: String?) -> CallHandles {
        let labels = CallLabels(alias: alias, team: team)
        let handles = callHandles.withLock { cache in
            if let found = cache[labels] { return found }
            let made = CallHandles(alias: alias, team: team ?? "none", metrics: self)
            cache[labels] = made
            return made
        }
        handles.allowed.increment()
        return handles
    }

    /// A refused call, with the rule's reason code.
    func denied(alias: String?, team: String?, reason: String) {
        counter(
            "sluice_requests_total", [("alias", alias ?? "unknown"), ("team", team ?? "none"), ("decision", "deny")]
        ).increment()
        counter("sluice_denials_total", [("reason", reason)]).increment()
    }

    /// A call that went upstream ended: its outcome, usage, cost and timings.
    func completed(
        _ handles: CallHandles, status: Int, usage: TokenUsage?, cost: Cost?, latencyNanoseconds: Int64,
        timeToFirstByteNanoseconds: Int64?, errorCode: String?
    ) {
        handles.responses[min(5, max(0, status / 100))].increment()
        if let errorCode {
            counter("sluice_upstream_failures_total", [("alias", handles.alias), ("fault", errorCode)]).increment()
        }
        if let usage {
            handles.tokensIn.increment(by: Int64(usage.promptTokens))
            handles.tokensOut.increment(by: Int64(usage.completionTokens))
        }
        if let cost { handles.cost.increment(by: cost.usd) }
        handles.latency.recordNanoseconds(latencyNanoseconds)
        if let timeToFirstByteNanoseconds { handles.timeToFirstByte.recordNanoseconds(timeToFirstByteNanoseconds) }
    }

    // MARK: - Guardrails

    /// One guardrail's decision on one call, and how long it took to get.
    func guardrailDecided(_ decision: GuardrailDecision) {
        let labels = [("guardrail", decision.guardrail), ("verdict", decision.verdict.rawValue)]
        counter("sluice_guardrail_decisions_total", labels).increment()
        if let milliseconds = decision.milliseconds {
            timer("sluice_guardrail_duration_seconds", [("guardrail", decision.guardrail)])
                .recordNanoseconds(Int64(milliseconds * 1e6))
        }
    }

    // MARK: - Routing

    func retried(alias: String) { counter("sluice_retries_total", [("alias", alias)]).increment() }

    func fellBack(from alias: String, to fallback: String) {
        counter("sluice_fallbacks_total", [("alias", alias), ("fallback", fallback)]).increment()
    }

    func deploymentsUnavailable(alias: String) {
        counter("sluice_no_deployment_available_total", [("alias", alias)]).increment()
    }

    // MARK: - Policy

    func policyLoaded(_ active: ActivePolicy) {
        let previous = policy.withLock { state -> String? in
            defer { state = (active.version, active.loadedAt) }
            return state?.version
        }
        if let previous, previous != active.version {
            gauge("sluice_policy_info", [("version", previous)]).record(0)
        }
        gauge("sluice_policy_info", [("version", active.version)]).record(1)
        counter("sluice_policy_reloads_total", [("result", "ok")]).increment()
        let missing = Set(active.configuration.catalog.missingCredentials)
        let before = missingCredentials.withLock { state in
            defer { state = missing }
            return state
        }
        for reference in before.subtracting(missing) {
            gauge("sluice_credential_missing", [("credential", reference)]).record(0)
        }
        for reference in missing { gauge("sluice_credential_missing", [("credential", reference)]).record(1) }
    }

    /// An admitted call's account was released without being settled; its reservation
    /// was given back then. Should stay 0: a non-zero value names a path that forgot.
    func settlementMissed() {
        counter("sluice_calls_unsettled_total", []).increment()
    }

    /// A call was settled a second time; the second was ignored. Should stay 0.
    func settledTwice() {
        counter("sluice_calls_settled_twice_total", []).increment()
    }

    func policyRejected() {
        counter("sluice_policy_reloads_total", [("result", "rejected")]).increment()
    }

    // MARK: - Control plane

    func syncFailed() { counter("sluice_policy_sync_errors_total", []).increment() }

    func flushFailed() { counter("sluice_usage_flush_errors_total", []).increment() }

    func batchFlushed(bytes: Int, duplicate: Bool) {
        counter("sluice_usage_batches_flushed_total", [("result", duplicate ? "duplicate" : "applied")]).increment()
        counter("sluice_usage_flushed_bytes_total", []).increment(by: Int64(bytes))
    }

    func leasesRenewed(_ count: Int) { counter("sluice_lease_renewals_total", [("result", "ok")]).increment() }

    func leaseRenewalFailed() { counter("sluice_lease_renewals_total", [("result", "failed")]).increment() }

    func spoolPending(batches: Int) { gauge("sluice_usage_spool_pending_batches", []).record(batches) }

    /// Refreshes the gauges that are read rather than counted (policy age, sync and spool
    /// state, what the limits have left), then renders the registry in the Prometheus text
    /// format. With a control plane, the policy's age counts from its last confirmation.
    func render(runtime: AgentRuntime, timeZone: TimeZoneRules, now: Int64) -> [UInt8] {
        let limiter = runtime.limiter
        if let sync = runtime.sync {
            let report = sync.report(at: now)
            if let age = report.ageSeconds { gauge("sluice_policy_age_seconds", []).record(age) }
            gauge("sluice_policy_stale", []).record(report.stale ? 1 : 0)
            gauge("sluice_policy_sync_ok", []).record(report.lastError == nil ? 1 : 0)
            gauge("sluice_usage_flush_ok", []).record(report.lastFlushError == nil ? 1 : 0)
        } else if let loadedAt = policy.withLock({ $0?.loadedAt }) {
            gauge("sluice_policy_age_seconds", []).record(Double(now - loadedAt) / 1e9)
        }
        if let leases = runtime.leases {
            for share in leases.held(now: now) {
                gauge(
                    "sluice_lease_share_per_minute",
                    [
                        ("scope_kind", share.scope.kind.rawValue), ("scope", share.scope.name),
                        ("limit", share.limit),
                    ]
                ).record(share.perMinute)
            }
        }
        if let spool = runtime.spool {
            let health = spool.health
            gauge("sluice_usage_spool_held_in_memory", []).record(health.heldInMemory)
            gauge("sluice_usage_spool_disk_ok", []).record(health.lastError == nil ? 1 : 0)
            // A count since start, so a counter (what `_total` promises), brought up to date here.
            catchUp("sluice_usage_spool_records_total", [], to: health.appendedTotal)
            gauge("sluice_usage_spool_quarantined_files", []).record(health.quarantined)
        }
        if let export = runtime.audit as? ExportingAuditSink {
            for exporter in export.exporters {
                let counts = exporter.counts
                let destination = ("destination", exporter.destination.format.rawValue)
                let outcomes = [("sent", counts.sent), ("dropped", counts.dropped), ("failed", counts.failed)]
                for (outcome, total) in outcomes {
                    catchUp("sluice_audit_export_records_total", [destination, ("outcome", outcome)], to: total)
                }
                gauge("sluice_audit_export_queued_records", [destination]).record(counts.queued)
            }
        }
        for (key, state) in runtime.router.states {
            let labels = [("alias", key.alias), ("deployment", key.description)]
            gauge("sluice_deployment_in_flight", labels).record(state.inFlight)
            gauge("sluice_deployment_cooling_down", labels).record(state.cooldownUntil > now ? 1 : 0)
            if let latency = state.latencySeconds { gauge("sluice_deployment_ttfb_seconds", labels).record(latency) }
            // Attempt outcomes are counted in the board (no metric work per call) and
            // brought up to date here, as counters.
            for (outcome, total) in [("ok", state.succeeded)] + state.failed.map({ ($0.key, $0.value) }) {
                catchUp("sluice_upstream_attempts_total", labels + [("outcome", outcome)], to: total)
            }
        }
        let seconds = now / 1_000_000_000
        for (scope, snapshot) in limiter.snapshots(
            now: now, dayNumber: timeZone.dayNumber(at: seconds),
            monthNumber: timeZone.monthNumber(at: seconds)) where scope.kind != .user
        {
            func remaining(_ limit: LimitKind, _ value: Double?) {
                guard let value else { return }
                gauge(
                    "sluice_limit_remaining",
                    [("scope_kind", scope.kind.rawValue), ("scope", scope.name), ("limit", limit.rawValue)]
                ).record(value)
            }
            remaining(.requestsPerMinute, snapshot.requestsPerMinute)
            remaining(.tokensPerMinute, snapshot.tokensPerMinute)
            remaining(.requestsPerDay, snapshot.requestsPerDay.map(Double.init))
            remaining(.maxParallelRequests, snapshot.parallel.map(Double.init))
            remaining(.dailySpend, snapshot.dailySpend.map(\.usd))
            remaining(.monthlySpend, snapshot.monthlySpend.map(\.usd))
        }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }

    /// Totals already added to counters that mirror a count kept elsewhere, by handle key.
    private let mirrored = Mutex<[String: Int]>([:])

    /// Raises the counter `name` with `labels` to `total`.
    private func catchUp(_ name: String, _ labels: [(String, String)], to total: Int) {
        let id = key(name, labels)
        let added = mirrored.withLock { seen -> Int in
            defer { seen[id] = max(seen[id] ?? 0, total) }
            return max(0, total - (seen[id] ?? 0))
        }
        if added > 0 { counter(name, labels).increment(by: Int64(added)) }
    }

    // MARK: - Handles, created once per label set

    private func key(_ name: String, _ labels: [(String, String)]) -> String {
        var key = name
        for (label, value) in labels {
            key += "\u{1}\(label)=\(value)"
        }
        return key
    }

    fileprivate func counter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        handle(name, labels) { CoreMetrics.Counter(label: name, dimensions: $0, factory: $1) }
    }

    fileprivate func floatCounter(_ name: String, _ labels: [(String, String)]) -> FloatingPointCounter {
        handle(name, labels) { FloatingPointCounter(label: name, dimensions: $0, factory: $1) }
    }

    fileprivate func timer(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Timer {
        handle(name, labels) { CoreMetrics.Timer(label: name, dimensions: $0, factory: $1) }
    }

    private func gauge(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Gauge {
        handle(name, labels) { CoreMetrics.Gauge(label: name, dimensions: $0, factory: $1) }
    }

    /// The handle for `name` and `labels`, made by `make` (with the identity labels put
    /// first) the first time it is asked for.
    private func handle<Handle: Sendable>(
        _ name: String, _ labels: [(String, String)],
        make: ([(String, String)], PrometheusMetricsFactory) -> Handle
    ) -> Handle {
        let id = key(name, labels)
        return handles.withLock { cache in
            if let found = cache[id] as? Handle { return found }
            let made = make(identityLabels + labels, factory)
            cache[id] = made
            return made
        }
    }
}
