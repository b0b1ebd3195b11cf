import Foundation
import SluiceControl
import SluicePolicy
import SluiceTestSupport
import SluiceWire
import Synchronization
import Testing

@Suite("agent ↔ control plane: alert-only limits")
struct AlertSyncTests {
    @Test(
        "Engineering's unlimited dev key with high-usage alerts: never refused, defaults held elsewhere, alerts posted",
        .timeLimit(.minutes(1)))
    func engineeringDevKey() async throws {
        let hooks = try await WebhookReceiver()
        let url = try #require(URL(string: "http://127.0.0.1:\(hooks.port)/hook"))
        let webhooks = AlertWebhooks(webhooks: [
            AlertWebhook(name: "eng", url: url, secret: Secret("engineering-alerts-0123456789"))
        ])
        let events = Mutex<[AlertNotice]>([])
        let collector = Task {
            for await post in hooks.posts {
                if let notice = try? WireCoding.decoder.decode(AlertNotice.self, from: Data(post.body)) {
                    events.withLock { $0.append(notice) }
                }
            }
        }
        try await SyncHarness.with(configureControl: {
            $0.alertWebhooks = webhooks
            $0.budgetCheckInterval = 0
        }) { harness in
            try await harness.seedPolicy()
            // Everyone without limits of their own: two calls a minute.
            _ = try await harness.adminJSON(
                "PATCH", "/v1/admin/settings", json: #"{"default_limits":{"requests_per_minute":2}}"#)
            _ = try await harness.adminJSON("POST", "/v1/admin/teams", json: #"{"name":"engineering"}"#)
            // As the seed asks: unlimited in dev, with high-usage alerts (a budget that only
            // alerts, and a spike in requests).
            let dev = try #require(
                try await harness.adminJSON(
                    "POST", "/v1/admin/keys",
                    json: """
                        {"id":"eng-dev","team":"engineering","metadata":{"env":"dev"},
                         "limits":{"daily_spend_usd":0.00001,"mode":"alert",
                                   "spike":{"metric":"requests","factor":3,"minimum":5}}}
                        """) as? [String: Any])["key"] as? String
            let ci = try #require(
                try await harness.adminJSON("POST", "/v1/admin/keys", json: #"{"id":"eng-ci","team":"engineering"}"#)
                    as? [String: Any])["key"] as? String
            let agent = try await harness.startAgent(id: "pod-1")
            #expect(await eventually { (try? await agent.chat(key: dev).status) == 200 })
            var devStatuses: [Int] = []
            for _ in 0..<6 { devStatuses.append(try await agent.chat(key: dev).status) }
            #expect(devStatuses == Array(repeating: 200, count: 6))
            var ciStatuses: [Int] = []
            for _ in 0..<3 { ciStatuses.append(try await agent.chat(key: ci).status) }
            #expect(ciStatuses.contains(429))

            let posted = await eventually(timeout: .seconds(10)) {
                let seen = Set(events.withLock { $0.map(\.event) })
                return seen.isSuperset(of: ["budget_exceeded", "spike"])
            }
            #expect(posted)
            let notices = events.withLock { $0 }
            #expect(notices.allSatisfy { $0.scopeKind == "key" && $0.scope == "eng-dev" && $0.mode == "alert" })
            // The ci key's refusals reach the rollups by reason and by the rule that refused
            // them, one for one.
            var ciRow: [String: Any]?
            let counted = await eventually(timeout: .seconds(10)) {
                let answer = try? await harness.adminJSON("GET", "/v1/admin/usage?group_by=key&since=1d")
                let rows = answer as? [[String: Any]]
                ciRow = rows?.first { ($0["group"] as? [String: String])?["key"] == "eng-ci" }
                return ((ciRow?["denials"] as? [String: Int])?["rate_limit_exceeded"] ?? 0) > 0
            }
            #expect(counted)
            let refusals = (ciRow?["denials"] as? [String: Int])?["rate_limit_exceeded"] ?? -1
            let byRule = ciRow?["denial_rules"] as? [String: Int] ?? [:]
            #expect(byRule.values.reduce(0, +) == refusals)
            #expect(!byRule.isEmpty && byRule.keys.allSatisfy { $0.contains("requests_per_minute") }, "\(byRule)")
            // Over its budget and reported, still served.
            #expect(try await agent.chat(key: dev).status == 200)
            try await agent.stop()
        }
        try await hooks.stop()
        await collector.value
    }
}
