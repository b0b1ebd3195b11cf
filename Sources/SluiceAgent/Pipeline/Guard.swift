import NIOCore
import SluiceAPI
import SluiceHTTP2
import SluicePolicy

/// Step 3b (guard): the external guardrails whose scopes include the caller, asked in
/// policy order after the prompt filters and before any limit reserves anything, so a call
/// a guardrail refuses (or waits on) holds no token or budget reservation. Each gets the
/// normalised prompt (see ``GuardrailPrompt``) and the caller's ids, never its key; a
/// modify feeds the next guardrail and the call. Without a verdict in time, a guardrail
/// fails open (the call goes on) or closed (503 `guardrail_unavailable`).
enum Guard {
    /// What the guardrails made of a call.
    struct Outcome: Sendable {
        var decisions: [GuardrailDecision] = []
        /// The call as it goes on (rewritten when a guardrail modified it), or the refusal.
        var result: Result<Authorize.Candidate, Authorize.Refusal>
    }

    /// The most bytes of a guardrail's answer read.
    static let maximumAnswerBytes = 1 << 20

    static func run(
        _ guardrails: [Guardrail], candidate: Authorize.Candidate, requestID: String, runtime: AgentRuntime,
        on eventLoop: any EventLoop
    ) async -> Outcome {
        var outcome = Outcome(result: .success(candidate))
        var current = candidate
        // The request already passed the same parser, so this holds a value in practice;
        // if it did not, every guardrail fails in its own mode rather than being skipped.
        var body = try? JSONValue.parseObject(candidate.request.body)
        for guardrail in guardrails {
            if Task.isCancelled { break }
            guard guardrail.samples(roll: guardrail.samplePercent >= 100 ? 0 : Double.random(in: 0..<100)) else {
                outcome.decisions.append(GuardrailDecision(guardrail: guardrail.name, verdict: .skipped))
                continue
            }
            let started = NIODeadline.now()
            func milliseconds() -> Double { Double((NIODeadline.now() - started).nanoseconds) / 1e6 }
            func failed(_ why: String) -> GuardrailDecision {
                GuardrailDecision(
                    guardrail: guardrail.name, verdict: guardrail.failureMode == .closed ? .failedClosed : .failedOpen,
                    reason: why, milliseconds: milliseconds())
            }
            guard let parsed = body else {
                outcome.decisions.append(failed("the call's body could not be read for it"))
                if let denial = outcome.decisions.last?.denial {
                    outcome.result = .failure(
                        Authorize.refusal(denial, caller: current.caller, alias: current.alias.name, param: "messages"))
                    return outcome
                }
                continue
            }
            let messages = GuardrailPrompt.messages(of: parsed, endpoint: current.request.endpoint)
            let decision: GuardrailDecision
            switch await ask(guardrail, candidate: current, messages: messages, requestID: requestID, runtime: runtime,
                on: eventLoop)
            {
            case .failure(let failure):
                decision = failed(failure.message)
            case .success(.allow):
                decision = GuardrailDecision(guardrail: guardrail.name, verdict: .allowed, milliseconds: milliseconds())
            case .success(.deny(let reason)):
                decision = GuardrailDecision(
                    guardrail: guardrail.name, verdict: .denied, reason: reason, milliseconds: milliseconds())
            case .success(.modify(let replacement, let reason)):
                switch rewrite(current, body: parsed, with: replacement, runtime: runtime) {
                case .success(let (rewritten, value)):
                    current = rewritten
                    body = value
                    decision = GuardrailDecision(
                        guardrail: guardrail.name, verdict: .modified, reason: reason, milliseconds: milliseconds())
                case .failure(let failure):
                    decision = failed(failure.message)
                }
            }
            outcome.decisions.append(decision)
            if let denial = decision.denial {
                outcome.result = .failure(
                    Authorize.refusal(denial, caller: current.caller, alias: current.alias.name, param: "messages"))
                return outcome
            }
        }
        if Task.isCancelled {
            outcome.result = .failure(
                Authorize.Refusal(
                    error: OpenAIError(
                        status: 499, message: "the caller went away", type: "invalid_request_error",
                        code: "client_disconnected"), caller: current.caller, alias: current.alias.name))
            return outcome
        }
        outcome.result = .success(current)
        return outcome
    }

    /// The prompt stage's exchange with one guardrail.
    private static func ask(
        _ guardrail: Guardrail, candidate: Authorize.Candidate, messages: [GuardrailMessage], requestID: String,
        runtime: AgentRuntime, on eventLoop: any EventLoop
    ) async -> Result<GuardrailVerdict, GuardrailExchangeError> {
        let body = GuardrailExchange.requestBody(
            guardrail: guardrail.name, requestID: requestID, model: candidate.alias.name,
            endpoint: candidate.request.endpoint,
            caller: caller(candidate.caller, endUser: candidate.caller.vouchedUser ?? candidate.request.user),
            messages: messages)
        return await exchange(guardrail, body: body, requestID: requestID, runtime: runtime, on: eventLoop)
            .flatMap { answer in
                Result { () throws(GuardrailExchangeError) in
                    try GuardrailExchange.verdict(from: answer, sent: messages)
                }
            }
    }

    private static func caller(_ caller: Caller, endUser: String?) -> GuardrailCaller {
        GuardrailCaller(
            keyID: caller.keyID, team: caller.team, project: caller.project, service: caller.service,
            endUser: endUser)
    }

