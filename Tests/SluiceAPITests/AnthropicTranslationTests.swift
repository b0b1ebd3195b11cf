import Foundation
import SluiceAPI
import Testing

/// OpenAI ⇄ Anthropic translation on fixtures in each provider's wire format, as their
/// public API references show it.
@Suite("Anthropic translation")
struct AnthropicTranslationTests {
    func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    func request(_ text: String) throws -> JSONValue {
        try JSONValue.parseObject(Array(text.utf8))
    }

    @Test("a chat request with system, turns, an image, tools and a tool result becomes a Messages request")
    func requestTranslation() throws {
        let openAI = try request(
            """
            {"model":"claude-alias","max_tokens":300,"temperature":0.2,"stop":"END","user":"u-42","stream":true,
             "messages":[
              {"role":"system","content":"You are terse."},
              {"role":"user","content":[{"type":"text","text":"Weather in Paris? See map."},
                                        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},
              {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
                "function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"18 C, cloudy"},
              {"role":"user","content":"Thanks. And tomorrow?"}],
             "tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather",
               "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],
             "tool_choice":"required","frequency_penalty":0.5}
            """)
        let body = try json(
            try AnthropicRequest.body(from: openAI, upstreamModel: "claude-sonnet-4-5", defaultMaxTokens: 4096))
        #expect(body["model"] as? String == "claude-sonnet-4-5")
        #expect(body["max_tokens"] as? Int == 300)
        #expect(body["system"] as? String == "You are terse.")
        #expect(body["stop_sequences"] as? [String] == ["END"])
        #expect(body["stream"] as? Bool == true)
        #expect(body["temperature"] as? Double == 0.2)
        #expect((body["metadata"] as? [String: Any])?["user_id"] as? String == "u-42")
        #expect(body["frequency_penalty"] == nil)
        #expect((body["tool_choice"] as? [String: Any])?["type"] as? String == "any")
        let tool = try #require((body["tools"] as? [[String: Any]])?.first)
        #expect(
            tool["name"] as? String == "get_weather"
                && (tool["input_schema"] as? [String: Any])?["required"] as? [String] == ["city"])

