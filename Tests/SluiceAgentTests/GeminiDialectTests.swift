import Foundation
import SluiceAgent
import SluiceTestSupport
import Testing

/// OpenAI callers, Gemini deployments: `generateContent` / `streamGenerateContent` through a
/// real agent and the mock provider's Gemini mode over HTTP/2 and TLS.
@Suite("Gemini upstream")
struct GeminiDialectTests {
    static func harness(router: String = "") async throws -> AgentHarness {
        let harness = try await AgentHarness(aliases: ["gpt-test": "mock"])
        var yaml = harness.yaml
        for (alias, model) in [
            ("gemini", "mock"), ("gemini-tools", "mock+tool_call"), ("gemini-limited", "mock+status=429"),
            ("gemini-breaks", "mock+mid_stream_error"), ("gemini-blocks", "mock+content_filter"),
        ] {
            yaml += """
                  - model_name: \(alias)
                    litellm_params:
                      model: gemini/\(model)
                      api_base: https://127.0.0.1:\(harness.mock.port)/v1beta
                      api_key: gemini-test-provider-secret-0123456789
                      ssl_verify: \(harness.certificate.certificatePath)
                    model_info:
                      input_cost_per_token: 0.0000003
                      output_cost_per_token: 0.0000025

                """
        }
        if !router.isEmpty { yaml += "router_settings:\n" + router }
        try await harness.restartAgent(yaml: yaml)
        return harness
    }

