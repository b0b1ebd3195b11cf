import Foundation
import SluiceAgent
import SluiceTestSupport
import Testing

/// Callers speaking Anthropic's Messages API (`POST /v1/messages`), served by Anthropic
/// deployments (passed through), and by OpenAI and Gemini ones (translated both ways), through
/// a real agent and the mock provider over HTTP/2 and TLS.
@Suite("Messages API ingress")
struct MessagesIngressTests {
    static func harness(policy: String = "") async throws -> AgentHarness {
        let harness = try await AgentHarness(aliases: [
            "gpt-test": "mock", "gpt-tools": "mock+tool_call", "gpt-limited": "mock+status=429",
        ])
        var yaml = harness.yaml
        for (alias, model) in [
            ("claude", "anthropic/mock"), ("claude-tools", "anthropic/mock+tool_call"), ("gemini", "gemini/mock"),
        ] {
            yaml += """
                  - model_name: \(alias)
                    litellm_params:
                      model: \(model)
                      api_base: https://127.0.0.1:\(harness.mock.port)/\(model.hasPrefix("gemini") ? "v1beta" : "v1")
                      api_key: provider-test-secret-0123456789
                      ssl_verify: \(harness.certificate.certificatePath)
                    model_info:
                      input_cost_per_token: 0.000003
                      output_cost_per_token: 0.000015

                """
        }
        try await harness.restartAgent(yaml: yaml + policy)
        return harness
    }

    func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    func messages(_ harness: AgentHarness, _ body: String, headers: [(String, String)] = []) async throws
        -> TestResponse
    {
        try await harness.post(body, path: "/v1/messages", headers: [("anthropic-version", "2023-06-01")] + headers)
    }

