import SluiceAPI

/// Step 1 (gate): whether the agent can enforce and account for a call at all. With a
/// control plane, a policy older than the maximum age is no longer trusted (fail closed),
/// and a spool that cannot keep usage refuses calls when the policy says so. Both answer
/// 503 with the cause; a file-only agent passes straight through.
enum Gate {
    static func check(runtime: AgentRuntime, now: Int64) -> Authorize.Refusal? {
        if let sync = runtime.sync, let reason = sync.staleness(at: now) {
            return Authorize.Refusal(
                error: OpenAIError(status: 503, message: reason, type: "service_unavailable", code: "policy_stale"),
                headers: [("retry-after", "5")])
        }
        if let spool = runtime.spool, spool.refusesCalls {
            let cause = spool.health.lastError ?? "the disk refuses writes"
            return Authorize.Refusal(
                error: OpenAIError(
                    status: 503,
                    message: "usage cannot be recorded (\(cause)), and policy says to refuse calls until it can",
                    type: "service_unavailable", code: "usage_spool_unavailable"), headers: [("retry-after", "5")])
        }
        return nil
    }
}
