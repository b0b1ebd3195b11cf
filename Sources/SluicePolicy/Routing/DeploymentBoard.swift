/// Names one deployment across policy reloads: its health and load carry over as long as
/// the alias, provider, address and upstream model stay the same.
///
/// Every call looks its deployment up by this key several times, so the key is made once,
/// with the deployment (``Deployment/key``), and hashes as one precomputed number.
public struct DeploymentKey: Sendable, Hashable, CustomStringConvertible {
    public let alias: String
    public let dialect: ProviderDialect
    public let endpoint: String
    public let upstreamModel: String
    private let hashCode: Int

    init(alias: String, dialect: ProviderDialect, endpoint: Endpoint, upstreamModel: String) {
        self.alias = alias
        self.dialect = dialect
        self.endpoint = endpoint.description
        self.upstreamModel = upstreamModel
        var hasher = Hasher()
        hasher.combine(alias)
        hasher.combine(dialect)
        hasher.combine(self.endpoint)
        hasher.combine(upstreamModel)
        hashCode = hasher.finalize()
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(hashCode)
    }

    public static func == (a: DeploymentKey, b: DeploymentKey) -> Bool {
        a.hashCode == b.hashCode && a.alias == b.alias && a.dialect == b.dialect && a.endpoint == b.endpoint
            && a.upstreamModel == b.upstreamModel
    }

    /// `anthropic/claude-x@https://api.anthropic.com/v1`: how metrics and logs name it.
    public var description: String { "\(dialect.rawValue)/\(upstreamModel)@\(endpoint)" }
}

/// What routing knows about each deployment on this agent: calls in flight, recent time to
/// first byte, recent failures and cooldown, and its own `rpm`/`tpm` caps as token buckets.
/// A plain value driven by an injected clock; the agent keeps one behind a lock.
public struct DeploymentBoard: Sendable {
    /// One deployment's routing state.
    public struct State: Sendable, Equatable {
        public var inFlight = 0
        /// Smoothed time to first byte, in seconds; nil until measured.
        public var latencySeconds: Double?
        /// Failures since `failWindowStart` (a rolling minute).
        public var fails = 0
        public var failWindowStart: Int64 = 0
        /// Wall nanoseconds until which the deployment is left out; 0 when it is not.
        public var cooldownUntil: Int64 = 0
        /// Requests and tokens left under the caps, refilled continuously per minute.
        public var requestLevel: Double = 0
        public var tokenLevel: Double = 0
        public var refilledAt: Int64 = 0
        var capsSeen = false
        /// Attempts that ended well, and the others by ``AttemptFailure/label``: counted here,
        /// under the lock the attempt already takes, rather than in a metric per call.
        public var succeeded = 0
        public var failed: [String: Int] = [:]
    }

    /// Why no deployment of an alias could take a call.
    public struct Unavailable: Sendable, Equatable {
        public var coolingDown: Int
        public var atCap: Int
        /// The soonest one of them can take a call again, in whole seconds (at least 1).
        public var retryAfterSeconds: Int

        public init(coolingDown: Int, atCap: Int, retryAfterSeconds: Int) {
            self.coolingDown = coolingDown
            self.atCap = atCap
            self.retryAfterSeconds = retryAfterSeconds
        }
    }

    /// A deployment for the call, or why none can take it now.
    public enum Choice: Sendable, Equatable {
        case chosen(Deployment)
        case unavailable(Unavailable)
    }

    public private(set) var states: [DeploymentKey: State] = [:]
    /// A deployment that can take the call, with its state as `choose` found it.
    private typealias Candidate = (deployment: Deployment, key: DeploymentKey, state: State)
    /// Weight of the newest latency sample in the smoothed value.
    static let latencyWeight = 0.3
    /// The latency a failure counts as.
    static let failureLatencySeconds = 5.0
    static let minute: Int64 = 60_000_000_000

    public init() {}

