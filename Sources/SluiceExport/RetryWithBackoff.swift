/// How a run of retried posts ended.
public enum RetryOutcome: Sendable {
    case succeeded
    /// Every attempt failed; the last error.
    case gaveUp(attempts: Int, error: any Error)
    /// `stop` said to stop after a failure, before the attempts ran out.
    case stopped
}

/// Runs `operation` until it succeeds or `attempts` have failed, waiting `firstBackoff`
/// after the first failure and twice as long after each next one: the retry schedule of
/// every post Sluice sends on its own (exports, traces, alert webhooks).
///
/// - Parameters:
///   - stop: asked after each failure; true ends the run at once (shutdown began, the
///     caller will resend otherwise).
///   - retrying: told of each failure that will be retried, for logs.
public func retryWithBackoff(
    attempts: Int, firstBackoff: Duration, stop: () -> Bool = { false },
    retrying: (_ attempt: Int, _ error: any Error) -> Void = { _, _ in },
    _ operation: () async throws -> Void
) async -> RetryOutcome {
    var backoff = firstBackoff
    for attempt in 1...max(1, attempts) {
        do {
            try await operation()
            return .succeeded
        } catch {
            if stop() { return .stopped }
            guard attempt < attempts else { return .gaveUp(attempts: attempt, error: error) }
            retrying(attempt, error)
            // A cancelled wait ends early; the next attempt then sees the cancellation.
            try? await Task.sleep(for: backoff)
            backoff *= 2
        }
    }
    return .gaveUp(attempts: attempts, error: CancellationError())
}
