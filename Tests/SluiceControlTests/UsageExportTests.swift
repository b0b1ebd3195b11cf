import Foundation
import SluiceAPI
import SluiceControl
import SluiceExport
import SluiceTestSupport
import Testing

@Suite("Usage export from the control plane")
struct UsageExportTests {
    @Test(
        "each applied batch's deltas reach the webhook and the OTLP collector once; a replayed batch is not sent again",
        .timeLimit(.minutes(1)))
    func appliedBatchesOnce() async throws {
        let webhook = try await WebhookReceiver(failFirst: 1)
        let collector = try await WebhookReceiver()
        try await ControlHarness.with(configure: { options in
            let environment = ["USAGE_TOKEN": "usage-token-0123456789"]
            options.usageExport = [
                try ExportDestination.parse(
                    flag: "--export-usage-webhook", format: .webhook, url: "http://127.0.0.1:\(webhook.port)/usage",
                    headers: ["Authorization=USAGE_TOKEN"], caFile: nil, environment: environment),
                try ExportDestination.parse(
                    flag: "--export-usage-otlp", format: .otlp, url: "http://127.0.0.1:\(collector.port)/v1/logs",
                    headers: [], caFile: nil, environment: environment),
            ]
            options.usageExportSettings.interval = .milliseconds(50)
            options.usageExportSettings.firstBackoff = .milliseconds(20)
        }) { control in
            let token = try await control.agentToken("agent-1")
            let hour = Int64(Date().timeIntervalSince1970) / 3600 * 3600
            let first = usageBatch(
                1, team: "ml", key: "ci", deltas: [(hour, 3, 3_000_000), (hour - 3600, 2, 2_000_000)])
            let second = usageBatch(2, team: "ml", deltas: [(hour, 5, 7_000_000)])
            for batch in [first, first, second] {
                #expect(try await control.request("POST", "/v1/agent/usage", json: batch, token: token).status == 200)
            }

            var records: [[String: Any]] = []
            var statuses: [Int] = []
            for await post in webhook.posts {
                statuses.append(post.status)
                #expect(post.headers["authorization"] == "usage-token-0123456789" && post.path == "/usage")
                guard post.status == 204 else { continue }
                let body = try #require(try JSONSerialization.jsonObject(with: Data(post.body)) as? [String: Any])
                #expect(body["source"] as? String == "sluice-control")
                records += try #require(body["records"] as? [[String: Any]])
                if records.count >= 3 { break }
            }
            #expect(statuses.first == 503, "the first post failed and was retried")
            let ids = records.compactMap { $0["record_id"] as? String }
            #expect(ids.sorted() == ["agent-1:e1:1:0", "agent-1:e1:1:1", "agent-1:e1:2:0"])
            let exportedCost = records.compactMap { ($0["cost_pico_usd"] as? NSNumber)?.int64Value }.reduce(0, +)
            let exportedRequests = records.compactMap { ($0["requests"] as? NSNumber)?.int64Value }.reduce(0, +)
            #expect(exportedCost == 12_000_000 && exportedRequests == 10)
            let current = try #require(records.first { $0["record_id"] as? String == "agent-1:e1:1:0" })
            #expect(
                (current["window_start"] as? NSNumber)?.int64Value == hour
                    && (current["window_end"] as? NSNumber)?.int64Value == hour + 3600
                    && current["team"] as? String == "ml" && current["key_id"] as? String == "ci"
                    && current["service"] as? String == "shop/checkout" && current["cost_usd"] as? Double == 3e-6)

            // The same records as OTLP log bodies, and the rollups agree with the export.
            var bodies: [String] = []
            for await post in collector.posts {
                let value = try JSONValue.parseObject(post.body)
                let logs = value["resourceLogs"]?.arrayValue?.first?["scopeLogs"]?.arrayValue?.first?["logRecords"]
                bodies += (logs?.arrayValue ?? []).compactMap { $0["body"]?["stringValue"]?.stringValue }
                if bodies.count >= 3 { break }
            }
            #expect(bodies.count == 3 && bodies.allSatisfy { $0.contains(#""record_id":"agent-1:e1:"#) })
            let usage = try await control.request("GET", "/v1/admin/usage?group_by=team&since=2d")
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(usage.body)) as? [[String: Any]])
            let total = rows.compactMap { ($0["cost_pico_usd"] as? NSNumber)?.int64Value }.reduce(0, +)
            #expect(total == exportedCost, "\(usage.text)")
            let status = try await control.request("GET", "/v1/admin/usage/export")
            #expect(
                status.text.contains(#"{"destination":"webhook","dropped":0,"failed":0,"queued":0,"sent":3}"#),
                "\(status.text)")
        }
        try await webhook.stop()
        try await collector.stop()
    }
}
