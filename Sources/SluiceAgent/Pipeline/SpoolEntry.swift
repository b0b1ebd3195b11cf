import SluiceAPI
import SluicePolicy
import SluiceWire

/// Part of step 8 (account): the spool line for one call. Forwarded calls count a request
/// with the provider's usage and the settled cost; refusals by policy count under their
/// reason; requests refused before policy was consulted (malformed, unknown path) carry
/// nothing to count. A call a fallback answered counts under the alias that answered, whose
/// prices it was charged at.
enum SpoolEntry {
    static func record(
        for caller: Caller?, permit: AdmittedCall?, refusal: Authorize.Refusal?, servedBy: String? = nil,
        usage: TokenUsage?, cost: Cost?, service: String, at wallNanoseconds: Int64
    ) -> UsageRecord? {
        let denial = refusal?.denial?.reason.rawValue ?? (refusal?.error.status == 503 ? refusal?.error.code : nil)
        guard permit != nil || denial != nil else { return nil }
        let seconds = wallNanoseconds / 1_000_000_000
        return UsageRecord(
            hour: seconds - seconds % 3600, team: caller?.team, project: caller?.project, service: service,
            keyID: caller?.keyID, model: servedBy ?? permit?.aliasName ?? refusal?.alias ?? "",
            requests: permit == nil ? 0 : 1, promptTokens: Int64(usage?.promptTokens ?? 0),
            completionTokens: Int64(usage?.completionTokens ?? 0),
            cachedPromptTokens: Int64(usage?.cachedPromptTokens ?? 0),
            cacheCreationTokens: Int64(usage?.cacheCreationTokens ?? 0), costPicoUSD: cost?.picoUSD ?? 0,
            denial: denial, denialRule: refusal?.denial?.rule)
    }
}
