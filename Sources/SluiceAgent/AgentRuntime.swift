import NIOCore
import SluiceAPI
import SluiceHTTP2
import SluicePolicy
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What every request needs, shared by all connections: the policy in force, identity,
/// the upstream client and the audit sink. Only the policy changes after start (on reload).
public final class AgentRuntime: Sendable {
    /// Server knobs, fixed at start: a reload changes policy and catalog, not these.
    public let settings: AgentSettings
    public let identity: ServiceIdentity
    let upstream: UpstreamClient
    let audit: any AuditSink
    public let metrics: AgentMetrics
    let requestIDs = RequestIDGenerator()
    let inFlight = InFlightTracker()
    /// Limit state, kept across reloads.
    let limiter = Limiter()
    /// Deployment health, load and caps, kept across reloads.
    let router = DeploymentRouter()
    private let active: Mutex<ActivePolicy>
    private let draining = Atomic<Bool>(false)
    /// Caller connections currently open.
    let openConnections = Atomic<Int>(0)
    /// Set when policy comes from a control plane: its freshness gates every call.
    public let sync: SyncStatus?
    /// Set when usage is spooled for a control plane: every call's usage is appended.
    public let spool: UsageSpool?
    /// Set with a control plane: this agent's shares of fleet-wide limits.
    public let leases: LeaseTable?
    /// Identity a mesh or gateway in front of the agent vouches for, when configured.
    let trustedIdentity: TrustedIdentity?
    /// Spans for sampled calls, when `--otlp-traces` is set.
    let tracer: CallTracer?
    /// Wall-clock nanoseconds. Injected so that tests can stand an hour in for a second;
    /// limits, budgets, usage hours and policy age all read this one clock.
    let now: @Sendable () -> Int64

    public init(
        configuration: AgentConfiguration, identity: ServiceIdentity, upstream: UpstreamClient, audit: any AuditSink,
        sync: SyncStatus? = nil, spool: UsageSpool? = nil, leases: LeaseTable? = nil,
        trustedIdentity: TrustedIdentity? = nil, tracer: CallTracer? = nil,
        clock: @escaping @Sendable () -> Int64 = { Clocks.wallNanoseconds() }
    ) throws(PolicyError) {
        settings = configuration.settings
        self.tracer = tracer
        self.trustedIdentity = trustedIdentity
        self.identity = identity
        self.upstream = upstream
        self.audit = audit
        self.sync = sync
        self.spool = spool
        self.leases = leases
        now = clock
        let metrics = AgentMetrics(identity: identity)
        self.metrics = metrics
        let start = clock()
        let policy = try ActivePolicy(
            configuration: configuration, identity: identity, limiter: limiter, loadedAt: start,
            localLimits: leases?.localLimits(now: start, windows: Self.windows(configuration.policy.timeZone, start))
                ?? { $1 })
        active = Mutex(policy)
        metrics.policyLoaded(policy)
    }

    /// The policy in force now. Take it once per request.
    public var activePolicy: ActivePolicy { active.withLock { $0 } }

    /// Puts `configuration`'s policy in force, or throws and leaves the current one.
    /// Connections and calls in flight are untouched; new calls see the new policy.
    public func reload(_ configuration: AgentConfiguration) throws(PolicyError) {
        let time = now()
        let policy = try ActivePolicy(
            configuration: configuration, identity: identity, limiter: limiter, loadedAt: time,
            localLimits: leases?.localLimits(now: time, windows: Self.windows(configuration.policy.timeZone, time)) ?? {
                $1
            })
        active.withLock { $0 = policy }
        metrics.policyLoaded(policy)
    }

    /// The day and month `time` (wall nanoseconds) falls in, in `zone`.
    static func windows(_ zone: TimeZoneRules, _ time: Int64) -> LeaseTable.Windows {
        LeaseTable.Windows(
            day: zone.dayNumber(at: time / 1_000_000_000), month: zone.monthNumber(at: time / 1_000_000_000))
    }

    /// Set once shutdown begins: `/readyz` turns 503 so the pod leaves rotation.
    var isDraining: Bool { draining.load(ordering: .relaxed) }
    func beginDraining() { draining.store(true, ordering: .relaxed) }
}

/// Request ids: a random per-process prefix and a counter, so they are unique across
/// pods and restarts without a syscall per request.
final class RequestIDGenerator: Sendable {
    private let prefix: String
    private let counter = Atomic<UInt64>(0)

    init() {
        let random = UInt64.random(in: .min ... .max)
        prefix = String(random, radix: 16)
    }

    func next() -> String {
        let value = counter.add(1, ordering: .relaxed).newValue
        return "\(prefix)-\(String(value, radix: 16))"
    }
}

/// Counts requests being served, so shutdown can wait for them to finish.
final class InFlightTracker: Sendable {
    private let state = Mutex<(count: Int, waiters: [CheckedContinuation<Void, Never>])>((0, []))

    func enter() { state.withLock { $0.count += 1 } }

    func leave() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.count -= 1
            guard state.count == 0 else { return [] }
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var count: Int { state.withLock { $0.count } }

    /// Returns once no request is in flight.
    func waitUntilIdle() async {
        await withCheckedContinuation { continuation in
            let idle = state.withLock { state -> Bool in
                if state.count == 0 { return true }
                state.waiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }
}

/// Monotonic and wall clocks, read in one place (the pure targets never read clocks).
public enum Clocks {
    /// Wall-clock time in nanoseconds since the Unix epoch (`CLOCK_REALTIME`).
    public static func wallNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
