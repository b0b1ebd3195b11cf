import NIOCore
import NIOHTTP1
import SluiceAPI
import SluicePolicy

/// Steps 2–4 (identify, authorize, limit): who is calling, whether they may use the model
/// and this prompt, and whether every limit that applies still has room. Each denial names
/// its rule; an admitted call carries its reservation until ``Account`` settles it.
enum Authorize {
    /// An admitted call: shared (not copied) by the account, the routed call and each
    /// attempt's relay, and never changed after admission.
    final class Permit: Sendable {
        let request: OpenAIRequest
        let alias: ModelAlias
        let admission: Admission
        /// The policy that admitted the call settles it (and scrubs its answer), even if a
        /// reload replaced it since.
        let policy: ActivePolicy
        var engine: PolicyEngine { policy.engine }
        /// Metric handles for this call's alias and team, found once at admission.
        let metrics: AgentMetrics.CallHandles
        /// The API the caller speaks; answers and errors go back in it.
        let callerDialect: CallerDialect
        /// A Messages caller's own request: sent as it is (model swapped) to an Anthropic
        /// deployment, so nothing is lost in translation there.
        let messagesRequest: JSONValue?
        /// The guardrails in scope that check the answer too (see ``Guard/checkCompletion``).
        let completionGuardrails: [Guardrail]

        init(
            request: OpenAIRequest, alias: ModelAlias, admission: Admission, policy: ActivePolicy,
            metrics: AgentMetrics.CallHandles, callerDialect: CallerDialect, messagesRequest: JSONValue?,
            completionGuardrails: [Guardrail] = []
        ) {
            self.completionGuardrails = completionGuardrails
            self.request = request
            self.alias = alias
            self.admission = admission
            self.policy = policy
            self.metrics = metrics
            self.callerDialect = callerDialect
            self.messagesRequest = messagesRequest
        }
    }

    /// What went wrong, and as far as the decision got (for the audit line).
    struct Refusal: Error {
        let error: OpenAIError
        var denial: Denial?
        var caller: Caller?
        var alias: String?
        var headers: [(String, String)] = []
    }

    /// A call that passed identity, model rules and prompt filters, not yet admitted: no
    /// limit has reserved anything for it. Guardrails are asked here, so a call they refuse
    /// (or that waits on them) holds no reservation.
    struct Candidate: Sendable {
        let caller: Caller
        let request: OpenAIRequest
        let alias: ModelAlias
        let policy: ActivePolicy
        let callerDialect: CallerDialect
        let messagesRequest: JSONValue?
        /// The guardrails whose scopes include the caller, found once: asked about the
        /// prompt, and (those that check answers) about the answer.
        let guardrails: [Guardrail]
    }

    /// ``screen(endpoint:headers:body:runtime:callerDialect:messagesRequest:)`` then
    /// ``admit(_:runtime:)``: for a call no guardrail checks.
    static func check(
        endpoint: OpenAIEndpoint, headers: HTTPHeaders, peer: SocketAddress? = nil, body: [UInt8],
        runtime: AgentRuntime, callerDialect: CallerDialect = .openAI, messagesRequest: JSONValue? = nil
    ) -> Result<Permit, Refusal> {
        screen(
            endpoint: endpoint, headers: headers, peer: peer, body: body, runtime: runtime,
            callerDialect: callerDialect, messagesRequest: messagesRequest
        ).flatMap { admit($0, runtime: runtime) }
    }

    /// Steps 2–3: who is calling, whether the body is a valid call, whether they may use the
    /// model, and whether a prompt filter refuses it.
    /// - Parameters:
    ///   - callerDialect: the API the caller speaks (Anthropic's for `/v1/messages`).
    ///   - messagesRequest: a Messages caller's own request, kept for Anthropic deployments.
    ///   - peer: the connection's remote address: trusted identity headers count only from
    ///     the configured sources.
    static func screen(
        endpoint: OpenAIEndpoint, headers: HTTPHeaders, peer: SocketAddress?, body: [UInt8], runtime: AgentRuntime,
        callerDialect: CallerDialect = .openAI, messagesRequest: JSONValue? = nil
    ) -> Result<Candidate, Refusal> {
        let now = runtime.now()
        if let refusal = Gate.check(runtime: runtime, now: now) { return .failure(refusal) }
        let policy = runtime.activePolicy
        let engine = policy.engine
        let caller: Caller
        switch Identify.caller(headers: headers, peer: peer, runtime: runtime, engine: engine, now: now) {
        case .success(let found): caller = found
        case .failure(let denial): return .failure(refusal(denial))
        }
        let request: OpenAIRequest
        do {
            request = try OpenAIRequest(endpoint: endpoint, body: body, maxDepth: runtime.settings.maxJSONDepth)
        } catch {
            return .failure(
                Refusal(
                    error: OpenAIError(
                        status: 400, message: error.message, type: "invalid_request_error",
                        code: error.code, param: error.param), caller: caller))
        }
        let alias: ModelAlias
        switch engine.authorize(caller, model: request.model) {
        case .success(let found): alias = found
        case .failure(let denial): return .failure(refusal(denial, caller: caller, param: "model"))
        }
        if engine.hasPromptFilters(for: caller),
            let denial = engine.screen(caller, visitingTexts: { request.visitPromptTexts($0) })
        {
            return .failure(refusal(denial, caller: caller, alias: alias.name, param: "messages"))
        }
        return .success(
            Candidate(
                caller: caller, request: request, alias: alias, policy: policy, callerDialect: callerDialect,
                messagesRequest: messagesRequest, guardrails: engine.guardrails(for: caller)))
    }

    /// Step 4 (limit): whether every limit that applies still has room; an admitted call
    /// carries its reservation from here. `regate` checks the gate again, for a call that
    /// waited on a guardrail: a stale policy or a spool failure since is honoured.
    static func admit(_ candidate: Candidate, runtime: AgentRuntime, regate: Bool = false) -> Result<Permit, Refusal> {
        let now = runtime.now()
        if regate, let refusal = Gate.check(runtime: runtime, now: now) { return .failure(refusal) }
        let caller = candidate.caller
        let alias = candidate.alias
        let request = candidate.request
        let promptTokens = TokenUsage.estimate(promptBytes: request.body.count, completionBytes: 0).promptTokens
        switch candidate.policy.engine.admit(
            caller, alias: alias, endUser: caller.vouchedUser ?? request.user, promptTokens: promptTokens,
            maxOutputTokens: request.maxOutputTokens, now: now)
        {
        case .success(let admission):
            return .success(
                Permit(
                    request: request, alias: alias, admission: admission, policy: candidate.policy,
                    metrics: runtime.metrics.allowed(alias: alias.name, team: caller.team),
                    callerDialect: candidate.callerDialect, messagesRequest: candidate.messagesRequest,
                    completionGuardrails: candidate.guardrails.filter { $0.completionCheck != .off }))
        case .failure(let denial):
            return .failure(refusal(denial, caller: caller, alias: alias.name, param: nil))
        }
    }

    static func refusal(_ denial: Denial, caller: Caller? = nil, alias: String? = nil, param: String? = nil) -> Refusal
    {
        var headers = RateLimitHeaders.fields(for: denial.rateLimits)
        if let retry = denial.retryAfterSeconds { headers.append(("retry-after", String(retry))) }
        let error = OpenAIError(
            status: denial.status, message: denial.message, type: denial.type, code: denial.reason.rawValue,
            param: denial.status == 404 || denial.reason == .modelNotAllowed ? "model" : param)
        return Refusal(error: error, denial: denial, caller: caller, alias: alias, headers: headers)
    }
}
