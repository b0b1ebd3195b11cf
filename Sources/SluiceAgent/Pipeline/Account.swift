import NIOCore
import SluiceAPI
import SluicePolicy

/// Step 8 (account): turns what a call used into cost, settles its reservation, and writes
/// one audit line and the metrics. Tokens come from the provider's usage block; an estimate
/// is used only when it is absent. A call that used nothing gives its reservation back.
struct Account {
    let runtime: AgentRuntime
    let requestID: String
    let method: String
    let path: String
    let startedAt: NIODeadline
    let startedAtWall: Int64

    /// - Parameters:
    ///   - servedBy: the alias that answered, when it is a fallback of the caller's: its
    ///     prices apply, and the audit line names it.
    ///   - attempts: upstream attempts the call took (retries and fallbacks included).
    func record(status: Int, permit: Authorize.Permit? = nil, refusal: Authorize.Refusal? = nil, deployment: Deployment? = nil,
                servedBy: ModelAlias? = nil, attempts: Int? = nil, httpVersion: String? = nil, usage: TokenUsage? = nil, streamCompleted: Bool? = nil, timeToFirstByte: TimeAmount? = nil,
                errorCode: String? = nil) {
        let latency = NIODeadline.now() - startedAt
        var record = AuditRecord(
            timestampNanoseconds: startedAtWall, requestID: requestID, identity: runtime.identity,
            method: method, path: path, status: status,
            latencySeconds: Double(latency.nanoseconds) / 1e9)
        let caller = permit?.admission.caller ?? refusal?.caller
        record.keyID = caller?.keyID
        record.team = caller?.team
        record.project = caller?.project
        record.endUser = permit?.request.user
        record.rule = refusal?.denial?.rule
        record.alias = permit?.alias.name ?? refusal?.alias
        record.upstreamModel = deployment?.upstreamModel
        record.deployment = deployment.map { $0.endpoint.description }
        record.servedAlias = servedBy?.name
        record.attempts = attempts
        record.httpVersion = httpVersion
        record.stream = permit?.request.stream ?? false
        record.streamCompleted = streamCompleted
        record.usage = usage
        // Settling prices the call: the engine that admitted it is the one source of cost,
        // for the budgets, the audit line and the metrics alike.
        var cost: Cost?
        if let permit {
            let now = runtime.now()
            if let usage {
                cost = permit.engine.settle(permit.admission, promptTokens: usage.promptTokens, completionTokens: usage.completionTokens,
                                            servedBy: servedBy?.name, now: now)
                // Never counted as $0 in silence: an unpriced alias is flagged for the operator.
                record.priceMissing = cost == nil
            } else {
                permit.engine.release(permit.admission, now: now)
            }
        }
        record.costUSD = cost?.usd
        if let spool = runtime.spool, let entry = SpoolEntry.record(for: caller, permit: permit, refusal: refusal, servedBy: servedBy?.name, usage: usage, cost: cost,
                                                service: runtime.identity.qualifiedName, at: startedAtWall) {
            spool.append(entry)
        }
        record.timeToFirstByteSeconds = timeToFirstByte.map { Double($0.nanoseconds) / 1e9 }
        record.errorCode = errorCode
        runtime.audit.write(record.jsonLine)

        if let permit {
            runtime.metrics.completed(permit.metrics, status: status, usage: usage, cost: cost,
                                      latencyNanoseconds: latency.nanoseconds, timeToFirstByteNanoseconds: timeToFirstByte?.nanoseconds,
                                      errorCode: errorCode)
        }
    }
}
