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

    /// One exchange, bounded by the guardrail's timeout from the first byte sent to the
    /// last read (connecting included).
    private static func ask(
        _ guardrail: Guardrail, candidate: Authorize.Candidate, messages: [GuardrailMessage], requestID: String,
        runtime: AgentRuntime, on eventLoop: any EventLoop
    ) async -> Result<GuardrailVerdict, GuardrailExchangeError> {
        if let reason = guardrail.unusableReason { return .failure(GuardrailExchangeError(reason)) }
        let caller = candidate.caller
        let body = GuardrailExchange.requestBody(
            guardrail: guardrail.name, requestID: requestID, model: candidate.alias.name,
            endpoint: candidate.request.endpoint,
            caller: GuardrailCaller(
                keyID: caller.keyID, team: caller.team, project: caller.project, service: caller.service,
                endUser: candidate.request.user),
            messages: messages)
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
        let answer: Result<FetchedResponse, FetchFailure>
        do {
            answer = .success(
                try await runtime.upstream.fetch(
                    request, to: origin, on: eventLoop, limit: maximumAnswerBytes, subject: "the guardrail",
                    deadline: timeout))
        } catch {
            answer = .failure(error)
        }
        switch answer {
        case .failure(let failure):
            return .failure(GuardrailExchangeError(failure.message))
        case .success(let response):
            guard (200..<300).contains(response.status) else {
                return .failure(GuardrailExchangeError("it answered HTTP \(response.status)"))
            }
            return Result { () throws(GuardrailExchangeError) in
                try GuardrailExchange.verdict(from: response.body, sent: messages)
            }
        }
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
                callerDialect: candidate.callerDialect, messagesRequest: nil)
            return .success((rewritten, value))
        } catch {
            return .failure(error)
        }
    }
}
