import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import SluiceControl
import SluiceTestSupport
import SluiceWire
import Testing

/// Receives webhook posts on 127.0.0.1 and hands their bodies over as they arrive.
final class WebhookReceiver: @unchecked Sendable {
    let bodies: AsyncStream<Data>
    private let continuation: AsyncStream<Data>.Continuation
    private var task: Task<Void, any Error>?
    private var serviceGroup: ServiceGroup?
    private(set) var port = 0

    init() async throws {
        (bodies, continuation) = AsyncStream.makeStream(of: Data.self)
        let router = Router()
        let continuation = self.continuation
        router.post("/hook") { request, _ -> HTTPResponse.Status in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 16)
            continuation.yield(Data(body.readableBytesView))
            return .noContent
        }
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { portContinuation.yield($0.localAddress?.port ?? 0) }, logger: Logger(label: "hook"))
        let serviceGroup = ServiceGroup(configuration: .init(services: [application], logger: Logger(label: "hook")))
        self.serviceGroup = serviceGroup
        task = Task { try await serviceGroup.run() }
        for await bound in ports {
            port = bound
            break
        }
    }

    func stop() async throws {
        await serviceGroup?.triggerGracefulShutdown()
        try await task?.value
        continuation.finish()
    }
}

@Suite("Fleet budgets")
struct BudgetTests {
    @Test(
        "a team's spent budget is exhausted in the next bundle; soft and hard notices reach the webhook once"
    )
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
            var hooks = receiver.bodies.makeAsyncIterator()
            #expect(
                try await control.request("POST", "/v1/agent/usage", json: batch(1, cost: 6_000_000), token: token)
                    .status
                    == 200)
            let soft = try #require(await hooks.next())
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
            let hard = try WireCoding.decoder.decode(BudgetWatcher.Notice.self, from: try #require(await hooks.next()))
            #expect(hard.event == "budget_exhausted" && hard.spentUSD > 0.00001 - 1e-12)
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
