/// An external policy engine a call's prompt is sent to before it is forwarded: it answers
/// allow, deny (with a reason) or modify (masked messages). See `docs/guardrails.md` for the
/// exchange.
///
/// The engine only says which guardrails apply to a caller and whether a call is sampled;
/// the agent's guard step makes the HTTP call.
public struct Guardrail: Sendable {
    /// What a call gets when the guardrail cannot give a verdict (timeout, connection
    /// refused, an error status, an answer that is not a verdict).
    public enum FailureMode: String, Sendable, CaseIterable {
        /// The call goes on unchecked; the audit line says the guardrail failed open.
        case open
        /// The call is refused with 503 `guardrail_unavailable`.
        case closed
    }

    /// Whether the answer is checked too, and how.
    public enum CompletionCheck: String, Sendable, CaseIterable {
        /// Only the prompt.
        case off
        /// After the answer reached the caller (streams: once they end); the verdict goes
        /// to its own audit line and the metrics, and cannot take the answer back.
        case after
        /// The answer is held until the guardrail allows it (a stream reaches the caller
        /// only once it is whole and checked); a deny replaces it with 403.
        case hold
    }

    public var name: String
    /// Where verdicts are asked for: scheme, host, port, and the whole path in `basePath`.
    public var endpoint: Endpoint
    /// How long the agent waits for a verdict, connection included.
    public var timeoutMilliseconds: Int
    public var failureMode: FailureMode
    /// Percentage of the calls in scope that are checked (0–100).
    public var samplePercent: Int
    public var completionCheck: CompletionCheck = .off
    public var scopes: CallerScopes
    /// Sent as `Authorization: Bearer …` to the guardrail, never to anyone else.
    public var credential: Secret?
    /// Why this guardrail cannot be asked at all on this agent (its credential is not
    /// mounted here): every call it checks fails in its failure mode, never silently skips.
    public var unusableReason: String?

    public init(
        name: String, endpoint: Endpoint, timeoutMilliseconds: Int = 1000, failureMode: FailureMode = .closed,
        samplePercent: Int = 100, scopes: CallerScopes = CallerScopes(), credential: Secret? = nil,
        unusableReason: String? = nil
    ) {
        self.name = name
        self.endpoint = endpoint
        self.timeoutMilliseconds = timeoutMilliseconds
        self.failureMode = failureMode
        self.samplePercent = samplePercent
        self.scopes = scopes
        self.credential = credential
        self.unusableReason = unusableReason
    }

    /// Whether a call is checked, given a roll uniform in `0..<100`: every call at 100 %,
    /// none at 0 %.
    public func samples(roll: Double) -> Bool {
        samplePercent >= 100 || roll < Double(samplePercent)
    }
}

/// What one guardrail decided about one call, for the audit line, the metrics and the answer.
public struct GuardrailDecision: Sendable, Equatable {
    /// What was checked.
    public enum Stage: String, Sendable {
        case prompt, completion
    }

    public enum Verdict: String, Sendable, CaseIterable {
        case allowed = "allow"
        case denied = "deny"
        case modified = "modify"
        /// Not sampled this time.
        case skipped = "skip"
        /// No verdict; the call went on unchecked.
        case failedOpen = "failed_open"
        /// No verdict; the call was refused.
        case failedClosed = "failed_closed"
    }

    public var guardrail: String
    public var verdict: Verdict
    /// The guardrail's reason for a deny or modify, or what went wrong for a failure.
    public var reason: String?
    /// How long the exchange took; nil when the guardrail was not asked.
    public var milliseconds: Double?
    public var stage: Stage

    public init(
        guardrail: String, verdict: Verdict, reason: String? = nil, milliseconds: Double? = nil, stage: Stage = .prompt
    ) {
        self.guardrail = guardrail
        self.verdict = verdict
        self.reason = reason
        self.milliseconds = milliseconds
        self.stage = stage
    }

    /// The refusal this decision means for the call, if it means one. At the completion
    /// stage a modify is one too: an answer held for checking is never changed, only
    /// delivered or refused.
    public var denial: Denial? {
        let what = stage == .prompt ? "prompt" : "answer"
        switch verdict {
        case .denied:
            let why = reason.map { ": \($0)" } ?? ""
            return Denial(
                .guardrailBlocked, "the \(what) was blocked by the guardrail \"\(guardrail)\"\(why)",
                rule: "guardrail \"\(guardrail)\"")
        case .modified where stage == .completion:
            let why = reason.map { ": \($0)" } ?? ""
            return Denial(
                .guardrailBlocked,
                "the answer was blocked by the guardrail \"\(guardrail)\", which asked to change it\(why)",
                rule: "guardrail \"\(guardrail)\"")
        case .failedClosed:
            let why = reason.map { ": \($0)" } ?? ""
            return Denial(
                .guardrailUnavailable,
                "the guardrail \"\(guardrail)\" gave no verdict and fails closed\(why)",
                rule: "guardrail \"\(guardrail)\"", retryAfterSeconds: 1)
        case .allowed, .modified, .skipped, .failedOpen:
            return nil
        }
    }
}
