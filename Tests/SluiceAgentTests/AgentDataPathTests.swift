import Foundation
import SluiceTestSupport
import Testing

@Suite("Agent data path, end to end on 127.0.0.1")
struct AgentDataPathTests {
    @Test(
        "forwards non-streamed and streamed chat over each upstream transport",
        arguments: [AgentHarness.Upstream.tls, .h2c, .http1])
    func forwardsOverEachTransport(upstream: AgentHarness.Upstream) async throws {
        try await AgentHarness.with(upstream: upstream, aliases: ["gpt-test": "mock-upstream-model"]) { harness in
            let plain = try await harness.chat(stream: false)
            #expect(plain.status == 200)
            #expect(plain.text.contains(#""content":"Sluice mock says"#))
            #expect(plain.header("content-type") == "application/json")

            let streamed = try await harness.chat(stream: true)
            #expect(streamed.status == 200)
            #expect(streamed.header("content-type") == "text/event-stream")
            #expect(streamed.text.contains("data: [DONE]"))
            // The caller did not ask for usage, so what Sluice added to read it is hidden.
            #expect(!streamed.text.contains("usage"))

            let seen = harness.mock.requests
            #expect(seen.count == 2)
            let expectedVersion = upstream == .http1 ? "http/1.1" : "h2"
            #expect(seen.allSatisfy { $0.httpVersion == expectedVersion })
            // The alias became the upstream model; the provider key replaced the caller's.
            #expect(
                seen.allSatisfy { String(decoding: $0.body, as: UTF8.self).contains(#""model":"mock-upstream-model""#) }
            )
            #expect(seen.allSatisfy { $0.header("authorization") == "Bearer sk-test-provider-secret-0123456789" })
            #expect(String(decoding: seen[1].body, as: UTF8.self).contains(#""stream_options":{"include_usage":true}"#))

            let records = await harness.auditRecords(2)
            #expect(records.count == 2)
            #expect(records.allSatisfy { $0["http_version"] as? String == expectedVersion })
            #expect(
                records.allSatisfy { $0["service"] as? String == "checkout" && $0["namespace"] as? String == "shop" })
            #expect(records[1]["stream_completed"] as? Bool == true)
            #expect(records[1]["usage_estimated"] as? Bool == false)
            #expect((records[1]["completion_tokens"] as? Int) == 8)
            #expect((records[0]["cost_usd"] as? Double ?? 0) > 0)
        }
    }

    @Test("a caller who asks for usage gets the usage chunk")
    func usageKeptWhenRequested() async throws {
        try await AgentHarness.with { harness in
            let response = try await harness.chat(stream: true, extra: #","stream_options":{"include_usage":true}"#)
            #expect(response.status == 200)
            #expect(response.text.contains(#""choices":[],"usage":{"prompt_tokens""#))
            #expect(response.text.contains(#""usage":null"#))
        }
    }

    @Test("embeddings and completions pass through with usage")
    func otherEndpoints() async throws {
        try await AgentHarness.with { harness in
            let embedding = try await harness.post(#"{"model":"gpt-test","input":"hello"}"#, path: "/v1/embeddings")
            #expect(embedding.status == 200)
            #expect(embedding.text.contains(#""object":"embedding""#))
            let completion = try await harness.post(#"{"model":"gpt-test","prompt":"hello"}"#, path: "/v1/completions")
            #expect(completion.status == 200)
            #expect(completion.text.contains(#""object":"text_completion""#))
            #expect(harness.mock.requests.map(\.path) == ["/v1/embeddings", "/v1/completions"])
            #expect(await harness.auditRecords(2).allSatisfy { ($0["prompt_tokens"] as? Int ?? 0) > 0 })
        }
    }

    @Test("models, health and readiness")
    func localEndpoints() async throws {
        try await AgentHarness.with(aliases: ["b-model": "mock", "a-model": "mock"]) { harness in
            let models = try await TestHTTPClient.get("/v1/models", port: harness.agentPort, group: harness.group)
            #expect(models.status == 200)
            #expect(
                models.text.contains(#""object":"list""#) && models.text.contains(#""id":"a-model""#)
                    && models.text.contains(#""id":"b-model""#))
            #expect(
                try await TestHTTPClient.get("/healthz", port: harness.agentPort, group: harness.group).status == 200)
            #expect(
                try await TestHTTPClient.get("/readyz", port: harness.agentPort, group: harness.group).status == 200)
        }
    }

    @Test("beyond the peer's MAX_CONCURRENT_STREAMS, more connections open")
    func moreConnectionsBeyondStreamLimit() async throws {
        // Streams of about a second, so all 30 overlap even when a loaded machine is slow to
        // start them: exactly three connections of ten streams are needed.
        try await AgentHarness.with(
            aliases: ["slow": "mock+chunks=10+chunk_delay_ms=100"],
            mockConfigure: { $0.maxConcurrentStreams = 10 }
        ) { harness in
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<30 {
                    group.addTask { try await harness.chat(model: "slow", stream: true).status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.count == 30 && statuses.allSatisfy { $0 == 200 })
            #expect(harness.mock.connectionsOpened == 3)
        }
    }

    @Test("pipelined keep-alive requests are answered in order on one connection")
    func pipelining() async throws {
        try await AgentHarness.with(aliases: ["slow": "mock+first_byte_delay_ms=50", "fast": "mock"]) { harness in
            func request(_ model: String) -> String {
                let body = #"{"model":"\#(model)","messages":[]}"#
                return
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            }
            let responses = try await TestHTTPClient.sendPipelined(
                raw: Array((request("slow") + request("fast") + request("nope")).utf8),
                expecting: 3, port: harness.agentPort, group: harness.group)
            #expect(responses.map(\.status) == [200, 200, 404])
            #expect(
                harness.mock.requests.map { String(decoding: $0.body, as: UTF8.self).contains("first_byte_delay") } == [
                    true, false,
                ])
        }
    }

    @Test("inbound identity headers are dropped and never reach the provider")
    func identityHeadersScrubbed() async throws {
        try await AgentHarness.with { harness in
            let response = try await harness.post(
                #"{"model":"gpt-test","messages":[]}"#,
                headers: [("X-Sluice-Service", "spoofed"), ("Authorization", "Bearer sk-caller-key-123456")])
            #expect(response.status == 200)
            let seen = try #require(harness.mock.requests.first)
            #expect(seen.header("x-sluice-service") == nil)
            #expect(seen.header("authorization") == "Bearer sk-test-provider-secret-0123456789")
            #expect(await harness.auditRecords(1).first?["service"] as? String == "checkout")
        }
    }

    @Test("200 concurrent streams share one upstream HTTP/2 connection")
    func multiplexing() async throws {
        try await AgentHarness.with(mockConfigure: {
            $0.chunks = 4
            $0.chunkDelayMilliseconds = 20
        }) { harness in
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<200 {
                    group.addTask { try await harness.chat(stream: true).status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.count == 200)
            #expect(statuses.allSatisfy { $0 == 200 })
            #expect(harness.mock.connectionsOpened == 1)
            #expect(harness.mock.requests.count == 200)
        }
    }
}