    /// The events of an Anthropic stream, as (name, data) pairs.
    func events(_ response: TestResponse) throws -> [(name: String, data: [String: Any])] {
        try response.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { block in
            let lines = block.split(separator: "\n")
            let name = lines.first { $0.hasPrefix("event: ") }.map { String($0.dropFirst(7)) } ?? ""
            let data = try #require(lines.first { $0.hasPrefix("data: ") }.map { $0.dropFirst(6) })
            return (name, try #require(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]))
        }
    }

    @Test(
        "to an Anthropic deployment the body goes through with only the model swapped; the answer comes back as is"
    )
    func native() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let body =
                #"{"model":"claude","max_tokens":64,"system":[{"type":"text","text":"Be brief.","#
                + #""cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"Hello"}],"#
                + #""top_k":5}"#
            let response = try await messages(harness, body)
            #expect(response.status == 200)
            let message = try json(response)
            #expect(message["type"] as? String == "message" && message["id"] as? String == "msg_mock_1")
            #expect(
                ((message["content"] as? [[String: Any]])?.first)?["text"] as? String
                    == "Sluice mock says hello and counts every token")
            let seen = try #require(harness.mock.requests.first)
            #expect(seen.path == "/v1/messages" && seen.header("x-api-key") == "provider-test-secret-0123456789")
            let sent = try #require(try JSONSerialization.jsonObject(with: Data(seen.body)) as? [String: Any])
            #expect(sent["model"] as? String == "mock" && sent["top_k"] as? Int == 5)
            #expect(
                (((sent["system"] as? [[String: Any]])?.first)?["cache_control"] as? [String: Any])?["type"] as? String
                    == "ephemeral")

            let streamed = try await messages(
                harness,
                #"{"model":"claude","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello"}]}"#)
            let names = try events(streamed).map(\.name)
            #expect(names.first == "message_start" && names.last == "message_stop" && names.contains("ping"))
            let records = await harness.auditRecords(2)
            #expect(
                records.allSatisfy {
                    $0["completion_tokens"] as? Int == 8 && $0["usage_estimated"] as? Bool == false
                        && $0["path"] as? String == "/v1/messages"
                })
            #expect(records[1]["stream_completed"] as? Bool == true)
        }
    }

    @Test(
        "to an OpenAI deployment a Messages call is translated; the answer comes back as a Message, plain and streamed"
    )
    func translatedFromOpenAI() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let plain = try json(
                try await messages(
                    harness,
                    #"{"model":"gpt-test","max_tokens":64,"system":"Be brief.","messages":[{"role":"user","#
                        + #""content":[{"type":"text","text":"Hello"}]}],"stop_sequences":["END"],"#
                        + #""metadata":{"user_id":"u-7"}}"#
                ))
            #expect(
                plain["type"] as? String == "message" && plain["role"] as? String == "assistant"
                    && plain["model"] as? String == "gpt-test")
            #expect(
                ((plain["content"] as? [[String: Any]])?.first)?["text"] as? String
                    == "Sluice mock says hello and counts every token")
            #expect(plain["stop_reason"] as? String == "end_turn")
            #expect((plain["usage"] as? [String: Any])?["output_tokens"] as? Int == 8)
            let first = try #require(harness.mock.requests.first)
            let sent = try #require(try JSONSerialization.jsonObject(with: Data(first.body)) as? [String: Any])
            #expect(
                sent["max_tokens"] as? Int == 64 && sent["stop"] as? [String] == ["END"]
                    && sent["user"] as? String == "u-7")
            #expect(((sent["messages"] as? [[String: Any]])?.first)?["role"] as? String == "system")

            let streamed = try await messages(
                harness,
                #"{"model":"gpt-test","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello"}]}"#)
            #expect(streamed.status == 200 && streamed.header("content-type") == "text/event-stream")
            let stream = try events(streamed)
            #expect(
                stream.map(\.name).first == "message_start"
                    && stream.map(\.name).suffix(3) == ["content_block_stop", "message_delta", "message_stop"])
            let text = stream.filter { $0.name == "content_block_delta" }.compactMap {
                ($0.data["delta"] as? [String: Any])?["text"] as? String
            }.joined()
            #expect(text == "Sluice mock says hello and counts every token")
            let delta = try #require(stream.first { $0.name == "message_delta" })
            #expect((delta.data["usage"] as? [String: Any])?["output_tokens"] as? Int == 8)
            #expect((delta.data["delta"] as? [String: Any])?["stop_reason"] as? String == "end_turn")
            let records = await harness.auditRecords(2)
            #expect(
                records.allSatisfy { $0["completion_tokens"] as? Int == 8 && $0["usage_estimated"] as? Bool == false })
        }
    }

    @Test("tool use round-trips through an OpenAI deployment, streamed as tool_use blocks with input_json_delta pieces")
    func toolsThroughOpenAI() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let tools =
                #"[{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}]"#
            let plain = try json(
                try await messages(
                    harness,
                    #"{"model":"gpt-tools","max_tokens":64,"tools":\#(tools),"tool_choice":{"type":"any"},"#
                        + #""messages":[{"role":"user","content":"Weather?"}]}"#
                ))
            #expect(plain["stop_reason"] as? String == "tool_use")
            let use = try #require(
                (plain["content"] as? [[String: Any]])?.first { $0["type"] as? String == "tool_use" })
            #expect(
                use["name"] as? String == "get_weather"
                    && (use["input"] as? [String: Any])?["city"] as? String == "Paris")
            let first = try #require(harness.mock.requests.first)
            let sent = try #require(try JSONSerialization.jsonObject(with: Data(first.body)) as? [String: Any])
            #expect(sent["tool_choice"] as? String == "required")
            #expect(
                (((sent["tools"] as? [[String: Any]])?.first)?["function"] as? [String: Any])?["name"] as? String
                    == "get_weather")

            let streamed = try events(
                try await messages(
                    harness,
                    #"{"model":"gpt-tools","max_tokens":64,"stream":true,"tools":\#(tools),"messages":[{"role":"user","#
                        + #""content":"Weather?"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","#
                        + #""name":"get_weather","input":{"city":"Oslo"}}]},{"role":"user","#
                        + #""content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"-3 C"},{"type":"text","#
                        + #""text":"And Paris?"}]}]}"#
                ))
            let start = try #require(
                streamed.first {
                    $0.name == "content_block_start"
                        && (($0.data["content_block"] as? [String: Any])?["type"] as? String) == "tool_use"
                })
            #expect((start.data["content_block"] as? [String: Any])?["name"] as? String == "get_weather")
            let pieces = streamed.compactMap { ($0.data["delta"] as? [String: Any])?["partial_json"] as? String }
                .joined()
            #expect(pieces == #"{"city": "Paris"}"#)
            #expect(
                ((streamed.first { $0.name == "message_delta" })?.data["delta"] as? [String: Any])?["stop_reason"]
                    as? String == "tool_use")
            // The earlier tool use and its result went upstream as OpenAI tool_calls and a tool message.
            let history = try #require(
                try JSONSerialization.jsonObject(with: Data(harness.mock.requests[1].body)) as? [String: Any])
            let roles = (history["messages"] as? [[String: Any]])?.map { $0["role"] as? String }
            #expect(roles == ["user", "assistant", "tool", "user"])
        }
    }

    @Test("to a Gemini deployment the stream is translated twice over and still ends with usage and message_stop")
    func translatedFromGemini() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let stream = try events(
                try await messages(
                    harness,
                    #"{"model":"gemini","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello"}]}"#)
            )
            let text = stream.compactMap { ($0.data["delta"] as? [String: Any])?["text"] as? String }.joined()
            #expect(text == "Sluice mock says hello and counts every token" && stream.last?.name == "message_stop")
            #expect(harness.mock.requests.first?.path == "/v1beta/models/mock:streamGenerateContent?alt=sse")
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["completion_tokens"] as? Int == 8 && record["stream_completed"] as? Bool == true)
        }
    }

    @Test("refusals and provider errors reach a Messages caller in Anthropic's error shape, status and rule kept")
    func errors() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let unknown = try await messages(
                harness, #"{"model":"nope","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}"#)
            #expect(unknown.status == 404)
            let body = try json(unknown)
            let error = try #require(body["error"] as? [String: Any])
            #expect(
                body["type"] as? String == "error" && error["type"] as? String == "not_found_error"
                    && error["code"] as? String == "model_not_found")
            let missing = try await messages(
                harness, #"{"model":"claude","messages":[{"role":"user","content":"Hello"}]}"#)
            #expect(
                missing.status == 400 && missing.text.contains(#""type":"invalid_request_error""#)
                    && missing.text.contains("max_tokens"))
            // A field that would pick the upstream is refused before anything is sent to the Anthropic deployment.
            let redirect = try await messages(
                harness, #"{"model":"claude","max_tokens":64,"base_url":"https://evil.example","messages":[]}"#)
            let redirectError = try #require(try json(redirect)["error"] as? [String: Any])
            #expect(
                redirect.status == 400 && redirectError["type"] as? String == "invalid_request_error"
                    && redirectError["code"] as? String == "forbidden_field" && redirect.text.contains("base_url"))
            let limited = try await messages(
                harness, #"{"model":"gpt-limited","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}"#)
            #expect(limited.status == 429 && limited.text.contains(#""type":"rate_limit_error""#))
            let wrongMethod = try await harness.send(raw: "GET /v1/messages HTTP/1.1\r\nhost: x\r\n\r\n")
            #expect(wrongMethod.status == 405 && wrongMethod.text.contains(#""type":"error""#))
            #expect(harness.mock.requests.count == 1)
        }
    }

    @Test(
        "the anthropic Python SDK, unchanged but for base_url, works against Anthropic, OpenAI and Gemini deployments",
        .enabled(if: ProviderDialectTests.sdkPython != nil, "set SLUICE_SDK_PYTHON (scripts/test.sh makes the venv)"))
    func officialAnthropicSDK() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("sdk/anthropic_sdk_check.py").path
            let output = try TemporaryDirectory()
            let process = try await ExternalScript.run(
                try #require(ProviderDialectTests.sdkPython),
                arguments: [script, "http://127.0.0.1:\(harness.agentPort)"], outputDirectory: output)
            #expect(process.status == 0, "\(process.output)")
            #expect(
                process.output.split(separator: "\n").filter { $0.hasPrefix("ok ") }.count == 18, "\(process.output)")
            output.remove()
        }
    }
}
