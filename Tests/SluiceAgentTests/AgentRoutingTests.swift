import Foundation
import NIOCore
import NIOPosix
import SluiceAgent
import SluiceTestSupport
import Testing

/// Retries, fallbacks, cooldowns and per-deployment caps through a real agent, against the
/// mock provider over HTTP/2 and TLS (and a port that refuses connections).
@Suite("Routing through the agent")
struct AgentRoutingTests {
    /// One `model_list` entry: `model` is `provider/upstream-model` (mock directives included).
    struct Entry {
        var alias: String
        var model: String
        var apiBase: String?
        var extra = ""
        var price = (input: 0.000001, output: 0.000002)
    }

    static func harness(_ entries: [Entry], router: String) async throws -> AgentHarness {
        let harness = try await AgentHarness(aliases: [:])
        var yaml = "model_list:\n"
        for entry in entries {
            yaml += """
                  - model_name: \(entry.alias)
                    litellm_params:
                      model: \(entry.model)
                      api_base: \(entry.apiBase ?? "https://127.0.0.1:\(harness.mock.port)/v1")
                      api_key: sk-test-provider-secret-0123456789
                      ssl_verify: \(harness.certificate.certificatePath)
                \(entry.extra)
                    model_info:
                      input_cost_per_token: \(entry.price.input)
                      output_cost_per_token: \(entry.price.output)

                """
        }
        yaml += "router_settings:\n" + router
        try await harness.restartAgent(yaml: yaml)
        return harness
    }

