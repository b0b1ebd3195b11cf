import Foundation
import SluiceAgent
import SluiceTestSupport
import Testing

/// OpenAI callers, Anthropic and Azure deployments: the agent speaks each provider's dialect
/// (translating Anthropic both ways), through a real agent and the mock provider over HTTP/2
/// and TLS.
@Suite("Provider dialects upstream")
struct ProviderDialectTests {
    /// A harness whose aliases point at the mock in Anthropic's dialect.
    static func harness() async throws -> AgentHarness {
        let harness = try await AgentHarness(aliases: ["gpt-test": "mock"])
        var yaml = harness.yaml  // keeps the OpenAI alias beside the Anthropic ones
        for (alias, model) in [
            ("claude", "mock"), ("claude-tools", "mock+tool_call"), ("claude-overloaded", "mock+status=529"),
            ("claude-breaks", "mock+mid_stream_error"),
        ] {
            yaml += """
                  - model_name: \(alias)
                    litellm_params:
                      model: anthropic/\(model)
                      api_base: https://127.0.0.1:\(harness.mock.port)/v1
                      api_key: sk-ant-test-provider-secret-0123456789
                      ssl_verify: \(harness.certificate.certificatePath)
                    model_info:
                      input_cost_per_token: 0.000003
                      output_cost_per_token: 0.000015
                      max_output_tokens: 512

                """
        }
        yaml += """
              - model_name: gemini
                litellm_params:
                  model: gemini/mock
                  api_base: https://127.0.0.1:\(harness.mock.port)/v1beta
                  api_key: gemini-test-provider-secret-0123456789
                  ssl_verify: \(harness.certificate.certificatePath)
                model_info: {input_cost_per_token: 0.0000003, output_cost_per_token: 0.0000025}

            """
        try await harness.restartAgent(yaml: yaml)
        return harness
    }

