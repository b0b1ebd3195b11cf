import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import SluiceControl
import SluiceTestSupport
import SluiceWire
import Testing

@Suite("Fleet budgets")
struct BudgetTests {
    @Test(
        "a team's spent budget is exhausted in the next bundle; soft and hard notices reach the webhook once",
        .timeLimit(.minutes(1)))
    func exhaustion() async throws {
        try await ControlHarness.with { control in
            let receiver = try await WebhookReceiver()
            let token = try await control.agentToken("agent-1")
            _ = try await control.request(
                "PUT", "/v1/admin/settings",
                json: #"{"soft_budget_percent":50,"budget_webhook_url":"http://127.0.0.1:\#(receiver.port)/hook"}"#)
            // $0.00001 a day = 10,000,000 pico-USD.
            _ = try await control.request(
                "POST", "/v1/admin/teams", json: #"{"name":"ml","limits":{"daily_spend_usd":0.00001}}"#)
            let before = try await control.request("GET", "/v1/agent/policy", token: token)
            let tag = try #require(before.header("etag"))

            let now = Int64(Date().timeIntervalSince1970)
            func batch(_ sequence: Int, cost: Int64) -> String {
                #"{"agent_id":"agent-1","epoch":"e1","sequence":\#(sequence),"deltas":[{"hour":\#(now - now % 3600),"#
                    + #""team":"ml","service":"shop/checkout","model":"m","requests":1,"prompt_tokens":1,"#
                    + #""completion_tokens":1,"cost_pico_usd":\#(cost),"denials":{}}]}"#
            }
            var hooks = receiver.posts.makeAsyncIterator()
            #expect(
                try await control.request("POST", "/v1/agent/usage", json: batch(1, cost: 6_000_000), token: token)
                    .status
                    == 200)
            let soft = Data(try #require(await hooks.next()).body)
            let softNotice = try WireCoding.decoder.decode(BudgetWatcher.Notice.self, from: soft)
            #expect(softNotice.event == "soft_budget_reached" && softNotice.scope == "ml" && softNotice.percent == 60)
            // Still within budget: the bundle has not changed.
            #expect(
                try await control.request("GET", "/v1/agent/policy", token: token, headers: [("If-None-Match", tag)])
                    .status
                    == 304)

            #expect(
                try await control.request("POST", "/v1/agent/usage", json: batch(2, cost: 5_000_000), token: token)
                    .status
                    == 200)
            let hardPost = try #require(await hooks.next())
            let hard = try WireCoding.decoder.decode(BudgetWatcher.Notice.self, from: Data(hardPost.body))
            #expect(hard.event == "budget_exhausted" && (hard.spentUSD ?? 0) > 0.00001 - 1e-12)
            let after = try await control.request(
                "GET", "/v1/agent/policy", token: token, headers: [("If-None-Match", tag)])
            #expect(after.status == 200)
            let document = try WireCoding.decoder.decode(SignedBundle.self, from: Data(after.body)).verified(
                with: control.publicKey)
            let exhausted = try #require(document.exhausted.first)
            #expect(
                exhausted.kind == "team" && exhausted.name == "ml" && exhausted.limit == "daily_spend_usd"
                    && exhausted.until > now)

            // More usage in the same window sends no second notice.
            #expect(
                try await control.request("POST", "/v1/agent/usage", json: batch(3, cost: 1), token: token).status
                    == 200)
            try await receiver.stop()
            var more = 0
            while await hooks.next() != nil { more += 1 }
            #expect(more == 0)
        }
    }
}
