import NIOCore
import SluiceAPI
import SluicePolicy
import Synchronization

/// Step 8 (account): the one place a call ends. Each request gets one `Account`; when the
/// policy admits the call, ``admit(_:)`` hands it the permit, and with it the limiter
/// reservation, which from then on belongs to the account alone.
///
/// ``settle(_:)`` turns the call's ``CallOutcome`` into cost, settles the reservation (or
/// gives it back when the call used nothing), and writes the spool line, one audit line
/// and the metrics. It takes effect once: a second settlement is ignored and counted. An
/// account released with an admitted call never settled gives the reservation back and is
/// counted too. So a reservation can be neither settled twice nor lost, whatever path a
/// call takes; `sluice_calls_settled_twice_total` and `sluice_calls_unsettled_total` say
/// whether a path ever tried.
/// What an account needs of an admitted call to settle it: a metered call's
/// ``Authorize/Permit`` or a pass-through's admission give it one.
struct AdmittedCall: Sendable {
    let admission: Admission
    /// The policy that admitted the call settles it, even if a reload replaced it since.
    let policy: ActivePolicy
    let aliasName: String
    let endUser: String?
    let stream: Bool
    let metrics: AgentMetrics.CallHandles
}

final class Account: Sendable {
    let runtime: AgentRuntime
    let requestID: String
    let method: String
    let path: String
    let startedAt: NIODeadline
    let startedAtWall: Int64
    /// Set when the call is traced: its spans go out when it settles.
    let trace: CallTrace?
    private let state = Mutex<(permit: AdmittedCall?, settled: Bool)>((nil, false))
    /// What the guardrails decided, for the audit line (empty when none were asked).
    private let guardrails = Mutex<[GuardrailDecision]>([])

    init(
        runtime: AgentRuntime, requestID: String, method: String, path: String, startedAt: NIODeadline,
        startedAtWall: Int64, trace: CallTrace? = nil
    ) {
        self.trace = trace
        self.runtime = runtime
        self.requestID = requestID
        self.method = method
        self.path = path
        self.startedAt = startedAt
        self.startedAtWall = startedAtWall
    }

    deinit {
        let (permit, settled) = state.withLock { $0 }
        guard let permit, !settled else { return }
        // A path that forgot to settle: the budget gets its reservation back all the same.
        permit.policy.engine.release(permit.admission, now: runtime.now())
        runtime.metrics.settlementMissed()
    }

    /// The call was admitted under `permit`: its reservation is now this account's to settle.
    func admit(_ permit: Authorize.Permit) {
        admit(
            AdmittedCall(
                admission: permit.admission, policy: permit.policy, aliasName: permit.alias.name,
                endUser: permit.admission.caller.vouchedUser ?? permit.request.user, stream: permit.request.stream,
                metrics: permit.metrics))
    }

    /// The call was admitted: its reservation is now this account's to settle.
    func admit(_ call: AdmittedCall) {
        state.withLock { $0.permit = call }
    }

    /// The guardrails' decisions on this call, in the order they were asked (the prompt's,
    /// then a held answer's).
    func noteGuardrails(_ decisions: [GuardrailDecision]) {
        guard !decisions.isEmpty else { return }
        guardrails.withLock { $0 += decisions }
        for decision in decisions { runtime.metrics.guardrailDecided(decision) }
    }

    /// The verdicts on an answer checked after it was delivered: their own audit line, with
    /// this call's request id and identity, after the call's. Nothing is counted again.
    func noteCompletionCheck(_ decisions: [GuardrailDecision], status: Int) {
        guard !decisions.isEmpty else { return }
        for decision in decisions { runtime.metrics.guardrailDecided(decision) }
        let call = state.withLock { $0.permit }
        var record = AuditRecord(
            timestampNanoseconds: runtime.now(), requestID: requestID, identity: runtime.identity, method: method,
            path: path, status: status, latencySeconds: Double((NIODeadline.now() - startedAt).nanoseconds) / 1e9)
        let caller = call?.admission.caller
        record.keyID = caller?.keyID
        record.team = caller?.team
        record.project = caller?.project
        record.endUser = call?.endUser
        record.alias = call?.aliasName
        record.stream = call?.stream ?? false
        record.rule = decisions.lazy.filter { $0.verdict == .denied || $0.verdict == .modified }.first.map {
            "guardrail \"\($0.guardrail)\""
        }
        record.guardrails = decisions
        runtime.audit.write(record.jsonLine)
    }

