import Foundation
import SluiceAPI
import Testing

/// Anthropic Messages callers: their requests as OpenAI chat bodies, and OpenAI answers,
/// streams and errors back in Anthropic's shapes, on fixtures from both API references.
@Suite("Anthropic Messages ingress translation")
struct AnthropicIngressTests {
    func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test("a Messages request with system blocks, an image, tool use and results becomes a chat request")
    func request() throws {
        let body = Array(
            """
            {"model":"claude-sonnet","max_tokens":1024,"system":[{"type":"text","text":"Be terse."}],"temperature":0.3,
             "stop_sequences":["END"],"stream":true,"metadata":{"user_id":"u-9"},
             "tools":[{"name":"get_weather","description":"Weather","input_schema":{"type":"object",
              "properties":{"city":{"type":"string"}}}}],
             "tool_choice":{"type":"tool","name":"get_weather"},
             "messages":[
              {"role":"user","content":[{"type":"text","text":"Paris?"},{"type":"image","source":{"type":"base64",
               "media_type":"image/png","data":"iVBOR"}}]},
              {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"x"},{"type":"text",
               "text":"Checking."},
                                             {"type":"tool_use","id":"toolu_1","name":"get_weather",
                                              "input":{"city":"Paris"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text",
               "text":"18 C"}]},{"type":"text","text":"Thanks"}]}]}
            """.utf8)
        let chat = try json(try AnthropicIngress.chatBody(from: AnthropicIngress.parse(body)))
        #expect(
            chat["model"] as? String == "claude-sonnet" && chat["max_tokens"] as? Int == 1024
                && chat["temperature"] as? Double == 0.3)
        #expect(
            chat["stop"] as? [String] == ["END"] && chat["user"] as? String == "u-9" && chat["stream"] as? Bool == true)
        #expect((chat["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        #expect(
            ((chat["tool_choice"] as? [String: Any])?["function"] as? [String: Any])?["name"] as? String
                == "get_weather")
        let function = try #require(((chat["tools"] as? [[String: Any]])?.first)?["function"] as? [String: Any])
        #expect(
            function["name"] as? String == "get_weather"
                && (function["parameters"] as? [String: Any])?["type"] as? String == "object")
        let messages = try #require(chat["messages"] as? [[String: Any]])
        #expect(messages.map { $0["role"] as? String } == ["system", "user", "assistant", "tool", "user"])
        #expect(messages[0]["content"] as? String == "Be terse.")
        let image = try #require((messages[1]["content"] as? [[String: Any]])?.last)
        #expect((image["image_url"] as? [String: Any])?["url"] as? String == "data:image/png;base64,iVBOR")
        #expect(messages[2]["content"] as? String == "Checking.")
        let call = try #require((messages[2]["tool_calls"] as? [[String: Any]])?.first)
        #expect(
            call["id"] as? String == "toolu_1"
                && (call["function"] as? [String: Any])?["arguments"] as? String == #"{"city":"Paris"}"#)
        #expect(messages[3]["tool_call_id"] as? String == "toolu_1" && messages[3]["content"] as? String == "18 C")
    }

    @Test("a Messages request without max_tokens or with an unknown block is refused with its param")
    func refusals() {
        func refusal(_ text: String) -> RequestBodyError? {
            do {
                _ = try AnthropicIngress.chatBody(from: AnthropicIngress.parse(Array(text.utf8)))
                return nil
            } catch {
                return error
            }
        }
        #expect(refusal(#"{"model":"m","messages":[]}"#)?.param == "max_tokens")
        #expect(
            refusal(#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document"}]}]}"#)?.code
                == "unsupported_content")
        #expect(
            refusal(#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#)?.param
                == "messages.0")
        #expect(refusal("[1]")?.code == "invalid_json")
        for field in ["base_url", "api_base", "api_key", "extra_headers"] {
            let refused = refusal(#"{"model":"m","max_tokens":5,"messages":[],"\#(field)":"https://evil.example"}"#)
            #expect(refused?.code == "forbidden_field" && refused?.param == field)
        }
    }

    @Test("a chat completion with text and a tool call becomes a Message with usage")
    func message() throws {
        let completion = Array(
            #"""
            {"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,
             "message":{"role":"assistant","content":"On it.","tool_calls":[{"id":"call_1","type":"function",
             "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
             "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}}
            """#.utf8)
        let translated = try #require(AnthropicIngress.message(fromChatCompletion: completion, model: "gpt"))
        #expect(translated.usage == TokenUsage(promptTokens: 20, completionTokens: 9))
        let message = try json(translated.body)
        #expect(
            message["type"] as? String == "message" && message["stop_reason"] as? String == "tool_use"
                && message["model"] as? String == "gpt")
        let content = try #require(message["content"] as? [[String: Any]])
        #expect(content[0]["text"] as? String == "On it." && content[1]["type"] as? String == "tool_use")
        #expect((content[1]["input"] as? [String: Any])?["city"] as? String == "Paris")
        #expect((message["usage"] as? [String: Any])?["input_tokens"] as? Int == 20)
    }

    @Test("OpenAI chunks become Anthropic events; a stream cut before [DONE] gets no message_stop")
    func stream() throws {
        func sse(_ payloads: [String]) -> [UInt8] { Array(payloads.map { "data: \($0)\n\n" }.joined().utf8) }
        var converter = OpenAIToAnthropicStream(model: "gpt")
        let first = converter.convert(
            sse([
                #"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","#
                    + #""content":""},"finish_reason":null}]}"#,
                #"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"#
                    + #""finish_reason":null}]}"#,
            ]))
        let text = String(decoding: first, as: UTF8.self)
        #expect(text.hasPrefix("event: message_start\n") && text.contains(#""type":"text_delta","text":"Hi""#))
        #expect(!converter.ended)
        // Split mid-event: nothing until the event is whole.
        let tail = sse([
            #"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#,
            #"{"id":"c1","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#, "[DONE]",
        ])
        #expect(converter.convert(Array(tail.prefix(10))).isEmpty)
        let rest = String(decoding: converter.convert(Array(tail.dropFirst(10))), as: UTF8.self)
        #expect(rest.contains("event: content_block_stop") && rest.contains(#""stop_reason":"max_tokens""#))
        #expect(
            rest.contains(#""usage":{"input_tokens":4,"output_tokens":2}"#)
                && rest.hasSuffix("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
        #expect(converter.ended)

        var failing = OpenAIToAnthropicStream(model: "gpt")
        let error = String(
            decoding: failing.convert(
                sse([#"{"error":{"message":"overloaded","type":"server_error","code":"overloaded_error"}}"#])),
            as: UTF8.self)
        #expect(error.hasPrefix("event: error\n") && error.contains(#""type":"overloaded_error""#))
    }

    @Test("errors take Anthropic's types by status, and keep the rule's code")
    func errors() throws {
        let body = try json(
            AnthropicIngress.errorBody(
                OpenAIError(
                    status: 429, message: "team ml is over its limit", type: "rate_limit_error",
                    code: "rate_limit_exceeded")))
        let error = try #require(body["error"] as? [String: Any])
        #expect(
            body["type"] as? String == "error" && error["type"] as? String == "rate_limit_error"
                && error["code"] as? String == "rate_limit_exceeded")
        for (status, type) in [
            (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"), (502, "api_error"), (529, "overloaded_error"),
        ] {
            let shaped = try json(
                AnthropicIngress.errorBody(OpenAIError(status: status, message: "m", type: "x", code: "c")))
            #expect((shaped["error"] as? [String: Any])?["type"] as? String == type)
        }
    }
}