        let messages = try #require(body["messages"] as? [[String: Any]])
        #expect(messages.map { $0["role"] as? String } == ["user", "assistant", "user", "user"])
        let parts = try #require(messages[0]["content"] as? [[String: Any]])
        #expect(parts[0]["text"] as? String == "Weather in Paris? See map.")
        let source = try #require(parts[1]["source"] as? [String: Any])
        #expect(
            source["type"] as? String == "base64" && source["media_type"] as? String == "image/png"
                && source["data"] as? String == "iVBORw0KGgo=")
        let use = try #require((messages[1]["content"] as? [[String: Any]])?.first)
        #expect(use["type"] as? String == "tool_use" && use["id"] as? String == "call_1")
        #expect((use["input"] as? [String: Any])?["city"] as? String == "Paris")
        let result = try #require((messages[2]["content"] as? [[String: Any]])?.first)
        #expect(
            result["type"] as? String == "tool_result" && result["tool_use_id"] as? String == "call_1"
                && result["content"] as? String == "18 C, cloudy")
        #expect(messages[3]["content"] as? String == "Thanks. And tomorrow?")
    }

    @Test("max_tokens falls back to the alias default; n above 1 and unknown roles are refused with a param")
    func requestDefaultsAndRefusals() throws {
        let plain = try json(
            try AnthropicRequest.body(
                from: request(#"{"model":"a","messages":[{"role":"user","content":"hi"}]}"#),
                upstreamModel: "claude", defaultMaxTokens: 1024, defaultUser: "shop/checkout"))
        #expect(plain["max_tokens"] as? Int == 1024)
        #expect((plain["metadata"] as? [String: Any])?["user_id"] as? String == "shop/checkout")
        #expect(plain["system"] == nil && plain["stream"] == nil)
        #expect(throws: RequestBodyError.self) {
            try AnthropicRequest.body(
                from: request(#"{"model":"a","n":2,"messages":[{"role":"user","content":"hi"}]}"#),
                upstreamModel: "claude", defaultMaxTokens: 1024)
        }
        let oracle = try request(#"{"model":"a","messages":[{"role":"oracle","content":"hi"}]}"#)
        do throws(RequestBodyError) {
            _ = try AnthropicRequest.body(from: oracle, upstreamModel: "claude", defaultMaxTokens: 1024)
            Issue.record("an unknown role was accepted")
        } catch {
            #expect(error.param == "messages[0]" && error.code == "unsupported_role")
        }
    }

    @Test("a Messages answer with text and a tool call becomes a chat completion with usage")
    func responseTranslation() throws {
        let anthropic = """
            {"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5",
             "content":[{"type":"text","text":"Checking the weather."},
                        {"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather",
                         "input":{"city":"Paris"}}],
             "stop_reason":"tool_use","stop_sequence":null,
             "usage":{"input_tokens":472,"output_tokens":91,"cache_creation_input_tokens":0,
              "cache_read_input_tokens":8}}
            """
        let (body, usage) = try #require(
            AnthropicResponse.chatCompletion(from: Array(anthropic.utf8), model: "claude-alias", created: 1_800_000_000)
        )
        #expect(usage == TokenUsage(promptTokens: 480, completionTokens: 91, cachedPromptTokens: 8))
        let completion = try json(body)
        #expect(
            completion["object"] as? String == "chat.completion" && completion["model"] as? String == "claude-alias")
        #expect(completion["created"] as? Int == 1_800_000_000)
        let choice = try #require((completion["choices"] as? [[String: Any]])?.first)
        #expect(choice["finish_reason"] as? String == "tool_calls")
        let message = try #require(choice["message"] as? [String: Any])
        #expect(message["content"] as? String == "Checking the weather.")
        let call = try #require((message["tool_calls"] as? [[String: Any]])?.first)
        #expect(call["id"] as? String == "toolu_01A09q90qw90lq917835lq9" && call["type"] as? String == "function")
        let function = try #require(call["function"] as? [String: Any])
        #expect(
            function["name"] as? String == "get_weather" && function["arguments"] as? String == #"{"city":"Paris"}"#)
        #expect((completion["usage"] as? [String: Any])?["total_tokens"] as? Int == 571)
        for (stop, finish) in [
            ("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter"),
        ] {
            #expect(AnthropicResponse.finishReason(stop) == finish)
        }
    }

    @Test("an Anthropic error body keeps its status and maps its type")
    func errors() throws {
        let overloaded = Array(#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.utf8)
        let error = try #require(AnthropicResponse.error(from: overloaded, status: 529))
        #expect(
            error.status == 529 && error.code == "overloaded_error" && error.type == "server_error"
                && error.message == "Overloaded")
        let limited = Array(
            (#"{"type":"error","error":{"type":"rate_limit_error","#
                + #""message":"Number of request tokens has exceeded your per-minute rate limit"}}"#
                ).utf8)
        #expect(AnthropicResponse.error(from: limited, status: 429)?.type == "rate_limit_error")
        #expect(AnthropicResponse.error(from: Array("<html>bad gateway</html>".utf8), status: 502) == nil)
    }

    /// The event stream of a reply with text and then a tool call, as Anthropic sends it
    /// (long events split over several `data:` lines, which SSE joins with a newline).
    static let stream = """
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message",
        data: "role":"assistant","model":"claude-sonnet-4-5","stop_sequence":null,"usage":{"input_tokens":472,
        data: "output_tokens":2},"content":[],"stop_reason":null}}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: ping
        data: {"type": "ping"}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay, let"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'s check."}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: content_block_start
        data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use",
        data: "id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",
        data: "partial_json":"{\\"city\\": \\"Paris\\"}"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":1}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},
        data: "usage":{"output_tokens":89}}

        event: message_stop
        data: {"type":"message_stop"}


        """

    func translate(_ text: String, usage: Bool) throws -> (
        chunks: [[String: Any]], tail: [String], translator: AnthropicStreamTranslator
    ) {
        var decoder = SSEDecoder()
        let events = try Array(text.utf8).withUnsafeBytes { try decoder.push($0) }
        var translator = AnthropicStreamTranslator(
            model: "claude-alias", created: 1_800_000_000, callerRequestedUsage: usage)
        var out: [UInt8] = []
        for event in events { out += translator.translate(event) }
        var chunks: [[String: Any]] = []
        var tail: [String] = []
        for line in String(decoding: out, as: UTF8.self).split(separator: "\n") where line.hasPrefix("data: ") {
            let payload = line.dropFirst(6)
            if let object = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] {
                chunks.append(object)
            } else {
                tail.append(String(payload))
            }
        }
        return (chunks, tail, translator)
    }

    @Test("a streamed reply becomes OpenAI chunks: role, text, a tool call in pieces, finish reason, usage, [DONE]")
    func streamTranslation() throws {
        let (chunks, tail, translator) = try translate(Self.stream, usage: true)
        #expect(tail == ["[DONE]"])
        #expect(
            chunks.allSatisfy {
                $0["id"] as? String == "msg_014p7gG3wDgGV9EUtLvnow3U" && $0["model"] as? String == "claude-alias"
            })
        func delta(_ index: Int) -> [String: Any]? {
            ((chunks[index]["choices"] as? [[String: Any]])?.first)?["delta"] as? [String: Any]
        }
        #expect(delta(0)?["role"] as? String == "assistant")
        let text = chunks.indices.compactMap { delta($0)?["content"] as? String }.joined()
        #expect(text == "Okay, let's check.")
        let calls = chunks.indices.compactMap { (delta($0)?["tool_calls"] as? [[String: Any]])?.first }
        #expect(
            calls.first?["id"] as? String == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
                && calls.allSatisfy { $0["index"] as? Int == 0 })
        #expect((calls.first?["function"] as? [String: Any])?["name"] as? String == "get_weather")
        let arguments = calls.compactMap { ($0["function"] as? [String: Any])?["arguments"] as? String }.joined()
        #expect(arguments == #"{"city": "Paris"}"#)
        let finish = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }
        #expect(finish == ["tool_calls"])
        let usage = try #require(chunks.last?["usage"] as? [String: Any])
        #expect(
            usage["prompt_tokens"] as? Int == 472 && usage["completion_tokens"] as? Int == 89
                && (chunks.last?["choices"] as? [Any])?.isEmpty == true)
        #expect(translator.sawStop && translator.errorType == nil)
        #expect(translator.usage == TokenUsage(promptTokens: 472, completionTokens: 89))
    }

    @Test(
        "a stream cut after some text keeps the usage seen so far, output estimated; no usage chunk unless asked"
    )
    func cutStream() throws {
        let cut = Self.stream.components(separatedBy: "event: content_block_stop")[0]
        let (chunks, tail, translator) = try translate(cut, usage: false)
        #expect(tail.isEmpty && !translator.sawStop)
        #expect(
            translator.usage
                == TokenUsage(
                    promptTokens: 472,
                    completionTokens: TokenUsage.estimate(promptBytes: 0, completionBytes: 18).completionTokens,
                    estimated: true))
        #expect(translator.dataBytes == "Okay, let's check.".utf8.count)
        #expect(chunks.allSatisfy { $0["usage"] == nil })
    }

    @Test("an overloaded_error event inside a 200 stream becomes an OpenAI error event")
    func errorEvent() throws {
        let text =
            Self.stream.components(separatedBy: "event: content_block_stop")[0] + """
                event: error
                data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


                """
        let (chunks, _, translator) = try translate(text, usage: false)
        #expect(translator.errorType == "overloaded_error" && !translator.sawStop)
        let error = try #require(chunks.last?["error"] as? [String: Any])
        #expect(
            error["code"] as? String == "overloaded_error" && error["type"] as? String == "server_error"
                && error["message"] as? String == "Overloaded")
    }

    @Test("JSON values survive a round trip: member order, exact numbers, escapes; duplicate keys are refused")
    func jsonValueRoundTrip() throws {
        let text = #"{"b":1.50,"a":[true,null,{"x":"\u00e9\n\"q\""}],"z":-0,"big":123456789012345678901234567890}"#
        let value = try JSONValue.parseObject(Array(text.utf8))
        #expect(try JSONValue.parseObject(value.bytes) == value)
        #expect(value.objectValue?.map(\.key) == ["b", "a", "z", "big"])
        #expect(value["b"] == .number("1.50") && value["big"] == .number("123456789012345678901234567890"))
        #expect(value["a"]?.arrayValue?[2]["x"]?.stringValue == "é\n\"q\"")
        #expect(throws: JSONScanError.self) { try JSONValue.parseObject(Array(#"{"b":1,"b":2}"#.utf8)) }
    }
}
