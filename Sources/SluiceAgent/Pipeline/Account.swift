import NIOCore
import SluiceAPI
import SluicePolicy

/// Step 8 (account): turns what a call used into cost and one audit line.
/// Tokens come from the provider's usage block; an estimate is used only when it is absent.
struct Account {
    let runtime: AgentRuntime
    let requestID: String
    let method: String
    let path: String
    let startedAt: NIODeadline
    let startedAtWall: Int64

    func record(status: Int, permit: Authorize.Permit? = nil, deployment: Deployment? = nil, httpVersion: String? = nil,
                usage: TokenUsage? = nil, streamCompleted: Bool? = nil, timeToFirstByte: TimeAmount? = nil, errorCode: String? = nil) {
        var record = AuditRecord(
            timestampNanoseconds: startedAtWall, requestID: requestID, identity: runtime.identity,
            method: method, path: path, status: status,
            latencySeconds: Double((NIODeadline.now() - startedAt).nanoseconds) / 1e9)
        record.alias = permit?.alias.name
        record.upstreamModel = deployment?.upstreamModel
        record.deployment = deployment.map { $0.endpoint.description }
        record.httpVersion = httpVersion
        record.stream = permit?.request.stream ?? false
        record.streamCompleted = streamCompleted
        record.usage = usage
        if let usage, let alias = permit?.alias {
            if let price = alias.price {
                record.costUSD = price.cost(promptTokens: usage.promptTokens, completionTokens: usage.completionTokens).usd
            } else {
                // Never counted as $0 in silence: flagged for the operator.
                record.priceMissing = true
            }
        }
        record.timeToFirstByteSeconds = timeToFirstByte.map { Double($0.nanoseconds) / 1e9 }
        record.errorCode = errorCode
        runtime.audit.write(record.jsonLine)
    }
}