    /// One exchange, bounded by the guardrail's timeout from the first byte sent to the
    /// last read (connecting included): the answer's body, or why there is none.
    private static func exchange(
        _ guardrail: Guardrail, body: [UInt8], requestID: String, runtime: AgentRuntime, on eventLoop: any EventLoop
    ) async -> Result<[UInt8], GuardrailExchangeError> {
        if let reason = guardrail.unusableReason { return .failure(GuardrailExchangeError(reason)) }
        var headers: [(name: String, value: String)] = [
            ("content-type", "application/json"), ("accept", "application/json"), ("user-agent", "sluice-agent/0.1"),
            ("x-request-id", requestID),
        ]
        if let credential = guardrail.credential { headers.append(("authorization", "Bearer " + credential.reveal())) }
        let timeout = TimeAmount.milliseconds(Int64(guardrail.timeoutMilliseconds))
        let endpoint = guardrail.endpoint
        let request = UpstreamRequest(
            method: "POST", path: endpoint.basePath.isEmpty ? "/" : endpoint.basePath, headers: headers,
            body: ByteBuffer(bytes: body), firstByteTimeout: timeout, idleTimeout: timeout)
        let origin = UpstreamOrigin(
            scheme: endpoint.scheme == .https ? .https : .http, host: endpoint.host, port: endpoint.port)
        let response: FetchedResponse
        do {
            response = try await runtime.upstream.fetch(
                request, to: origin, on: eventLoop, limit: maximumAnswerBytes, subject: "the guardrail",
                deadline: timeout)
        } catch {
            return .failure(GuardrailExchangeError(error.message))
        }
        guard (200..<300).contains(response.status) else {
            return .failure(GuardrailExchangeError("it answered HTTP \(response.status)"))
        }
        return .success(response.body)
    }

    // MARK: - Completion stage

    /// Asks the guardrails that check completions about the answer's `text`, in policy order,
    /// until one denies or fails closed. A modify at this stage cannot be applied to an
    /// answer: it is recorded as such, and a held answer is refused for it.
    static func checkCompletion(
        _ guardrails: [Guardrail], permit: Authorize.Permit, text: String, truncated: Bool, requestID: String,
        runtime: AgentRuntime, on eventLoop: any EventLoop
    ) async -> [GuardrailDecision] {
        let messages =
            (try? JSONValue.parseObject(permit.request.body)).map {
                GuardrailPrompt.messages(of: $0, endpoint: permit.request.endpoint)
            } ?? []
        var decisions: [GuardrailDecision] = []
        for guardrail in guardrails {
            if Task.isCancelled { break }
            let name = guardrail.name
            guard guardrail.samples(roll: guardrail.samplePercent >= 100 ? 0 : Double.random(in: 0..<100)) else {
                decisions.append(GuardrailDecision(guardrail: name, verdict: .skipped, stage: .completion))
                continue
            }
            let started = NIODeadline.now()
            let body = GuardrailExchange.requestBody(
                guardrail: name, requestID: requestID, model: permit.alias.name, endpoint: permit.request.endpoint,
                caller: caller(
                    permit.admission.caller, endUser: permit.admission.caller.vouchedUser ?? permit.request.user),
                messages: messages,
                completion: (text: text, truncated: truncated))
            let answer = await exchange(guardrail, body: body, requestID: requestID, runtime: runtime, on: eventLoop)
                .flatMap { answer in
                    Result { () throws(GuardrailExchangeError) in
                        try GuardrailExchange.verdict(from: answer, sent: nil)
                    }
                }
            let milliseconds = Double((NIODeadline.now() - started).nanoseconds) / 1e6
            let decision: GuardrailDecision
            switch answer {
            case .success(.allow):
                decision = GuardrailDecision(
                    guardrail: name, verdict: .allowed, milliseconds: milliseconds, stage: .completion)
            case .success(.deny(let reason)):
                decision = GuardrailDecision(
                    guardrail: name, verdict: .denied, reason: reason, milliseconds: milliseconds, stage: .completion)
            case .success(.modify(_, let reason)):
                decision = GuardrailDecision(
                    guardrail: name, verdict: .modified, reason: reason, milliseconds: milliseconds, stage: .completion)
            case .failure(let failure):
                decision = GuardrailDecision(
                    guardrail: name, verdict: guardrail.failureMode == .closed ? .failedClosed : .failedOpen,
                    reason: failure.message, milliseconds: milliseconds, stage: .completion)
            }
            decisions.append(decision)
            if decision.verdict == .denied || decision.verdict == .failedClosed || decision.verdict == .modified {
                break
            }
        }
        return decisions
    }

    /// The call with a guardrail's messages in place of its own, validated again as a new
    /// body. A Messages caller's own request is no longer sent as it is: the rewritten call
    /// is translated like any other.
    private static func rewrite(
        _ candidate: Authorize.Candidate, body: JSONValue, with messages: [GuardrailMessage], runtime: AgentRuntime
    ) -> Result<(Authorize.Candidate, JSONValue), GuardrailExchangeError> {
        do throws(GuardrailExchangeError) {
            let value = try GuardrailPrompt.rewrite(body, endpoint: candidate.request.endpoint, with: messages)
            let request: OpenAIRequest
            do {
                request = try OpenAIRequest(
                    endpoint: candidate.request.endpoint, body: value.bytes, maxDepth: runtime.settings.maxJSONDepth)
            } catch {
                throw GuardrailExchangeError("the modified call is not valid: \(error.message)")
            }
            let rewritten = Authorize.Candidate(
                caller: candidate.caller, request: request, alias: candidate.alias, policy: candidate.policy,
                callerDialect: candidate.callerDialect, messagesRequest: nil, guardrails: candidate.guardrails)
            return .success((rewritten, value))
        } catch {
            return .failure(error)
        }
    }
}