    func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    @Test(
        "chat to an Anthropic deployment goes out as Messages, comes back as a chat completion with usage and cost"
    )
    func nonStreaming() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let response = try await harness.post(
                #"{"model":"claude","messages":[{"role":"system","content":"Be brief."},{"role":"user","#
                    + #""content":"Hello"}]}"#
            )
            #expect(response.status == 200)
            let body = try json(response)
            #expect(body["object"] as? String == "chat.completion" && body["model"] as? String == "claude")
            let choice = try #require((body["choices"] as? [[String: Any]])?.first)
            #expect(
                (choice["message"] as? [String: Any])?["content"] as? String
                    == "Sluice mock says hello and counts every token")
            #expect(choice["finish_reason"] as? String == "stop")
            let usage = try #require(body["usage"] as? [String: Any])
            #expect(usage["completion_tokens"] as? Int == 8)

            let seen = try #require(harness.mock.requests.first)
            #expect(seen.path == "/v1/messages")
            #expect(
                seen.header("x-api-key") == "sk-ant-test-provider-secret-0123456789"
                    && seen.header("authorization") == nil)
            #expect(seen.header("anthropic-version") == "2023-06-01")
            let sent = try #require(try JSONSerialization.jsonObject(with: Data(seen.body)) as? [String: Any])
            #expect(
                sent["model"] as? String == "mock" && sent["system"] as? String == "Be brief."
                    && sent["max_tokens"] as? Int == 512)
            #expect((sent["metadata"] as? [String: Any])?["user_id"] as? String == "shop/checkout")

            let record = try #require(await harness.auditRecords(1).first)
            #expect(
                record["prompt_tokens"] as? Int == usage["prompt_tokens"] as? Int
                    && record["completion_tokens"] as? Int == 8)
            #expect(record["usage_estimated"] as? Bool == false && (record["cost_usd"] as? Double ?? 0) > 0)
            #expect(record["deployment"] as? String == "https://127.0.0.1:\(harness.mock.port)/v1")
        }
    }

    @Test("a streamed call is translated event by event, ending with usage when asked and [DONE]")
    func streaming() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let response = try await harness.post(
                #"{"model":"claude","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","#
                    + #""content":"Hello"}]}"#
            )
            #expect(response.status == 200 && response.header("content-type") == "text/event-stream")
            let stream = try StreamedChat(response)
            #expect(stream.endedWithDone)
            #expect(stream.text == "Sluice mock says hello and counts every token")
            #expect(stream.finishReasons == ["stop"])
            #expect(stream.usage?["completion_tokens"] as? Int == 8)
            let seen = try #require(harness.mock.requests.first)
            #expect(String(decoding: seen.body, as: UTF8.self).contains(#""stream":true"#))
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["stream_completed"] as? Bool == true && record["completion_tokens"] as? Int == 8)
        }
    }

    @Test("tool calls come back as OpenAI tool_calls, streamed and not")
    func toolCalls() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let tools =
                #"[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","#
                + #""properties":{"city":{"type":"string"}}}}}]"#
            let plain = try json(
                try await harness.post(
                    #"{"model":"claude-tools","tools":\#(tools),"messages":[{"role":"user","content":"Weather?"}]}"#))
            let choice = try #require((plain["choices"] as? [[String: Any]])?.first)
            #expect(choice["finish_reason"] as? String == "tool_calls")
            let call = try #require(((choice["message"] as? [String: Any])?["tool_calls"] as? [[String: Any]])?.first)
            #expect((call["function"] as? [String: Any])?["name"] as? String == "get_weather")
            #expect((call["function"] as? [String: Any])?["arguments"] as? String == #"{"city":"Paris"}"#)

            let streamed = try await harness.post(
                #"{"model":"claude-tools","stream":true,"tools":\#(tools),"messages":[{"role":"user","#
                    + #""content":"Weather?"}]}"#
            )
            #expect(
                streamed.text.contains(
                    #""tool_calls":[{"index":0,"id":"toolu_mock_1","type":"function","function":{"name":"get_weather","#
                        + #""arguments":""}}]"#
                ))
            #expect(
                streamed.text.contains(#""finish_reason":"tool_calls""#) && streamed.text.hasSuffix("data: [DONE]\n\n"))
            let first = try #require(harness.mock.requests.first)
            let sent = try #require(try JSONSerialization.jsonObject(with: Data(first.body)) as? [String: Any])
            #expect(((sent["tools"] as? [[String: Any]])?.first)?["name"] as? String == "get_weather")
        }
    }

    @Test(
        "provider errors keep their status and type in the OpenAI shape; overloaded mid-stream becomes an error event")
    func errors() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let overloaded = try await harness.post(
                #"{"model":"claude-overloaded","messages":[{"role":"user","content":"Hello"}]}"#)
            #expect(overloaded.status == 529)
            let error = try #require(try json(overloaded)["error"] as? [String: Any])
            #expect(
                error["code"] as? String == "overloaded_error" && error["type"] as? String == "server_error"
                    && error["message"] as? String == "Overloaded")

            let broken = try await harness.post(
                #"{"model":"claude-breaks","stream":true,"messages":[{"role":"user","content":"Hello"}]}"#)
            #expect(broken.status == 200)
            #expect(broken.text.contains(#""code":"overloaded_error""#) && !broken.text.contains("[DONE]"))

            let embeddings = try await harness.post(#"{"model":"claude","input":"hi"}"#, path: "/v1/embeddings")
            #expect(embeddings.status == 400 && embeddings.text.contains("unsupported_endpoint"))
            let refusedN = try await harness.post(
                #"{"model":"claude","n":2,"messages":[{"role":"user","content":"Hello"}]}"#)
            #expect(refusedN.status == 400 && refusedN.text.contains(#""param":"n""#))

            let records = await harness.auditRecords(4)
            #expect(
                records.map { $0["error"] as? String } == [
                    "upstream_overloaded_error", "upstream_overloaded_error", "unsupported_endpoint",
                    "unsupported_parameter",
                ])
            #expect(
                records[1]["stream_completed"] as? Bool == false && (records[1]["completion_tokens"] as? Int ?? 0) > 0)
            // Two calls reached the provider; the refused ones did not.
            #expect(harness.mock.requests.count == 2)
        }
    }

    /// The Python interpreter of the venv `scripts/test.sh` makes, with the official SDKs.
    static var sdkPython: String? { ProcessInfo.processInfo.environment["SLUICE_SDK_PYTHON"] }

    @Test(
        "the official openai Python SDK, unchanged but for base_url, works against OpenAI, Anthropic, Gemini",
        .enabled(if: sdkPython != nil, "set SLUICE_SDK_PYTHON (scripts/test.sh makes the venv)"))
    func officialOpenAISDK() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("sdk/openai_sdk_check.py").path
            let output = try TemporaryDirectory()
            let process = try await ExternalScript.run(
                try #require(Self.sdkPython), arguments: [script, "http://127.0.0.1:\(harness.agentPort)/v1"],
                outputDirectory: output)
            #expect(process.status == 0, "\(process.output)")
            // Every check ran (the script stops at the first failure).
            #expect(
                process.output.split(separator: "\n").filter { $0.hasPrefix("ok ") }.count == 27, "\(process.output)")
            output.remove()
        }
    }

    @Test("an azure/ deployment gets the OpenAI body at its deployment URL, with api-version and an api-key header")
    func azureDeployment() async throws {
        try await AgentHarness.with(aliases: ["gpt-test": "mock"]) { harness in
            try await harness.restartAgent(
                yaml: harness.yaml + """
                      - model_name: gpt-azure
                        litellm_params:
                          model: azure/mock
                          api_base: https://127.0.0.1:\(harness.mock.port)
                          api_version: 2025-01-01-preview
                          api_key: azure-test-provider-secret-0123456789
                          ssl_verify: \(harness.certificate.certificatePath)

                    """)
            let reply = try await harness.chat(model: "gpt-azure")
            #expect(reply.status == 200 && reply.text.contains("Sluice mock says hello"))
            let streamed = try await harness.chat(model: "gpt-azure", stream: true)
            #expect(streamed.status == 200 && streamed.text.hasSuffix("data: [DONE]\n\n"))
            let seen = harness.mock.requests
            #expect(
                seen.map(\.path)
                    == Array(
                        repeating: "/openai/deployments/mock/chat/completions?api-version=2025-01-01-preview", count: 2)
            )
            #expect(
                seen.allSatisfy {
                    $0.header("api-key") == "azure-test-provider-secret-0123456789" && $0.header("authorization") == nil
                })
            #expect((await harness.auditRecords(2)).allSatisfy { ($0["completion_tokens"] as? Int) == 8 })
        }

        func loadError(_ params: String) -> String? {
            do throws(ConfigError) {
                _ = try ConfigLoader(environment: [:]).load(
                    yaml: "model_list:\n  - model_name: a\n    litellm_params: {\(params)}\n")
                return nil
            } catch {
                return error.message
            }
        }
        #expect(loadError("model: azure/gpt4o")?.contains("api_base is required") == true)
        #expect(
            loadError(#"model: "azure/gpt4o?x=1", api_base: "https://r.openai.azure.com""#)?.contains("deployment name")
                == true)
        #expect(
            loadError(#"model: azure/gpt4o, api_base: "https://r.openai.azure.com", api_version: "2024&x=1""#)?
                .contains("api_version") == true)
    }
}