    func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    func requests(_ harness: AgentHarness, model: String) -> Int {
        harness.mock.requests.filter { request in
            (try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])?["model"] as? String
                == model
        }.count
    }

    @Test("a 5xx is retried with backoff on the same deployment until it succeeds; the audit line counts the attempts")
    func retriesUntilSuccess() async throws {
        try await AgentHarness.with(starting: {
            try await Self.harness(
                [Entry(alias: "flaky", model: "openai/mock+status=503+fail_first=2")],
                router: "  num_retries: 2\n  retry_after: 0.01\n")
        }) { harness in
            let response = try await harness.chat(model: "flaky")
            #expect(response.status == 200)
            #expect(requests(harness, model: "mock+status=503+fail_first=2") == 3)
            let record = try #require(await harness.auditRecords(1).first)
            #expect(
                record["status"] as? Int == 200 && record["attempts"] as? Int == 3
                    && record["served_alias"] as? String == "flaky")
            let metrics = try await harness.metricsText()
            #expect(sample(metrics, "sluice_retries_total", [#"alias="flaky""#]) == 2)
            #expect(
                sample(metrics, "sluice_upstream_attempts_total", [#"alias="flaky""#, #"outcome="server_error""#]) == 2)
            #expect(sample(metrics, "sluice_upstream_attempts_total", [#"alias="flaky""#, #"outcome="ok""#]) == 1)
        }
    }

    @Test("once retries are spent the provider's own error reaches the caller; a 400 is never retried")
    func retriesSpent() async throws {
        try await AgentHarness.with(starting: {
            try await Self.harness(
                [
                    Entry(alias: "down", model: "openai/mock+status=503"),
                    Entry(alias: "bad", model: "openai/mock+status=400"),
                ],
                router: "  num_retries: 1\n  retry_after: 0.01\n")
        }) { harness in
            let down = try await harness.chat(model: "down")
            #expect(down.status == 503)
            #expect(try json(down)["error"].flatMap { ($0 as? [String: Any])?["code"] as? String } == "mock_503")
            let bad = try await harness.chat(model: "bad")
            #expect(bad.status == 400)
            #expect(
                requests(harness, model: "mock+status=503") == 2 && requests(harness, model: "mock+status=400") == 1)
            let records = await harness.auditRecords(2)
            #expect(records.map { $0["attempts"] as? Int } == [2, 1])
            #expect(records.map { $0["error"] as? String } == ["upstream_http_503", "upstream_http_400"])
        }
    }

    @Test(
        "a failing OpenAI deployment falls back to an Anthropic one, plain and streamed, priced as the fallback"
    )
    func fallbackToAnthropic() async throws {
        try await AgentHarness.with(starting: {
            try await Self.harness(
                [
                    Entry(alias: "gpt-main", model: "openai/mock+status=500"),
                    Entry(alias: "claude", model: "anthropic/mock", price: (0.000003, 0.000015)),
                ], router: "  num_retries: 1\n  retry_after: 0.01\n  fallbacks:\n    - gpt-main: [claude]\n")
        }) { harness in
            let plain = try await harness.chat(model: "gpt-main")
            #expect(plain.status == 200)
            let body = try json(plain)
            #expect(body["object"] as? String == "chat.completion" && body["model"] as? String == "claude")
            let message = (body["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any]
            #expect(message?["content"] as? String == "Sluice mock says hello and counts every token")

            let streamed = try await harness.post(
                #"{"model":"gpt-main","stream":true,"stream_options":{"include_usage":true},"#
                    + #""messages":[{"role":"user","content":"Hello"}]}"#
            )
            #expect(streamed.status == 200 && streamed.header("content-type") == "text/event-stream")
            let lines = streamed.text.split(separator: "\n").filter { $0.hasPrefix("data: ") }
            #expect(lines.last == "data: [DONE]")
            #expect(
                lines.dropLast().allSatisfy {
                    $0.contains(#""model":"claude""#) && $0.contains("chat.completion.chunk")
                })

            // Two attempts at the OpenAI deployment, then one Messages call, for each of the two calls.
            #expect(harness.mock.requests.filter { $0.path == "/v1/chat/completions" }.count == 4)
            #expect(harness.mock.requests.filter { $0.path == "/v1/messages" }.count == 2)
            let records = await harness.auditRecords(2)
            for record in records {
                #expect(record["alias"] as? String == "gpt-main" && record["served_alias"] as? String == "claude")
                #expect(record["attempts"] as? Int == 3 && record["status"] as? Int == 200)
                let prompt = try #require(record["prompt_tokens"] as? Int)
                let completion = try #require(record["completion_tokens"] as? Int)
                let cost = try #require(record["cost_usd"] as? Double)
                #expect(abs(cost - (Double(prompt) * 0.000003 + Double(completion) * 0.000015)) < 1e-9)
            }
            let metrics = try await harness.metricsText()
            #expect(sample(metrics, "sluice_fallbacks_total", [#"alias="gpt-main""#, #"fallback="claude""#]) == 2)
        }
    }

    @Test("a prompt too long for the model goes to the context-window fallback, not the general one")
    func contextWindowFallback() async throws {
        try await AgentHarness.with(starting: {
            try await Self.harness(
                [
                    Entry(alias: "small", model: "openai/mock+context_window"),
                    Entry(alias: "large", model: "openai/mock"),
                    Entry(alias: "other", model: "openai/mock"),
                ],
                router:
                    "  num_retries: 2\n  fallbacks:\n    - small: [other]\n"
                    + "  context_window_fallbacks:\n    - small: [large]\n"
            )
        }) { harness in
            let response = try await harness.chat(model: "small")
            #expect(response.status == 200)
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["served_alias"] as? String == "large" && record["attempts"] as? Int == 2)
            #expect(requests(harness, model: "mock+context_window") == 1)
        }
    }

    @Test("a deployment that refuses connections is retried elsewhere, then cooled down and left alone")
    func connectFailuresCoolDown() async throws {
        let dead = try ExternalProcess.refusingPort()
        defer { dead.close() }
        try await AgentHarness.with(starting: {
            try await Self.harness(
                [
                    Entry(alias: "chat", model: "openai/mock", apiBase: "https://127.0.0.1:\(dead.port)/v1"),
                    Entry(alias: "chat", model: "openai/mock"),
                ], router: "  num_retries: 1\n  retry_after: 0.01\n  allowed_fails: 1\n  cooldown_time: 300\n")
        }) { harness in
            for _ in 0..<30 {
                let response = try await harness.chat(model: "chat")
                #expect(response.status == 200)
            }
            let records = await harness.auditRecords(30)
            let failedAttempts = records.reduce(0) { $0 + (($1["attempts"] as? Int ?? 1) - 1) }
            // Picked at random, the dead one fails twice (allowed_fails + 1) and is then left out.
            #expect(failedAttempts == 2)
            #expect(harness.mock.requests.count == 30)
            let metrics = try await harness.metricsText()
            #expect(sample(metrics, "sluice_deployment_cooling_down", ["127.0.0.1:\(dead.port)"]) == 1)
            #expect(sample(metrics, "sluice_upstream_attempts_total", [#"outcome="connect""#]) == 2)
        }
    }

    @Test(
        "a deployment's rpm cap holds: past it the caller gets 429 with Retry-After, the provider sees nothing"
    )
    func rpmCap() async throws {
        try await AgentHarness.with(starting: {
            try await Self.harness(
                [Entry(alias: "capped", model: "openai/mock", extra: "      rpm: 2")], router: "  num_retries: 0\n")
        }) { harness in
            #expect(try await harness.chat(model: "capped").status == 200)
            #expect(try await harness.chat(model: "capped").status == 200)
            let refused = try await harness.chat(model: "capped")
            #expect(refused.status == 429)
            #expect(
                try json(refused)["error"].flatMap { ($0 as? [String: Any])?["code"] as? String }
                    == "no_deployment_available")
            #expect(refused.header("retry-after").flatMap(Int.init).map { (1...30).contains($0) } == true)
            #expect(harness.mock.requests.count == 2)
        }
    }

    @Test("a caller gone during a retry's backoff is settled once as 499, and the retry is not sent")
    func hangUpDuringBackoff() async throws {
        try await AgentHarness.with(starting: {
            // A backoff of 2.5–5 s: the hang-up lands inside it even on a loaded machine.
            try await Self.harness(
                [Entry(alias: "down", model: "openai/mock+status=503+fail_first=100")],
                router: "  num_retries: 2\n  retry_after: 5\n")
        }) { harness in
            let channel = try await ClientBootstrap(group: harness.group)
                .connect(host: "127.0.0.1", port: harness.agentPort).get()
            let body = #"{"model":"down","messages":[{"role":"user","content":"hi"}]}"#
            try await channel.writeAndFlush(
                channel.allocator.buffer(
                    string: "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"))
            // The backoff has begun once the retry is counted; the agent has no other signal.
            let deadline = ContinuousClock.now + .seconds(10)
            while sample(try await harness.metricsText(), "sluice_retries_total", [#"alias="down""#]) != 1 {
                try #require(ContinuousClock.now < deadline, "the first attempt's 503 was never retried")
                try await Task.sleep(for: .milliseconds(5))
            }
            try await channel.close()

            // Settled at the hang-up, not when the backoff would have ended: one attempt.
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["status"] as? Int == 499 && record["error"] as? String == "client_disconnected")
            #expect(record["attempts"] as? Int == 1)
            #expect(requests(harness, model: "mock+status=503+fail_first=100") == 1)
        }
    }

    @Test("nothing is retried once bytes have reached the caller: a stream broken midway ends with an error event")
    func noRetryAfterBytes() async throws {
        try await AgentHarness.with(starting: {
            try await Self.harness(
                [Entry(alias: "breaks", model: "openai/mock+rst_after=2")],
                router: "  num_retries: 3\n  retry_after: 0.01\n")
        }) { harness in
            let response = try await harness.chat(model: "breaks", stream: true)
            #expect(response.status == 200)
            #expect(response.text.contains(#""type":"upstream_error""#))
            #expect(harness.mock.requests.count == 1)
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["attempts"] as? Int == 1 && record["stream_completed"] as? Bool == false)
        }
    }
}
