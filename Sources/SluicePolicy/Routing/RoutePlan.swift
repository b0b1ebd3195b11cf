/// The retry and fallback decisions for one call, as a value: after each failed attempt it
/// says whether to try again on the same alias (and after how long), move to a fallback
/// alias, or give up and pass the failure to the caller.
///
/// Each alias in the chain gets one attempt plus `numRetries` retries. Retryable failures
/// (429, 5xx, connect, timeout) use them up and then move to the alias's `fallbacks`; a
/// context-window or content-policy refusal moves straight to that kind's fallbacks; a
/// misconfigured deployment (401/403) moves to the general fallbacks; anything else ends
/// the call. No alias is tried twice, and a different model is only ever reached through
/// a configured fallback.
public struct RoutePlan: Sendable, Equatable {
    /// What the call does after a failed attempt.
    public enum Step: Sendable, Equatable {
        /// Try `alias` again after `delaySeconds`.
        case retry(alias: String, delaySeconds: Double)
        /// Try the fallback `alias` now.
        case fallback(alias: String)
        /// No attempt is left: the caller gets this failure.
        case giveUp
    }

    public let settings: RouterSettings
    /// The alias being tried now.
    public private(set) var alias: String
    /// Retries used on the current alias.
    public private(set) var retriesUsed = 0
    /// Every alias tried so far, the first one first.
    public private(set) var visited: [String]

    public init(alias: String, settings: RouterSettings) {
        self.alias = alias
        self.settings = settings
        visited = [alias]
    }

    /// The next step after the current attempt failed with `failure`. `roll` in `0..<1`
    /// places the backoff within its jitter range.
    public mutating func next(after failure: AttemptFailure, roll: Double) -> Step {
        if failure.isRetryable, retriesUsed < settings.numRetries {
            retriesUsed += 1
            return .retry(alias: alias, delaySeconds: backoff(retry: retriesUsed, failure: failure, roll: roll))
        }
        let table: [String: [String]]
        switch failure {
        case .contextWindowExceeded: table = settings.contextWindowFallbacks
        case .contentPolicy: table = settings.contentPolicyFallbacks
        case .rejected: return .giveUp
        default: table = settings.fallbacks
        }
        // Fallbacks are the first alias's: a fallback's own fallbacks are not chased, so
        // the chain is exactly what the operator wrote for the model the caller named.
        for candidate in table[visited[0]] ?? [] where !visited.contains(candidate) {
            visited.append(candidate)
            alias = candidate
            retriesUsed = 0
            return .fallback(alias: candidate)
        }
        return .giveUp
    }

    /// The moment the current alias has no deployment to offer (all cooling down or at
    /// their caps): its fallbacks, as for a retryable failure whose retries are spent.
    public mutating func nextWhenUnavailable() -> Step {
        retriesUsed = settings.numRetries
        return next(after: .serverError(status: 503), roll: 0)
    }

    /// Exponential from `retryBackoffSeconds`, capped, with equal jitter; never less than
    /// the provider's `Retry-After` when that is within the cap.
    func backoff(retry: Int, failure: AttemptFailure, roll: Double) -> Double {
        let exponential = min(
            settings.maxBackoffSeconds, settings.retryBackoffSeconds * Double(1 << min(retry - 1, 20)))
        var delay = exponential / 2 + exponential / 2 * min(max(roll, 0), 1)
        if case .rateLimited(let retryAfter?) = failure, retryAfter > delay {
            delay = min(retryAfter, settings.maxBackoffSeconds)
        }
        return delay
    }
}
