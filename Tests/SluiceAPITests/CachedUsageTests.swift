import Foundation
import SluiceAPI
import Testing

/// Each provider's cache and reasoning figures, read into one shape: prompt tokens count
/// every input token (cache included), completion tokens every output token (reasoning
/// included), and the parts are kept apart for pricing.
@Suite("Cache and reasoning usage")
struct CachedUsageTests {
    @Test("OpenAI: cached_tokens and reasoning_tokens from the details, in a body and in a stream's usage chunk")
    func openAI() throws {
        let body = Array(
            (#"{"usage":{"prompt_tokens":1000,"completion_tokens":50,"total_tokens":1050,"#
                + #""prompt_tokens_details":{"cached_tokens":600,"audio_tokens":0},"#
                + #""completion_tokens_details":{"reasoning_tokens":30}}}"#).utf8)
        let expected = TokenUsage(
            promptTokens: 1000, completionTokens: 50, cachedPromptTokens: 600, reasoningTokens: 30)
        #expect(body.withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) } == expected)
        let parsed = try JSONValue.parseObject(body)
        #expect(TokenUsage.fromOpenAIUsage(parsed["usage"]) == expected)

        var filter = OpenAIStreamFilter(callerRequestedUsage: true)
        let chunk = Array(
            (#"{"id":"c","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":50,"#
                + #""prompt_tokens_details":{"cached_tokens":600},"#
                + #""completion_tokens_details":{"reasoning_tokens":30}}}"#).utf8)
        _ = filter.filter(SSEEvent(raw: Array("data: ".utf8) + chunk + [10, 10], data: chunk, name: nil))
        #expect(filter.usage == expected)
        // Details that are not counts are not taken: the call is priced at the plain rates.
        let garbled = Array(
            #"{"usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":"x"}}}"#.utf8)
        #expect(garbled.withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) }?.cachedPromptTokens == 0)
    }

    @Test("Anthropic: cache reads and writes are added to input_tokens and kept apart, plain and streamed")
    func anthropic() throws {
        let usage = try JSONValue.parseObject(
            Array(
                (#"{"input_tokens":200,"cache_creation_input_tokens":200,"cache_read_input_tokens":600,"#
                    + #""output_tokens":5}"#).utf8))
        let expected = TokenUsage(
            promptTokens: 1000, completionTokens: 5, cachedPromptTokens: 600, cacheCreationTokens: 200)
        #expect(AnthropicResponse.usage(usage) == expected)

        let stream = """
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":200,"cache_creation_input_tokens":200,"cache_read_input_tokens":600,"output_tokens":1}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}

            event: message_stop
            data: {"type":"message_stop"}


            """
        var decoder = SSEDecoder()
        var translator = AnthropicStreamTranslator(model: "claude", created: 0, callerRequestedUsage: true)
        var out: [UInt8] = []
        for event in try Array(stream.utf8).withUnsafeBytes({ try decoder.push($0) }) {
            out += translator.translate(event)
        }
        #expect(translator.usage == expected)
        // The OpenAI caller's usage chunk shows the cached part in OpenAI's own field.
        let text = String(decoding: out, as: UTF8.self)
        #expect(text.contains(#""prompt_tokens":1000"#) && text.contains(#""cached_tokens":600"#))
    }

    @Test("Anthropic: a message_delta's cumulative input figures are taken, a smaller one is not")
    func anthropicCumulative() throws {
        var decoder = SSEDecoder()
        var translator = AnthropicStreamTranslator(model: "claude", created: 0, callerRequestedUsage: false)
        let events = """
            data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":10,"output_tokens":1}}}

            data: {"type":"message_delta","delta":{},"usage":{"input_tokens":10,"cache_read_input_tokens":90,"output_tokens":3}}

            data: {"type":"message_delta","delta":{},"usage":{"input_tokens":0,"output_tokens":4}}


            """
        for event in try Array(events.utf8).withUnsafeBytes({ try decoder.push($0) }) {
            _ = translator.translate(event)
        }
        #expect(translator.usage == TokenUsage(promptTokens: 100, completionTokens: 4, cachedPromptTokens: 90))
    }

    @Test("Gemini: cachedContentTokenCount is within the prompt, thoughtsTokenCount is added to the output")
    func gemini() throws {
        let metadata = try JSONValue.parseObject(
            Array(
                (#"{"promptTokenCount":1000,"cachedContentTokenCount":600,"candidatesTokenCount":5,"#
                    + #""thoughtsTokenCount":3,"totalTokenCount":1008}"#).utf8))
        #expect(
            GeminiResponse.usage(metadata)
                == TokenUsage(promptTokens: 1000, completionTokens: 8, cachedPromptTokens: 600, reasoningTokens: 3))
    }

    @Test("parts never exceed their whole, whatever a provider reports")
    func clamped() {
        let usage = TokenUsage(
            promptTokens: 10, completionTokens: 2, cachedPromptTokens: 8, cacheCreationTokens: 8, reasoningTokens: 9)
        #expect(usage.cachedPromptTokens == 8 && usage.cacheCreationTokens == 2 && usage.reasoningTokens == 2)
    }
}
