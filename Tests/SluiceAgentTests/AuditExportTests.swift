import Foundation
import SluiceAPI
import SluiceAgent
import SluiceExport
import SluicePolicy
import SluiceTestSupport
import Synchronization
import Testing

@Suite("Audit export: webhook batches and OTLP logs")
struct AuditExportTests {
    /// Reads posts from `receiver` until `count` records have arrived, each post's records
    /// taken out by `records`; the test's time limit stops a wait that never ends.
    static func collect(
        _ count: Int, from receiver: WebhookReceiver, records: ([UInt8]) throws -> [String]
    ) async throws -> (records: [String], posts: [WebhookReceiver.Post]) {
        var collected: [String] = []
        var posts: [WebhookReceiver.Post] = []
        for await post in receiver.posts {
            posts.append(post)
            if post.status == 204 { collected += try records(post.body) }
            if collected.count >= count { break }
        }
        return (collected, posts)
    }

    /// Each record of a webhook batch, re-serialized with sorted keys.
    static func webhookRecords(_ body: [UInt8]) throws -> [String] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        #expect(object["service"] as? String == "shop/checkout" && object["pod"] as? String == "checkout-7d9f")
        return try #require(object["records"] as? [[String: Any]]).map(canonical)
    }

    /// Each OTLP log record's body, as the audit line it carries.
    static func otlpRecords(_ body: [UInt8]) throws -> [String] {
        let value = try JSONValue.parseObject(body)
        let resource = try #require(value["resourceLogs"]?.arrayValue?.first)
        let attributes = resource["resource"]?["attributes"]?.arrayValue ?? []
        #expect(
            attributes.contains {
                $0["key"]?.stringValue == "sluice.service"
                    && $0["value"]?["stringValue"]?.stringValue == "shop/checkout"
            })
        let logs = try #require(resource["scopeLogs"]?.arrayValue?.first?["logRecords"]?.arrayValue)
        return try logs.map { record in
            #expect(record["timeUnixNano"]?.stringValue.flatMap(Int64.init) ?? 0 > 0)
            return try #require(record["body"]?["stringValue"]?.stringValue)
        }
    }

    static func canonical(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test(
        "every audit line reaches the webhook and the OTLP collector once, as written, through a failed post",
        .timeLimit(.minutes(1)))
    func oneForOne() async throws {
        let webhook = try await WebhookReceiver(failFirst: 1)
        let collector = try await WebhookReceiver()
        try await AgentHarness.with { harness in
            harness.configureOptions = { options in
                options.environment["EXPORT_TOKEN"] = "export-token-0123456789"
                options.auditExport = [
                    try! ExportDestination.parse(
                        flag: "--export-audit-webhook", format: .webhook, url: "http://127.0.0.1:\(webhook.port)/audit",
                        headers: ["Authorization=EXPORT_TOKEN"], caFile: nil, environment: options.environment),
                    try! ExportDestination.parse(
                        flag: "--export-audit-otlp", format: .otlp, url: "http://127.0.0.1:\(collector.port)/v1/logs",
                        headers: [], caFile: nil,
                        environment: options.environment),
                ]
                options.auditExportSettings.interval = .milliseconds(50)
                options.auditExportSettings.firstBackoff = .milliseconds(20)
            }
            try await harness.restartAgent(yaml: harness.yaml)
            var statuses: [Int] = []
            for index in 0..<5 {
                statuses.append(try await harness.chat(model: index == 2 ? "no-such-model" : "gpt-test").status)
            }
            #expect(statuses.filter { $0 == 200 }.count == 4 && statuses[2] >= 400)
            let lines = await harness.audit.waitForLines(5)
            let audited = try lines.map {
                try Self.canonical(
                    try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]))
            }

            let exported = try await Self.collect(5, from: webhook, records: Self.webhookRecords)
            #expect(exported.posts.first?.status == 503, "the first post failed and was retried")
            #expect(exported.posts.allSatisfy { $0.headers["authorization"] == "export-token-0123456789" })
            #expect(exported.posts.allSatisfy { $0.path == "/audit" })
            #expect(exported.records.sorted() == audited.sorted())
            let logged = try await Self.collect(5, from: collector, records: Self.otlpRecords)
            #expect(logged.posts.allSatisfy { $0.path == "/v1/logs" })
            #expect(logged.records.sorted() == lines.sorted(), "each log body is the audit line as written")

            let metrics = try await harness.metricsText()
            for destination in ["webhook", "otlp"] {
                let series = #"sluice_audit_export_records_total{service="shop/checkout",destination=""#
                #expect(metrics.contains(series + #"\#(destination)",outcome="sent"} 5"#))
            }
            try await harness.stopAgent()
        }
        try await webhook.stop()
        try await collector.stop()
    }

    @Test(
        "a destination that never answers costs calls nothing: lines past the queue are dropped and counted",
        .timeLimit(.minutes(1)))
    func boundedQueue() async throws {
        let closedPort = try await ExternalProcess.freePort(group: .singletonMultiThreadedEventLoopGroup)
        try await AgentHarness.with { harness in
            harness.configureOptions = { options in
                options.auditExport = [
                    try! ExportDestination.parse(
                        flag: "--export-audit-webhook", format: .webhook, url: "http://127.0.0.1:\(closedPort)/audit",
                        headers: [], caFile: nil,
                        environment: [:])
                ]
                // No batch is due within the test: the queue only fills.
                options.auditExportSettings.queueRecords = 3
                options.auditExportSettings.interval = .seconds(3600)
                options.auditExportSettings.shutdownDeadline = .milliseconds(200)
            }
            try await harness.restartAgent(yaml: harness.yaml)
            for _ in 0..<10 { #expect(try await harness.chat().status == 200) }
            _ = await harness.audit.waitForLines(10)
            let metrics = try await harness.metricsText()
            #expect(metrics.contains(#"destination="webhook",outcome="dropped"} 7"#), "\(metrics)")
            let queued = #"sluice_audit_export_queued_records{service="shop/checkout",destination="webhook"}"#
            #expect(metrics.contains(queued + " 3"))
            try await harness.stopAgent()
        }
    }

    @Test("export flags are strict: a bad URL, a header without its variable, a query string")
    func strictFlags() throws {
        let cases: [(url: String, headers: [String], says: String)] = [
            ("ftp://collector:4318/v1/logs", [], "--export-audit-otlp"),
            ("http://collector:4318/v1/logs?token=x", [], "--export-audit-otlp"),
            ("http://collector:4318/v1/logs", ["DD-API-KEY"], "takes NAME=ENV_VAR"),
            ("http://collector:4318/v1/logs", ["DD-API-KEY=MISSING_VARIABLE"], "MISSING_VARIABLE is not set"),
            ("http://collector:4318/v1/logs", ["Bad Header=X"], "takes NAME=ENV_VAR"),
        ]
        #expect {
            _ = try ExportDestination.fromFlags(
                prefix: "--export-audit", webhook: nil, webhookHeaders: [], otlp: nil, otlpHeaders: ["A=X"],
                caFile: nil, environment: ["X": "secret-value"])
        } throws: { error in
            "\(error)" == "--export-audit-otlp-header needs --export-audit-otlp"
        }
        let both = try ExportDestination.fromFlags(
            prefix: "--export-audit", webhook: "https://hooks.example/a", webhookHeaders: [],
            otlp: "http://collector:4318/v1/logs", otlpHeaders: ["Authorization=X"], caFile: nil,
            environment: ["X": "secret-value"])
        #expect(both.map(\.format) == [.webhook, .otlp] && both[1].headers.map(\.name) == ["authorization"])
        for (url, headers, says) in cases {
            #expect {
                _ = try ExportDestination.parse(
                    flag: "--export-audit-otlp", format: .otlp, url: url, headers: headers, caFile: nil,
                    environment: ["X": "secret-value"])
            } throws: { error in
                "\(error)".contains(says) && !"\(error)".contains("secret-value")
            }
        }
    }
}