    func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    @Test(
        "chat goes out as generateContent (key in x-goog-api-key), comes back as a chat completion with usage and cost"
    )
    func plain() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let response = try await harness.post(
                #"{"model":"gemini","max_tokens":64,"messages":[{"role":"system","content":"Be brief."},"#
                    + #"{"role":"user","content":"Hello"}]}"#
            )
            #expect(response.status == 200)
            let body = try json(response)
            #expect(body["object"] as? String == "chat.completion" && body["model"] as? String == "gemini")
            let choice = try #require((body["choices"] as? [[String: Any]])?.first)
            #expect(
                (choice["message"] as? [String: Any])?["content"] as? String
                    == "Sluice mock says hello and counts every token")
            #expect(choice["finish_reason"] as? String == "stop")
            #expect((body["usage"] as? [String: Any])?["completion_tokens"] as? Int == 8)

            let seen = try #require(harness.mock.requests.first)
            #expect(seen.path == "/v1beta/models/mock:generateContent")
            #expect(
                seen.header("x-goog-api-key") == "gemini-test-provider-secret-0123456789"
                    && seen.header("authorization") == nil)
            let sent = try #require(try JSONSerialization.jsonObject(with: Data(seen.body)) as? [String: Any])
            #expect(
                sent["model"] == nil && (sent["generationConfig"] as? [String: Any])?["maxOutputTokens"] as? Int == 64)
            #expect(
                (((sent["systemInstruction"] as? [String: Any])?["parts"] as? [[String: Any]])?.first)?["text"]
                    as? String == "Be brief.")

            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["completion_tokens"] as? Int == 8 && record["usage_estimated"] as? Bool == false)
            let prompt = try #require(record["prompt_tokens"] as? Int)
            #expect(abs((record["cost_usd"] as? Double ?? 0) - (Double(prompt) * 0.0000003 + 8 * 0.0000025)) < 1e-12)
        }
    }

    @Test(
        "a stream uses streamGenerateContent?alt=sse, translated event by event, ending with usage and [DONE]"
    )
    func streamed() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let response = try await harness.post(
                #"{"model":"gemini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","#
                    + #""content":"Hello"}]}"#
            )
            #expect(response.status == 200 && response.header("content-type") == "text/event-stream")
            let stream = try StreamedChat(response)
            #expect(stream.endedWithDone)
            #expect(stream.text == "Sluice mock says hello and counts every token" && stream.finishReasons == ["stop"])
            #expect(stream.usage?["completion_tokens"] as? Int == 8)
            #expect(harness.mock.requests.first?.path == "/v1beta/models/mock:streamGenerateContent?alt=sse")
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["stream_completed"] as? Bool == true && record["completion_tokens"] as? Int == 8)
        }
    }

    @Test("function calls come back as tool_calls, streamed and not")
    func toolCalls() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let tools =
                #"[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","#
                + #""properties":{"city":{"type":"string"}}}}}]"#
            let plain = try json(
                try await harness.post(
                    #"{"model":"gemini-tools","tools":\#(tools),"messages":[{"role":"user","content":"Weather?"}]}"#))
            let choice = try #require((plain["choices"] as? [[String: Any]])?.first)
            #expect(choice["finish_reason"] as? String == "tool_calls")
            let call = try #require(((choice["message"] as? [String: Any])?["tool_calls"] as? [[String: Any]])?.first)
            #expect((call["function"] as? [String: Any])?["name"] as? String == "get_weather")
            #expect((call["function"] as? [String: Any])?["arguments"] as? String == #"{"city":"Paris"}"#)
            let streamed = try await harness.post(
                #"{"model":"gemini-tools","stream":true,"tools":\#(tools),"messages":[{"role":"user","#
                    + #""content":"Weather?"}]}"#
            )
            #expect(
                streamed.text.contains(
                    #""tool_calls":[{"index":0,"id":"call_0","type":"function","function":{"name":"get_weather","#
                        + #""arguments":"{\"city\":\"Paris\"}"}}]"#
                ))
            #expect(
                streamed.text.contains(#""finish_reason":"tool_calls""#) && streamed.text.hasSuffix("data: [DONE]\n\n"))
        }
    }

    @Test(
        "errors keep their status in the OpenAI shape; an error in the stream becomes an error event, counted partial"
    )
    func errors() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let limited = try await harness.chat(model: "gemini-limited")
            #expect(limited.status == 429)
            let error = try #require(try json(limited)["error"] as? [String: Any])
            #expect(error["type"] as? String == "rate_limit_error" && error["code"] as? String == "resource_exhausted")
            let broken = try await harness.chat(model: "gemini-breaks", stream: true)
            #expect(
                broken.status == 200 && broken.text.contains(#""code":"unavailable""#)
                    && !broken.text.contains("[DONE]"))
            let records = await harness.auditRecords(2)
            #expect(
                records.map { $0["error"] as? String } == ["upstream_resource_exhausted", "upstream_error_event_503"])
            #expect(
                records[1]["stream_completed"] as? Bool == false && (records[1]["completion_tokens"] as? Int ?? 0) > 0)
        }
    }

    @Test(
        "a prompt Gemini blocks goes to the content-policy fallback; without one, finish_reason content_filter"
    )
    func blockedPrompt() async throws {
        try await AgentHarness.with(starting: {
            try await Self.harness(router: "  content_policy_fallbacks:\n    - gemini-blocks: [gpt-test]\n")
        }) { harness in
            let answered = try json(try await harness.chat(model: "gemini-blocks"))
            #expect(
                ((answered["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
                    == "Sluice mock says hello and counts every token")
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["served_alias"] as? String == "gpt-test" && record["attempts"] as? Int == 2)
            try await harness.restartAgent(yaml: harness.yaml.components(separatedBy: "router_settings:")[0])
            let refused = try json(try await harness.chat(model: "gemini-blocks"))
            #expect((refused["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "content_filter")
        }
    }

    @Test("embeddings go out as batchEmbedContents and come back as OpenAI's list, in floats or base64, priced")
    func embeddings() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let floats = try await harness.post(
                #"{"model":"gemini","input":["first","second"],"dimensions":4,"encoding_format":"float"}"#,
                path: "/v1/embeddings")
            #expect(floats.status == 200, "\(floats.text)")
            let list = try json(floats)
            let data = try #require(list["data"] as? [[String: Any]])
            #expect(list["object"] as? String == "list" && data.count == 2 && data[1]["index"] as? Int == 1)
            #expect(data[0]["embedding"] as? [Double] == [0.0023, -0.0091, 0.0154, 0.0042])

            let seen = try #require(harness.mock.requests.first)
            #expect(seen.path == "/v1beta/models/mock:batchEmbedContents")
            let sent = try #require(try JSONSerialization.jsonObject(with: Data(seen.body)) as? [String: Any])
            let requests = try #require(sent["requests"] as? [[String: Any]])
            #expect(requests.count == 2 && requests[0]["model"] as? String == "models/mock")
            #expect(requests[1]["outputDimensionality"] as? Int == 4)
            #expect(
                (((requests[1]["content"] as? [String: Any])?["parts"] as? [[String: Any]])?.first)?["text"]
                    as? String == "second")

            // OpenAI's SDKs ask for base64 by default: little-endian float32, as OpenAI sends.
            let encoded = try await harness.post(
                #"{"model":"gemini","input":"one","encoding_format":"base64"}"#, path: "/v1/embeddings")
            let vector = try #require(((try json(encoded)["data"] as? [[String: Any]])?.first)?["embedding"] as? String)
            let bytes = try #require(Data(base64Encoded: vector))
            let decoded = stride(from: 0, to: bytes.count, by: 4).map { offset in
                Float(bitPattern: bytes[offset..<offset + 4].enumerated().reduce(UInt32(0)) {
                    $0 | UInt32($1.element) << (8 * UInt32($1.offset))
                })
            }
            #expect(decoded == [0.0023, -0.0091, 0.0154, 0.0042] as [Float])

            let tokens = try await harness.post(#"{"model":"gemini","input":[[1,2,3]]}"#, path: "/v1/embeddings")
            #expect(tokens.status == 400 && tokens.text.contains("token arrays"))
            #expect(harness.mock.requests.count == 2)

            let records = await harness.auditRecords(3)
            for record in records.prefix(2) {
                // Gemini reports no usage for embeddings: estimated, priced, and said so.
                #expect(record["usage_estimated"] as? Bool == true && (record["cost_usd"] as? Double ?? 0) > 0)
            }
        }
    }
}
