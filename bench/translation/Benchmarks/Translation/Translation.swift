import Benchmark
import SluiceAPI

// What one call costs to translate, per request and per streamed event, for each dialect
// pair the agent serves, beside the OpenAI pass-through work it replaces. Inputs are the
// shapes the providers' API references show (and the mock provider sends).

let chatRequest = Array(#"""
    {"model":"bench","max_tokens":256,"temperature":0.2,"stream":true,"stream_options":{"include_usage":true},
     "messages":[{"role":"system","content":"You are a terse assistant."},
                 {"role":"user","content":"What is the weather in Paris today, and should I take an umbrella?"},
                 {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
                 {"role":"tool","tool_call_id":"call_1","content":"{\"temp_c\":18,\"rain\":0.7}"}],
     "tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather",
               "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}
    """#.utf8)

let messagesRequest = Array(#"""
    {"model":"bench","max_tokens":256,"system":"You are a terse assistant.","stream":true,
     "messages":[{"role":"user","content":"What is the weather in Paris today, and should I take an umbrella?"},
                 {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},
                 {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"{\"temp_c\":18,\"rain\":0.7}"}]}],
     "tools":[{"name":"get_weather","description":"Current weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}
    """#.utf8)

let anthropicAnswer = Array(#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"It is 18 C with a 70% chance of rain: take an umbrella."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":92,"output_tokens":17}}"#.utf8)
let geminiAnswer = Array(#"{"candidates":[{"content":{"parts":[{"text":"It is 18 C with a 70% chance of rain: take an umbrella."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":92,"candidatesTokenCount":17,"totalTokenCount":109},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#.utf8)
let openAIAnswer = Array(#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"It is 18 C with a 70% chance of rain: take an umbrella."},"finish_reason":"stop"}],"usage":{"prompt_tokens":92,"completion_tokens":17,"total_tokens":109}}"#.utf8)

func event(_ data: String) -> SSEEvent {
    var decoder = SSEDecoder()
    return (try! Array("data: \(data)\n\n".utf8).withUnsafeBytes { try decoder.push($0) })[0]
}

let anthropicDelta = event(#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"umbrella "}}"#)
let geminiDelta = event(#"{"candidates":[{"content":{"parts":[{"text":"umbrella "}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":92,"candidatesTokenCount":12,"totalTokenCount":104},"responseId":"r1"}"#)
let openAIChunk = #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"umbrella "},"finish_reason":null}],"usage":null}"#
let openAIDelta = event(openAIChunk)
let openAIChunkBytes = Array("data: \(openAIChunk)\n\n".utf8)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
                                           maxDuration: .seconds(2), maxIterations: 1_000_000)

    // Per request.
    Benchmark("request: OpenAI pass-through (validate + splice)") { benchmark in
        for _ in benchmark.scaledIterations {
            let request = try OpenAIRequest(endpoint: .chatCompletions, body: chatRequest)
            blackHole(request.upstreamBody(model: "gpt-4o", defaultUser: "shop/checkout"))
        }
    }
    Benchmark("request: OpenAI → Anthropic Messages") { benchmark in
        for _ in benchmark.scaledIterations {
            let value = try JSONValue.parseObject(chatRequest)
            blackHole(try AnthropicRequest.body(from: value, upstreamModel: "claude-sonnet-4-5", defaultMaxTokens: 4096, defaultUser: "shop/checkout"))
        }
    }
    Benchmark("request: OpenAI → Gemini generateContent") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try GeminiRequest.body(from: try JSONValue.parseObject(chatRequest)))
        }
    }
    Benchmark("request: Anthropic Messages → OpenAI (ingress)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try AnthropicIngress.chatBody(from: AnthropicIngress.parse(messagesRequest)))
        }
    }

    // Per non-streamed answer.
    Benchmark("answer: OpenAI pass-through (usage read)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(openAIAnswer.withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) })
        }
    }
    Benchmark("answer: Anthropic → OpenAI") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(AnthropicResponse.chatCompletion(from: anthropicAnswer, model: "claude", created: 1_700_000_000))
        }
    }
    Benchmark("answer: Gemini → OpenAI") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(GeminiResponse.chatCompletion(from: geminiAnswer, model: "gemini", created: 1_700_000_000))
        }
    }
    Benchmark("answer: OpenAI → Anthropic (ingress)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(AnthropicIngress.message(fromChatCompletion: openAIAnswer, model: "gpt"))
        }
    }

    // Per streamed event.
    Benchmark("event: OpenAI pass-through filter") { benchmark in
        var filter = OpenAIStreamFilter(callerRequestedUsage: true)
        for _ in benchmark.scaledIterations { blackHole(filter.filter(openAIDelta)) }
    }
    Benchmark("event: Anthropic → OpenAI chunk") { benchmark in
        var translator = AnthropicStreamTranslator(model: "claude", created: 1_700_000_000, callerRequestedUsage: true)
        for _ in benchmark.scaledIterations { blackHole(translator.translate(anthropicDelta)) }
    }
    Benchmark("event: Gemini → OpenAI chunk") { benchmark in
        var translator = GeminiStreamTranslator(model: "gemini", created: 1_700_000_000, callerRequestedUsage: true)
        for _ in benchmark.scaledIterations { blackHole(translator.translate(geminiDelta)) }
    }
    Benchmark("event: OpenAI chunk → Anthropic events (ingress)") { benchmark in
        var converter = OpenAIToAnthropicStream(model: "gpt")
        for _ in benchmark.scaledIterations { blackHole(converter.convert(openAIChunkBytes)) }
    }
}
