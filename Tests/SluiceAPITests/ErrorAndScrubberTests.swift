import SluiceAPI
import Testing

@Suite("Error bodies and credential scrubbing")
struct ErrorAndScrubberTests {
    @Test("the error body is OpenAI-shaped and escapes its text")
    func errorShape() {
        let error = OpenAIError(
            status: 404, message: "no \"model\"\n", type: "invalid_request_error", code: "model_not_found",
            param: "model")
        #expect(
            String(decoding: error.body, as: UTF8.self)
                == #"{"error":{"message":"no \"model\"\n","type":"invalid_request_error","param":"model","#
                    + #""code":"model_not_found"}}"#
        )
        #expect(
            String(decoding: OpenAIError(status: 502, message: "m", type: "t", code: "c").sseEvent, as: UTF8.self)
                == "data: " + #"{"error":{"message":"m","type":"t","param":null,"code":"c"}}"# + "\n\n")
    }

    @Test("removes configured secrets and key-shaped tokens, full or half-masked")
    func scrubs() {
        let scrubber = CredentialScrubber(secrets: ["prov-secret-abcdef123456", "short"])
        let input =
            #"{"error":{"message":"bad key prov-secret-abcdef123456; Incorrect API key provided: "#
                + #"sk-proj-abc1************wxyz. Also AIzaSyD-1234567890abcdef and short"}}"#
        let output = String(decoding: scrubber.scrub(Array(input.utf8)), as: UTF8.self)
        #expect(!output.contains("prov-secret-abcdef123456"))
        #expect(!output.contains("abc1"))
        #expect(!output.contains("wxyz"))
        #expect(!output.contains("1234567890"))
        #expect(output.contains("sk-[REDACTED]"))
        #expect(output.contains("and short"))  // too short to scrub without false positives
    }

    @Test("leaves ordinary text alone")
    func leavesText() {
        let scrubber = CredentialScrubber(secrets: ["prov-secret-abcdef123456"])
        let text = Array(#"{"error":{"message":"ask-me: task-list and sk-1 are fine"}}"#.utf8)
        #expect(scrubber.scrub(text) == text)
    }

    @Test("estimates and reads usage")
    func usage() {
        #expect(
            TokenUsage.estimate(promptBytes: 9, completionBytes: 4)
                == TokenUsage(promptTokens: 3, completionTokens: 1, estimated: true))
        let body = Array(#"{"id":"x","usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#.utf8)
        #expect(
            body.withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) }
                == TokenUsage(promptTokens: 5, completionTokens: 7))
        let embeddings = Array(#"{"usage":{"prompt_tokens":5,"total_tokens":5}}"#.utf8)
        #expect(
            embeddings.withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) }
                == TokenUsage(promptTokens: 5, completionTokens: 0))
        let negative = Array(#"{"usage":{"prompt_tokens":-5}}"#.utf8)
        #expect(negative.withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) } == nil)
    }
}

@Suite("Provider error categories")
struct ProviderErrorCategoryTests {
    func category(_ status: Int, _ body: String) -> ProviderErrorCategory {
        ProviderErrorCategory.of(status: status, body: Array(body.utf8))
    }

    @Test("context-window and content-policy refusals are recognised in each provider's words")
    func categories() {
        // OpenAI's error reference.
        #expect(
            category(
                400,
                #"{"error":{"message":"This model's maximum context length is 128000 tokens. However,"#
                    + #" your messages resulted in 130512 tokens.","type":"invalid_request_error","param":"messages","#
                    + #""code":"context_length_exceeded"}}"#
            ) == .contextWindowExceeded)
        // Azure OpenAI's content filter.
        #expect(
            category(
                400,
                #"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's "#
                    + #"content management policy.","type":null,"param":"prompt","code":"content_filter","#
                    + #""status":400}}"#
            ) == .contentPolicy)
        #expect(
            category(
                400,
                #"{"error":{"message":"Your request was rejected as a result of our safety system.","#
                    + #""type":"invalid_request_error","code":"content_policy_violation"}}"#
            ) == .contentPolicy)
        // Anthropic's errors reference.
        #expect(
            category(
                400,
                #"{"type":"error","error":{"type":"invalid_request_error","#
                    + #""message":"prompt is too long: 210541 tokens > 200000 maximum"}}"#
            ) == .contextWindowExceeded)
        // Gemini's INVALID_ARGUMENT.
        #expect(
            category(
                400,
                #"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of "#
                    + #"tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#
            ) == .contextWindowExceeded)
        #expect(
            category(
                400,
                #"{"error":{"message":"Unrecognized request argument supplied: foo","type":"invalid_request_error","#
                    + #""code":null}}"#
            ) == .other)
        #expect(
            category(500, #"{"error":{"message":"maximum context length","code":"context_length_exceeded"}}"#) == .other
        )
        #expect(category(400, "not json") == .other)
    }
}