    /// Chooses one of `alias`'s deployments by `strategy`, and counts the call against it
    /// (in flight, one request and `estimatedTokens` under its caps).
    ///
    /// Deployments in `tried` are chosen again only when no other is eligible. Cooling
    /// deployments are left out, except the only deployment of an alias: with nothing to
    /// move to, refusing calls would only turn a provider's bad minute into a certain
    /// outage. `roll` in `0..<1` breaks ties by weight; it is read only when there is a tie
    /// to break.
    public mutating func choose(
        from alias: ModelAlias, strategy: RoutingStrategy, tried: Set<DeploymentKey> = [],
        estimatedTokens: Int, now: Int64, roll: @autoclosure () -> Double
    ) -> Choice {
        if alias.deployments.count == 1 {
            // The common case, kept to one lookup: nothing to choose between, and the only
            // deployment is never left out for a cooldown; only its caps can refuse.
            let deployment = alias.deployments[0]
            let key = deployment.key
            return Self.update(&states[key, default: State()]) { state in
                Self.refill(&state, deployment, now: now)
                if let wait = Self.capWait(state, deployment, estimatedTokens: estimatedTokens) {
                    return .unavailable(
                        Unavailable(coolingDown: 0, atCap: 1, retryAfterSeconds: Self.wholeSeconds(wait)))
                }
                Self.take(&state, deployment, estimatedTokens: estimatedTokens)
                return .chosen(deployment)
            }
        }
        var eligible: [Candidate] = []
        var cooling = 0
        var capped = 0
        var soonest = Int64.max
        for deployment in alias.deployments {
            let key = deployment.key
            var state = states[key] ?? State()
            Self.refill(&state, deployment, now: now)
            states[key] = state
            if state.cooldownUntil > now {
                cooling += 1
                soonest = min(soonest, state.cooldownUntil - now)
            } else if let wait = Self.capWait(state, deployment, estimatedTokens: estimatedTokens) {
                capped += 1
                soonest = min(soonest, wait)
            } else {
                eligible.append((deployment, key, state))
            }
        }
        let untried = eligible.filter { !tried.contains($0.key) }
        let pool = untried.isEmpty ? eligible : untried
        guard !pool.isEmpty else {
            return .unavailable(
                Unavailable(
                    coolingDown: cooling, atCap: capped,
                    retryAfterSeconds: soonest == .max ? 1 : Self.wholeSeconds(soonest)))
        }
        var candidates = pool
        switch strategy {
        case .simpleShuffle:
            break
        case .leastBusy:
            let least = pool.map(\.state.inFlight).min()
            candidates = pool.filter { $0.state.inFlight == least }
        case .latencyBased:
            let unmeasured = pool.filter { $0.state.latencySeconds == nil }
            if unmeasured.isEmpty {
                let fastest = pool.compactMap(\.state.latencySeconds).min()
                candidates = pool.filter { $0.state.latencySeconds == fastest }
            } else {
                candidates = unmeasured
            }
        }
        let chosen = candidates.count == 1 ? candidates[0] : Self.weighted(candidates, roll: roll())
        Self.take(&states[chosen.key, default: State()], chosen.deployment, estimatedTokens: estimatedTokens)
        return .chosen(chosen.deployment)
    }

    /// Nanoseconds as whole seconds, rounded up, at least 1 (for `Retry-After`).
    private static func wholeSeconds(_ nanoseconds: Int64) -> Int {
        max(1, Int((nanoseconds + 999_999_999) / 1_000_000_000))
    }

    private static func update<Result>(_ state: inout State, _ body: (inout State) -> Result) -> Result { body(&state) }

    /// Counts a call against the deployment: in flight, one request and its estimate under the caps.
    private static func take(_ state: inout State, _ deployment: Deployment, estimatedTokens: Int) {
        state.inFlight += 1
        if deployment.requestsPerMinute != nil { state.requestLevel -= 1 }
        if deployment.tokensPerMinute != nil { state.tokenLevel -= Double(estimatedTokens) }
    }

    /// Ends a call chosen by ``choose(from:strategy:tried:estimatedTokens:now:roll:)``:
    /// its latency when it got a first byte, its tokens in place of the estimate, and its
    /// failure, which may start a cooldown.
    ///
    /// A 429 cools the deployment down at once (the provider said so); other failures once
    /// more than `allowedFails` happened within a minute.
    public mutating func finished(
        _ deployment: Deployment, timeToFirstByteSeconds: Double?, tokensUsed: Int?, estimatedTokens: Int,
        failure: AttemptFailure?, settings: RouterSettings, now: Int64
    ) {
        Self.update(&states[deployment.key, default: State()]) { state in
            Self.record(
                &state, deployment, timeToFirstByteSeconds: timeToFirstByteSeconds, tokensUsed: tokensUsed,
                estimatedTokens: estimatedTokens, failure: failure, settings: settings, now: now)
        }
    }

