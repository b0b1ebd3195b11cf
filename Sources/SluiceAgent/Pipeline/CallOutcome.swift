import NIOCore
import SluiceAPI
import SluicePolicy

/// How one call ended, whichever way it did: answered, streamed to the end, cut by the
/// provider or the caller, timed out, refused before forwarding, retried and given up, or
/// drained at shutdown. ``Account/settle(_:)`` turns it into the reservation's settlement,
/// the spool line, the audit line and the metrics.
struct CallOutcome {
    /// The status the caller got (499 when the caller went away first).
    var status: Int
    /// Why the call was refused before it was admitted, as far as the decision got.
    var refusal: Authorize.Refusal?
    /// The deployment that served (or failed) the last attempt.
    var deployment: Deployment?
    /// The alias that answered, when it is a fallback of the caller's: its prices apply,
    /// and the audit line names it.
    var servedBy: ModelAlias?
    /// Upstream attempts the call took (retries and fallbacks included).
    var attempts: Int?
    var httpVersion: String?
    /// What the call used; nil when it used nothing, which gives the reservation back.
    var usage: TokenUsage?
    var streamCompleted: Bool?
    var timeToFirstByte: TimeAmount?
    var errorCode: String?

    init(
        status: Int, refusal: Authorize.Refusal? = nil, deployment: Deployment? = nil, servedBy: ModelAlias? = nil,
        attempts: Int? = nil, httpVersion: String? = nil, usage: TokenUsage? = nil, streamCompleted: Bool? = nil,
        timeToFirstByte: TimeAmount? = nil, errorCode: String? = nil
    ) {
        self.status = status
        self.refusal = refusal
        self.deployment = deployment
        self.servedBy = servedBy
        self.attempts = attempts
        self.httpVersion = httpVersion
        self.usage = usage
        self.streamCompleted = streamCompleted
        self.timeToFirstByte = timeToFirstByte
        self.errorCode = errorCode
    }
}
