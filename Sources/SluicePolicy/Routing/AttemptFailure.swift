/// Why one attempt at an upstream call failed, as far as routing cares.
public enum AttemptFailure: Sendable, Equatable {
    /// No connection, TLS failed, or the connection broke before an answer began.
    case connect
    /// No first byte within the deployment's timeout.
    case timeout
    /// HTTP 429. `retryAfterSeconds` is the provider's `Retry-After`, when it gave one.
    case rateLimited(retryAfterSeconds: Double?)
    /// HTTP 5xx, including Anthropic's 529 `overloaded_error`, or an error event inside a
    /// stream that began with 200.
    case serverError(status: Int)
    /// The provider refused the credentials (401/403): the deployment is misconfigured.
    case deploymentRefused(status: Int)
    /// The prompt does not fit the model's context window.
    case contextWindowExceeded
    /// The provider refused the prompt under its content policy.
    case contentPolicy
    /// Anything else (400, 404, 422…): the request itself is at fault, so another attempt
    /// would fail alike.
    case rejected(status: Int)

    /// Worth another attempt on the same alias after a backoff.
    public var isRetryable: Bool {
        switch self {
        case .connect, .timeout, .rateLimited, .serverError: true
        default: false
        }
    }

    /// Counts against the deployment's health (towards a cooldown): the deployment, not
    /// the request, was at fault.
    public var countsAgainstDeployment: Bool {
        switch self {
        case .connect, .timeout, .rateLimited, .serverError, .deploymentRefused: true
        default: false
        }
    }

    /// The label metrics and audit lines use.
    public var label: String {
        switch self {
        case .connect: "connect"
        case .timeout: "timeout"
        case .rateLimited: "rate_limited"
        case .serverError: "server_error"
        case .deploymentRefused: "deployment_refused"
        case .contextWindowExceeded: "context_window_exceeded"
        case .contentPolicy: "content_policy"
        case .rejected: "rejected"
        }
    }
}
