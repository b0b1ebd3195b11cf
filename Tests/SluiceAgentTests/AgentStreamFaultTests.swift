import Foundation
import SluiceTestSupport
import Testing

@Suite("Agent under upstream stream faults")
struct AgentStreamFaultTests {
    func eventCount(_ response: TestResponse) -> Int {
        response.text.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: {\"id\"") }.count
    }

    @Test("RST_STREAM mid-stream: the caller gets the prefix, an error event and a clean end; usage is partial")
    func resetMidStream() async throws {
        try await AgentHarness.with(aliases: ["reset": "mock+rst_after=3"]) { harness in
            let response = try await harness.chat(model: "reset", stream: true)
            #expect(response.status == 200)
            #expect(eventCount(response) == 3)
            #expect(response.text.contains(#""code":"upstream_stream_reset""#))
            #expect(!response.text.contains("[DONE]"))
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["stream_completed"] as? Bool == false)
            #expect(record["error"] as? String == "upstream_stream_reset")
            #expect((record["completion_tokens"] as? Int ?? 0) > 0)
            #expect(record["usage_estimated"] as? Bool == true)
        }
    }

    @Test("GOAWAY below an unanswered stream: it is replayed once on a new connection")
    func goAwayReplay() async throws {
        try await AgentHarness.with(aliases: ["away": "mock+goaway_once"]) { harness in
            let response = try await harness.chat(model: "away", stream: true)
            #expect(response.status == 200)
            #expect(response.text.contains("[DONE]"))
            #expect(harness.mock.connectionsOpened == 2)
            #expect(harness.mock.requests.count == 2)
        }
    }

    @Test("silence mid-stream hits the idle timeout and ends with an error event")
    func idleTimeout() async throws {
        try await AgentHarness.with(
            aliases: ["stall": "mock+hang_after=2"],
            settings: "sluice_settings:\n  idle_timeout_seconds: 0.3\n"
        ) { harness in
            let response = try await harness.chat(model: "stall", stream: true)
            #expect(response.status == 200)
            #expect(eventCount(response) == 2)
            #expect(response.text.contains(#""code":"upstream_idle_timeout""#))
        }
    }

    @Test("malformed SSE and in-stream error events are forwarded and counted as incomplete")
    func oddStreams() async throws {
        try await AgentHarness.with(aliases: ["bad": "mock+malformed_sse", "err": "mock+mid_stream_error"]) { harness in
            let malformed = try await harness.chat(model: "bad", stream: true)
            #expect(malformed.status == 200)
            #expect(malformed.text.contains("broken"))
            let errored = try await harness.chat(model: "err", stream: true)
            #expect(errored.text.contains(#""code":"overloaded""#))
            let records = await harness.auditRecords(2)
            #expect(records.map { $0["stream_completed"] as? Bool } == [false, false])
            #expect(
                records.map { $0["error"] as? String } == ["upstream_stream_incomplete", "upstream_stream_error_event"])
        }
    }

    @Test(
        "a large non-streamed answer crosses the flow-control window intact",
        arguments: [AgentHarness.Upstream.tls, .http1])
    func largeBody(upstream: AgentHarness.Upstream) async throws {
        try await AgentHarness.with(upstream: upstream, aliases: ["big": "mock+big_body=3000000"]) { harness in
            let response = try await harness.chat(model: "big")
            #expect(response.status == 200)
            #expect(response.body.count > 3_000_000)
            #expect(response.text.hasSuffix("}"))
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["usage_estimated"] as? Bool == false)
        }
    }
}
