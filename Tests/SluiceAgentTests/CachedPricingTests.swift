import Foundation
import SluiceAgent
import SluiceTestSupport
import Testing

/// Prices that match the invoice: prompt-cache reads, cache writes and reasoning tokens are
/// read from each provider's own usage figures and priced at their own rates, streamed and
/// not, for OpenAI and Anthropic callers alike, through a real agent and the mock provider.
@Suite("Cache-aware prices")
struct CachedPricingTests {
    /// Per-token rates (USD) every alias here is priced at.
    static let input = 0.000003
    static let cacheRead = 0.0000003
    static let cacheWrite = 0.00000375
    static let output = 0.000015
    static let reasoning = 0.00002

    /// One alias per provider, its mock reporting 1,000 prompt tokens of which 600 were read
    /// from the cache (Anthropic: and 200 written to it), five answer tokens, and three
    /// reasoning tokens (OpenAI: within the five; Gemini: on top of them).
    static let deployments = [
        ("cached-openai", "openai/mock+prompt=1000+cached=600+reasoning=3+chunks=5", "v1"),
        ("cached-claude", "anthropic/mock+prompt=1000+cached=600+cache_write=200+chunks=5", "v1"),
        ("cached-gemini", "gemini/mock+prompt=1000+cached=600+reasoning=3+chunks=5", "v1beta"),
    ]

    /// What each alias's call costs, worked by hand from the rates above.
    static let expected: [String: (cost: Double, cached: Int, written: Int, reasoning: Int, completion: Int)] = [
        // 400 plain + 600 cached in; 2 plain + 3 reasoning out.
        "cached-openai": (400 * input + 600 * cacheRead + 2 * output + 3 * reasoning, 600, 0, 3, 5),
        // 200 plain + 600 cached + 200 written in; 5 plain out.
        "cached-claude": (200 * input + 600 * cacheRead + 200 * cacheWrite + 5 * output, 600, 200, 0, 5),
        // 400 plain + 600 cached in; 5 answer + 3 thinking out.
        "cached-gemini": (400 * input + 600 * cacheRead + 5 * output + 3 * reasoning, 600, 0, 3, 8),
    ]

    static func harness() async throws -> AgentHarness {
        let harness = try await AgentHarness(aliases: [:])
        var yaml = "model_list:\n"
        for (alias, model, version) in deployments {
            yaml += """
                  - model_name: \(alias)
                    litellm_params:
                      model: \(model)
                      api_base: https://127.0.0.1:\(harness.mock.port)/\(version)
                      api_key: provider-test-secret-0123456789
                      ssl_verify: \(harness.certificate.certificatePath)
                    model_info:
                      input_cost_per_token: \(input)
                      cache_read_input_token_cost: \(cacheRead)
                      cache_creation_input_token_cost: \(cacheWrite)
                      output_cost_per_token: \(output)
                      output_cost_per_reasoning_token: \(reasoning)

                """
        }
        try await harness.restartAgent(yaml: yaml)
        return harness
    }

    func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    /// Every usage object a stream showed, in order (`usage`, or `message.usage` in
    /// Anthropic's `message_start`).
    func usages(in response: TestResponse) throws -> [[String: Any]] {
        try response.text.components(separatedBy: "\n").filter { $0.hasPrefix("data: {") }.compactMap { line in
            let event = try JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any]
            return (event?["usage"] as? [String: Any])
                ?? ((event?["message"] as? [String: Any])?["usage"] as? [String: Any])
                ?? ((event?["response"] as? [String: Any])?["usage"] as? [String: Any])
        }
    }

    @Test(
        "each provider's cache and reasoning figures are priced at their own rates, to 1e-9, for every caller API",
        arguments: [false, true])
    func pricedByPart(stream: Bool) async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            var calls: [String] = []
            for (alias, _, _) in Self.deployments {
                let chat = try await harness.post(
                    #"{"model":"\#(alias)","stream":\#(stream),"messages":[{"role":"user","content":"Hello"}]"#
                        + (stream ? #","stream_options":{"include_usage":true}}"# : "}"))
                #expect(chat.status == 200, "\(alias) chat: \(chat.text)")
                // What the OpenAI caller is shown: the cached part in OpenAI's own detail field.
                let usage =
                    stream
                    ? try usages(in: chat).last
                    : try json(chat)["usage"] as? [String: Any]
                #expect(usage?["prompt_tokens"] as? Int == 1000, "\(alias)")
                #expect(
                    (usage?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 600, "\(alias)")
                calls.append(alias)

                let messages = try await harness.post(
                    #"{"model":"\#(alias)","max_tokens":64,"stream":\#(stream),"#
                        + #""messages":[{"role":"user","content":"Hello"}]}"#,
                    path: "/v1/messages", headers: [("anthropic-version", "2023-06-01")])
                #expect(messages.status == 200, "\(alias) messages: \(messages.text)")
                // What the Anthropic caller is shown: input_tokens without the cache's parts.
                let shown: [String: Any]?
                if stream {
                    // Anthropic gives input figures in `message_start`; a translated stream
                    // gives them all in its closing `message_delta`.
                    shown = try usages(in: messages).last { $0["cache_read_input_tokens"] != nil }
                } else {
                    shown = try json(messages)["usage"] as? [String: Any]
                }
                let written = Self.expected[alias]!.written
                #expect(
                    shown?["input_tokens"] as? Int == 1000 - 600 - written, "\(alias): \(String(describing: shown))")
                #expect(shown?["cache_read_input_tokens"] as? Int == 600, "\(alias)")
                calls.append(alias)

                let responses = try await harness.post(
                    #"{"model":"\#(alias)","stream":\#(stream),"input":"Hello"}"#, path: "/v1/responses")
                #expect(responses.status == 200, "\(alias) responses: \(responses.text)")
                // What a Responses caller is shown: its own usage shape, passed through or rebuilt.
                let reported =
                    stream
                    ? try usages(in: responses).last { $0["input_tokens_details"] != nil }
                    : try json(responses)["usage"] as? [String: Any]
                #expect(reported?["input_tokens"] as? Int == 1000, "\(alias): \(String(describing: reported))")
                #expect(
                    (reported?["input_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 600, "\(alias)")
                calls.append(alias)
            }

            let records = await harness.auditRecords(calls.count)
            #expect(records.count == calls.count)
            for (record, alias) in zip(records, calls) {
                let expected = Self.expected[alias]!
                let cost = try #require(record["cost_usd"] as? Double, "\(alias): \(record)")
                #expect(
                    abs(cost - expected.cost) < 1e-9, "\(alias) \(record["path"] ?? ""): \(cost) ≠ \(expected.cost)")
                #expect(record["prompt_tokens"] as? Int == 1000, "\(alias)")
                #expect(record["completion_tokens"] as? Int == expected.completion, "\(alias)")
                #expect(record["cached_tokens"] as? Int == expected.cached, "\(alias)")
                #expect(record["cache_creation_tokens"] as? Int == expected.written, "\(alias)")
                #expect(record["reasoning_tokens"] as? Int == expected.reasoning, "\(alias)")
                #expect(record["usage_estimated"] as? Bool == false, "\(alias)")
            }
        }
    }
}
