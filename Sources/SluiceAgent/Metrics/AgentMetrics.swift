import CoreMetrics
import Prometheus
import SluiceAPI
import SluicePolicy
import Synchronization

/// The agent's metrics, through swift-metrics into its own Prometheus registry (no global
/// bootstrap, so several agents can live in one test process).
///
/// Label values are bounded: aliases outside the catalog are `unknown`, teams come from
/// policy, and end users never appear. No label ever carries a key or a prompt.
public final class AgentMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let counters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let floatCounters = Mutex<[String: FloatingPointCounter]>([:])
    private let timers = Mutex<[String: CoreMetrics.Timer]>([:])
    private let gauges = Mutex<[String: CoreMetrics.Gauge]>([:])
    private let policy = Mutex<(version: String, loadedAt: Int64)?>(nil)

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let latencyBuckets: [Duration] = [.milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                                          .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120)]
        factory.defaultDurationHistogramBuckets = latencyBuckets
        self.factory = factory
    }

    // MARK: - Request path

    /// One decision: `allow`, or `deny` with the rule's reason code.
    func decision(alias: String?, team: String?, reason: String?) {
        let aliasLabel = alias ?? "unknown"
        let teamLabel = team ?? "none"
        counter("sluice_requests_total", [("alias", aliasLabel), ("team", teamLabel), ("decision", reason == nil ? "allow" : "deny")]).increment()
        if let reason {
            counter("sluice_denials_total", [("reason", reason)]).increment()
        }
    }

    /// A call that went upstream ended: its outcome, usage, cost and timings.
    func completed(alias: String, team: String?, status: Int, usage: TokenUsage?, cost: Cost?, latencyNanoseconds: Int64,
                   timeToFirstByteNanoseconds: Int64?, errorCode: String?) {
        let teamLabel = team ?? "none"
        counter("sluice_upstream_responses_total", [("alias", alias), ("status_class", "\(status / 100)xx")]).increment()
        if let errorCode {
            counter("sluice_upstream_failures_total", [("alias", alias), ("fault", errorCode)]).increment()
        }
        if let usage {
            counter("sluice_tokens_total", [("alias", alias), ("team", teamLabel), ("direction", "in")]).increment(by: Int64(usage.promptTokens))
            counter("sluice_tokens_total", [("alias", alias), ("team", teamLabel), ("direction", "out")]).increment(by: Int64(usage.completionTokens))
        }
        if let cost {
            floatCounter("sluice_cost_usd_total", [("alias", alias), ("team", teamLabel)]).increment(by: cost.usd)
        }
        timer("sluice_upstream_latency_seconds", [("alias", alias)]).recordNanoseconds(latencyNanoseconds)
        if let timeToFirstByteNanoseconds {
            timer("sluice_time_to_first_byte_seconds", [("alias", alias)]).recordNanoseconds(timeToFirstByteNanoseconds)
        }
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
    }

    func policyRejected() {
        counter("sluice_policy_reloads_total", [("result", "rejected")]).increment()
    }

    /// Refreshes the gauges that are read rather than counted (policy age, what the limits
    /// have left), then renders the registry in the Prometheus text format.
    func render(limiter: Limiter, timeZone: TimeZoneRules, now: Int64) -> [UInt8] {
        if let loadedAt = policy.withLock({ $0?.loadedAt }) {
            gauge("sluice_policy_age_seconds", []).record(Double(now - loadedAt) / 1e9)
        }
        let seconds = now / 1_000_000_000
        for (scope, snapshot) in limiter.snapshots(now: now, dayNumber: timeZone.dayNumber(at: seconds),
                                                   monthNumber: timeZone.monthNumber(at: seconds)) where scope.kind != .user {
            func remaining(_ limit: LimitKind, _ value: Double?) {
                guard let value else { return }
                gauge("sluice_limit_remaining", [("scope_kind", scope.kind.rawValue), ("scope", scope.name), ("limit", limit.rawValue)]).record(value)
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

    // MARK: - Handles, created once per label set

    private func key(_ name: String, _ labels: [(String, String)]) -> String {
        var key = name
        for (label, value) in labels {
            key += "\u{1}\(label)=\(value)"
        }
        return key
    }

    private func counter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        let id = key(name, labels)
        return counters.withLock { cache in
            if let found = cache[id] { return found }
            let made = CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
            cache[id] = made
            return made
        }
    }

    private func floatCounter(_ name: String, _ labels: [(String, String)]) -> FloatingPointCounter {
        let id = key(name, labels)
        return floatCounters.withLock { cache in
            if let found = cache[id] { return found }
            let made = FloatingPointCounter(label: name, dimensions: labels, factory: factory)
            cache[id] = made
            return made
        }
    }

    private func timer(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Timer {
        let id = key(name, labels)
        return timers.withLock { cache in
            if let found = cache[id] { return found }
            let made = CoreMetrics.Timer(label: name, dimensions: labels, factory: factory)
            cache[id] = made
            return made
        }
    }

    private func gauge(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Gauge {
        let id = key(name, labels)
        return gauges.withLock { cache in
            if let found = cache[id] { return found }
            let made = CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
            cache[id] = made
            return made
        }
    }
}