    /// Ends the call: settlement, spool line, audit line and metrics, exactly once.
    func settle(_ outcome: CallOutcome) {
        let (first, permit) = state.withLock { state -> (Bool, AdmittedCall?) in
            defer { state.settled = true }
            return (!state.settled, state.permit)
        }
        guard first else {
            runtime.metrics.settledTwice()
            return
        }
        let latency = NIODeadline.now() - startedAt
        var record = AuditRecord(
            timestampNanoseconds: startedAtWall, requestID: requestID, identity: runtime.identity,
            method: method, path: path, status: outcome.status,
            latencySeconds: Double(latency.nanoseconds) / 1e9)
        let refusal = outcome.refusal
        let caller = permit?.admission.caller ?? refusal?.caller
        let usage = outcome.usage
        record.keyID = caller?.keyID
        record.team = caller?.team
        record.project = caller?.project
        record.endUser = permit?.endUser
        record.rule = refusal?.denial?.rule
        record.alias = permit?.aliasName ?? refusal?.alias
        record.upstreamModel = outcome.deployment?.upstreamModel
        record.deployment = outcome.deployment.map { $0.endpoint.description }
        record.servedAlias = outcome.servedBy?.name
        record.attempts = outcome.attempts
        record.httpVersion = outcome.httpVersion
        record.stream = permit?.stream ?? false
        record.streamCompleted = outcome.streamCompleted
        record.usage = usage
        // Settling prices the call: the engine that admitted it is the one source of cost,
        // for the budgets, the audit line and the metrics alike.
        var cost: Cost?
        if let permit {
            let now = runtime.now()
            if let usage {
                cost = permit.policy.engine.settle(
                    permit.admission, promptTokens: usage.promptTokens, completionTokens: usage.completionTokens,
                    cachedPromptTokens: usage.cachedPromptTokens, cacheCreationTokens: usage.cacheCreationTokens,
                    reasoningTokens: usage.reasoningTokens, servedBy: outcome.servedBy?.name, now: now)
                // Never counted as $0 in silence: an unpriced alias is flagged for the operator.
                record.priceMissing = cost == nil
            } else {
                permit.policy.engine.release(permit.admission, now: now)
            }
        }
        record.costUSD = cost?.usd
        if let spool = runtime.spool,
            let entry = SpoolEntry.record(
                for: caller, permit: permit, refusal: refusal, servedBy: outcome.servedBy?.name, usage: usage,
                cost: cost, service: runtime.identity.qualifiedName, at: startedAtWall)
        {
            spool.append(entry)
        }
        record.timeToFirstByteSeconds = outcome.timeToFirstByte.map { Double($0.nanoseconds) / 1e9 }
        record.errorCode = outcome.errorCode
        record.guardrails = guardrails.withLock { $0 }
        runtime.audit.write(record.jsonLine)
        if let trace, let tracer = runtime.tracer {
            tracer.finish(
                trace, record: record, deployment: outcome.deployment, admitted: permit != nil,
                endNanoseconds: startedAtWall + latency.nanoseconds)
        }

        if let permit {
            runtime.metrics.completed(
                permit.metrics, status: outcome.status, usage: usage, cost: cost,
                latencyNanoseconds: latency.nanoseconds,
                timeToFirstByteNanoseconds: outcome.timeToFirstByte?.nanoseconds, errorCode: outcome.errorCode)
        }
    }
}
