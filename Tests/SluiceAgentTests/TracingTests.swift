import Foundation
import SluiceAPI
@testable import SluiceAgent
import SluiceExport
import SluiceTestSupport
import Testing

@Suite("OpenTelemetry spans")
struct TracingTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

    /// Starts the harness's agent sending spans to `collector`, sampling `ratio` of calls
    /// that come without a `traceparent`.
    static func traced(_ harness: AgentHarness, to collector: WebhookReceiver, ratio: Double) async throws {
        harness.configureOptions = { options in
            options.traces = try! ExportDestination.parse(
                flag: "--otlp-traces", format: .otlp, url: "http://127.0.0.1:\(collector.port)/v1/traces",
                headers: [], caFile: nil, environment: [:])
            options.traceSampleRatio = ratio
            options.auditExportSettings.interval = .milliseconds(50)
        }
        try await harness.restartAgent(yaml: harness.yaml)
    }

    /// Reads posts until `count` spans have come, or the receiver has stopped; the test's time limit
    /// ends a wait that never does.
    static func spans(_ count: Int, from collector: WebhookReceiver) async throws -> [JSONValue] {
        var spans: [JSONValue] = []
        for await post in collector.posts {
            #expect(post.path == "/v1/traces")
            let body = try JSONValue.parseObject(post.body)
            let resource = body["resourceSpans"]?.arrayValue?.first
            #expect(
                resource?["resource"]?["attributes"]?.arrayValue?.contains {
                    $0["key"]?.stringValue == "service.name"
                        && $0["value"]?["stringValue"]?.stringValue == "sluice-agent"
                } == true)
            spans += resource?["scopeSpans"]?.arrayValue?.first?["spans"]?.arrayValue ?? []
            if spans.count >= count { break }
        }
        return spans
    }

    static func attribute(_ span: JSONValue, _ key: String) -> String? {
        guard let value = span["attributes"]?.arrayValue?.first(where: { $0["key"]?.stringValue == key })?["value"]
        else { return nil }
        return value["stringValue"]?.stringValue ?? value["intValue"]?.stringValue
    }

    @Test(
        "a call in the caller's trace: a server span with GenAI attributes, a client span per attempt, context passed",
        .timeLimit(.minutes(1)))
    func tracedCall() async throws {
        let collector = try await WebhookReceiver()
        try await AgentHarness.with { harness in
            try await Self.traced(harness, to: collector, ratio: 1)
            let response = try await harness.chat(
                extraHeaders: [("traceparent", "00-\(Self.traceID)-00f067aa0ba902b7-01")])
            #expect(response.status == 200)
            let audit = try #require(await harness.auditRecords(1).first)
            let spans = try await Self.spans(2, from: collector)
            let server = try #require(spans.first { $0["kind"]?.intValue == 2 })
            let client = try #require(spans.first { $0["kind"]?.intValue == 3 })
            #expect(server["traceId"]?.stringValue == Self.traceID && client["traceId"]?.stringValue == Self.traceID)
            #expect(server["parentSpanId"]?.stringValue == "00f067aa0ba902b7")
            #expect(client["parentSpanId"]?.stringValue == server["spanId"]?.stringValue)
            #expect(server["name"]?.stringValue == "chat gpt-test" && server["status"] == nil)
            for (key, value) in [
                ("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai"),
                ("gen_ai.request.model", "gpt-test"), ("gen_ai.response.model", "mock"),
                ("http.response.status_code", "200"), ("sluice.decision", "allow"),
                ("sluice.request_id", audit["request_id"] as? String ?? "?"),
                ("gen_ai.usage.input_tokens", "\(audit["prompt_tokens"] as? Int ?? -1)"),
                ("gen_ai.usage.output_tokens", "\(audit["completion_tokens"] as? Int ?? -1)"),
            ] {
                #expect(Self.attribute(server, key) == value, "\(key)")
            }
            #expect(Self.attribute(client, "sluice.outcome") == "ok" && Self.attribute(client, "server.address") != nil)
            // The attempt's context went upstream with it.
            let upstream = try #require(harness.mock.requests.last)
            let clientSpan = client["spanId"]?.stringValue ?? "?"
            #expect(upstream.header("traceparent") == "00-\(Self.traceID)-\(clientSpan)-01")
            try await harness.stopAgent()
        }
        try await collector.stop()
    }

    @Test(
        "unsampled calls cost no span and send no context upstream; the caller's sampled flag wins over the ratio",
        .timeLimit(.minutes(1)))
    func sampling() async throws {
        let collector = try await WebhookReceiver()
        try await AgentHarness.with { harness in
            try await Self.traced(harness, to: collector, ratio: 0)
            #expect(try await harness.chat().status == 200)
            #expect(
                try await harness.chat(extraHeaders: [("traceparent", "00-\(Self.traceID)-00f067aa0ba902b7-00")])
                    .status == 200)
            #expect(harness.mock.requests.allSatisfy { $0.header("traceparent") == nil })
            #expect(
                try await harness.chat(extraHeaders: [("traceparent", "00-\(Self.traceID)-00f067aa0ba902b7-01")])
                    .status == 200)
            _ = await harness.audit.waitForLines(3)
            try await harness.stopAgent()
            try await collector.stop()
            // Every post there was: the receiver has stopped, so its stream ends after them.
            let spans = try await Self.spans(.max, from: collector)
            // Only the third call's two spans: the first was outside the ratio, the second unsampled by its caller.
            #expect(spans.count == 2 && spans.allSatisfy { $0["traceId"]?.stringValue == Self.traceID })
        }
    }

    @Test("traceparent is read strictly: a malformed header starts a new trace instead of joining a bad one")
    func traceParentParsing() {
        let good = TraceParent(parsing: "00-\(Self.traceID)-00f067aa0ba902b7-01")
        #expect(good == TraceParent(parsing: "00-\(Self.traceID)-00f067aa0ba902b7-01"))
        #expect(good?.sampled == true && good?.spanID == "00f067aa0ba902b7")
        #expect(TraceParent(parsing: "00-\(Self.traceID)-00f067aa0ba902b7-00")?.sampled == false)
        #expect(TraceParent(parsing: "01-\(Self.traceID)-00f067aa0ba902b7-01-future")?.sampled == true)
        for bad in [
            "", "00", "ff-\(Self.traceID)-00f067aa0ba902b7-01", "00-\(Self.traceID.uppercased())-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-\(Self.traceID)-0000000000000000-01",
            "00-\(Self.traceID)-00f067aa0ba902b7-01-extra", "00-\(Self.traceID)-00f067aa0ba902b-01",
            "00-\(Self.traceID)-00f067aa0ba902b7-zz",
        ] {
            #expect(TraceParent(parsing: bad) == nil, "\(bad)")
        }
    }
}