    private static func record(
        _ state: inout State, _ deployment: Deployment, timeToFirstByteSeconds: Double?, tokensUsed: Int?,
        estimatedTokens: Int, failure: AttemptFailure?, settings: RouterSettings, now: Int64
    ) {
        state.inFlight = max(0, state.inFlight - 1)
        if let failure { state.failed[failure.label, default: 0] += 1 } else { state.succeeded += 1 }
        if failure == nil, let seconds = timeToFirstByteSeconds, seconds.isFinite, seconds >= 0 {
            state.latencySeconds = state.latencySeconds.map { $0 + Self.latencyWeight * (seconds - $0) } ?? seconds
        }
        if deployment.tokensPerMinute != nil, let tokensUsed {
            state.tokenLevel -= Double(tokensUsed - estimatedTokens)
        }
        if let failure, failure.countsAgainstDeployment {
            // A failing deployment is slow by any measure: latency-based routing would
            // otherwise keep preferring it as "unmeasured". Successes bring it back down.
            state.latencySeconds = max(state.latencySeconds ?? 0, Self.failureLatencySeconds)
            if now - state.failWindowStart >= Self.minute {
                state.failWindowStart = now
                state.fails = 0
            }
            state.fails += 1
            var coolNow = state.fails > settings.allowedFails
            if case .rateLimited = failure { coolNow = true }
            if coolNow, settings.cooldownSeconds > 0 {
                state.cooldownUntil = now + Int64(settings.cooldownSeconds * 1e9)
                state.fails = 0
                state.failWindowStart = now
            }
        }
    }

    /// Whether `deployment` is cooling down at `now`.
    public func isCoolingDown(_ deployment: Deployment, now: Int64) -> Bool {
        (states[deployment.key]?.cooldownUntil ?? 0) > now
    }

    private static func refill(_ state: inout State, _ deployment: Deployment, now: Int64) {
        let rpm = deployment.requestsPerMinute.map(Double.init)
        let tpm = deployment.tokensPerMinute.map(Double.init)
        guard rpm != nil || tpm != nil else { return }
        if !state.capsSeen {
            state.capsSeen = true
            state.requestLevel = rpm ?? 0
            state.tokenLevel = tpm ?? 0
            state.refilledAt = now
            return
        }
        let elapsed = Double(max(0, now - state.refilledAt)) / Double(Self.minute)
        state.refilledAt = max(state.refilledAt, now)
        if let rpm { state.requestLevel = min(rpm, state.requestLevel + rpm * elapsed) }
        if let tpm { state.tokenLevel = min(tpm, state.tokenLevel + tpm * elapsed) }
    }

    /// Nanoseconds until the deployment's caps have room for a call, or nil if they have now.
    /// A call larger than the whole `tpm` needs a full bucket rather than never running.
    private static func capWait(_ state: State, _ deployment: Deployment, estimatedTokens: Int) -> Int64? {
        var wait: Double = 0
        if let rpm = deployment.requestsPerMinute, state.requestLevel < 1 {
            wait = max(wait, (1 - state.requestLevel) / Double(rpm))
        }
        if let tpm = deployment.tokensPerMinute {
            let needed = min(Double(estimatedTokens), Double(tpm))
            if state.tokenLevel < needed { wait = max(wait, (needed - state.tokenLevel) / Double(tpm)) }
        }
        return wait > 0 ? Int64(wait * Double(Self.minute)) : nil
    }

    private static func weighted(_ candidates: [Candidate], roll: Double) -> Candidate {
        let total = candidates.reduce(0) { $0 + $1.deployment.weight }
        var remaining = Int(Double(total) * min(max(roll, 0), 0.999_999_999))
        for candidate in candidates {
            if remaining < candidate.deployment.weight { return candidate }
            remaining -= candidate.deployment.weight
        }
        return candidates[candidates.count - 1]
    }
}
