import Foundation
import SluiceAgent
import SluiceTestSupport
import Testing

/// OpenAI's Responses API through a real agent and the mock provider: passed through to
/// OpenAI and Azure deployments with the model swapped, its usage read from the body or the
/// `response.completed` event, priced, filtered and audited like chat.
@Suite("Responses API")
struct ResponsesAPITests {
    static func harness() async throws -> AgentHarness {
        let harness = try await AgentHarness(aliases: [:])
        let base = "https://127.0.0.1:\(harness.mock.port)"
        let yaml = """
            model_list:
              - model_name: gpt-cached
                litellm_params:
                  model: openai/mock+prompt=1000+cached=600+reasoning=3+chunks=5
                  api_base: \(base)/v1
                  api_key: provider-test-secret-0123456789
                  ssl_verify: \(harness.certificate.certificatePath)
                model_info:
                  input_cost_per_token: 0.000003
                  cache_read_input_token_cost: 0.0000003
                  output_cost_per_token: 0.000015
                  output_cost_per_reasoning_token: 0.00002
              - model_name: gpt-breaks
                litellm_params:
                  model: openai/mock+mid_stream_error
                  api_base: \(base)/v1
                  ssl_verify: \(harness.certificate.certificatePath)
                model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
              - model_name: gpt-azure
                litellm_params:
                  model: azure/my-deployment
                  api_base: \(base)
                  api_key: azure-test-secret-0123456789
                  ssl_verify: \(harness.certificate.certificatePath)
                model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
            sluice_policy:
              prompt_filters: [{name: us-ssn, pattern: '[0-9]{3}-[0-9]{2}-[0-9]{4}'}]
              services: {shop/checkout: {keyless: allowed}}

            """
        try await harness.restartAgent(yaml: yaml)
        return harness
    }

    /// 400 plain + 600 cached in; 2 plain + 3 reasoning out, at the rates above.
    static let expectedCost = 400 * 0.000003 + 600 * 0.0000003 + 2 * 0.000015 + 3 * 0.00002

    func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test("a plain and a streamed response pass through with the model swapped, priced from their own usage")
    func passedThroughAndPriced() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let plain = try await harness.post(
                #"{"model":"gpt-cached","input":"Hello","instructions":"Be brief.","max_output_tokens":64}"#,
                path: "/v1/responses")
            #expect(plain.status == 200, "\(plain.text)")
            let body = try json(plain.body)
            #expect(body["object"] as? String == "response" && body["status"] as? String == "completed")

            let streamed = try await harness.post(
                #"{"model":"gpt-cached","stream":true,"input":[{"role":"user","content":[{"type":"input_text","#
                    + #""text":"Hello"}]}]}"#,
                path: "/v1/responses")
            #expect(streamed.status == 200 && streamed.header("content-type") == "text/event-stream")
            // The caller gets the provider's events as they were, the last one included.
            let types = streamed.text.split(separator: "\n").filter { $0.hasPrefix("event: ") }.map {
                String($0.dropFirst(7))
            }
            #expect(types.first == "response.created" && types.last == "response.completed", "\(types)")
            #expect(types.filter { $0 == "response.output_text.delta" }.count == 5)

            let sent = harness.mock.requests
            #expect(sent.count == 2 && sent.allSatisfy { $0.path == "/v1/responses" })
            for request in sent {
                let upstream = try json(request.body)
                #expect(upstream["model"] as? String == "mock+prompt=1000+cached=600+reasoning=3+chunks=5")
                // The Responses API refuses include_usage: nothing is added for usage's sake.
                #expect(upstream["stream_options"] == nil)
            }
            let records = await harness.auditRecords(2)
            for record in records {
                #expect(record["path"] as? String == "/v1/responses")
                #expect(abs((record["cost_usd"] as? Double ?? 0) - Self.expectedCost) < 1e-9, "\(record)")
                #expect(record["prompt_tokens"] as? Int == 1000 && record["completion_tokens"] as? Int == 5)
                #expect(record["cached_tokens"] as? Int == 600 && record["reasoning_tokens"] as? Int == 3)
                #expect(record["usage_estimated"] as? Bool == false)
            }
            #expect(records.last?["stream_completed"] as? Bool == true)
        }
    }

    @Test("prompt filters read the input items' text; a refused response reaches no provider")
    func filtered() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let refused = try await harness.post(
                #"{"model":"gpt-cached","input":[{"role":"user","content":[{"type":"input_text","#
                    + #""text":"my ssn is 123-45-6789"}]}]}"#,
                path: "/v1/responses")
            #expect(refused.status == 403 && refused.text.contains("prompt_blocked"), "\(refused.text)")
            let instructions = try await harness.post(
                #"{"model":"gpt-cached","input":"hi","instructions":"remember 123-45-6789"}"#, path: "/v1/responses")
            #expect(instructions.status == 403)
            #expect(harness.mock.requests.isEmpty)
        }
    }

    @Test("an Azure deployment gets the Responses API at the resource's path, with an API version that has it")
    func azure() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let response = try await harness.post(#"{"model":"gpt-azure","input":"Hello"}"#, path: "/v1/responses")
            #expect(response.status == 200, "\(response.text)")
            let seen = try #require(harness.mock.requests.first)
            #expect(seen.path == "/openai/responses?api-version=2025-03-01-preview")
            #expect(seen.header("api-key") == "azure-test-secret-0123456789")
            #expect(try json(seen.body)["model"] as? String == "my-deployment")
        }
    }

    @Test("an error event inside the stream reaches the caller and is audited as the stream's failure")
    func streamError() async throws {
        try await AgentHarness.with(starting: { try await Self.harness() }) { harness in
            let response = try await harness.post(
                #"{"model":"gpt-breaks","stream":true,"input":"Hello"}"#, path: "/v1/responses")
            #expect(response.status == 200 && response.text.contains("event: error"))
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["stream_completed"] as? Bool == false)
            #expect(record["error"] as? String == "upstream_stream_error_event")
        }
    }
}
