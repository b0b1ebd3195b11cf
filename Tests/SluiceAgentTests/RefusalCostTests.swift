import Foundation
import SluiceAgent
import SluiceTestSupport
import Testing

/// A call the policy refuses for its content costs the caller nothing: the prompt filter
/// runs before any limit or budget is reserved (agentgateway charges quota first).
@Suite("Refusals cost nothing")
struct RefusalCostTests {
    static let token = "sk-refusal-cost-0123456789abcdef"

    @Test("a prompt-filter refusal reserves nothing: the key's one call a minute is still there after it")
    func filteredCallsAreFree() async throws {
        let settings = """
            sluice_policy:
              prompt_filters: [{name: us-ssn, pattern: '[0-9]{3}-[0-9]{2}-[0-9]{4}'}]
              teams: {ml: {limits: {requests_per_minute: 1, daily_spend_usd: 1}}}
              static_keys:
                - {id: one-a-minute, token: \(Self.token), team: ml}

            """
        try await AgentHarness.with(settings: settings) { harness in
            for blocked in ["my ssn is 123-45-6789", "and again 987-65-4321"] {
                let refused = try await harness.chat(key: Self.token, content: blocked)
                #expect(refused.status == 403 && refused.text.contains("prompt_blocked"), "\(refused.text)")
            }
            let allowed = try await harness.chat(key: Self.token)
            #expect(allowed.status == 200, "the refusals used the minute's one call: \(allowed.text)")
            // The limit is real: the next call is over it.
            let over = try await harness.chat(key: Self.token)
            #expect(over.status == 429 && over.text.contains("rate_limit_exceeded"), "\(over.text)")
            #expect(harness.mock.requests.count == 1)
        }
    }
}
