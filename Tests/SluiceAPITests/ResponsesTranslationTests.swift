import Foundation
import SluiceAPI
import Testing

/// Responses API calls as chat calls and back, as plain values: what a provider without the
/// Responses API is sent, and what the Responses caller gets.
@Suite("Responses API translation")
struct ResponsesTranslationTests {
    func value(_ text: String) throws -> JSONValue { try JSONValue.parseObject(Array(text.utf8)) }

    func object(_ value: JSONValue) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(value.bytes)) as? [String: Any])
    }

    @Test("instructions, multi-turn items, images, function calls and their outputs become chat messages")
    func ingress() throws {
        let request = try value(
            #"{"model":"claude","instructions":"Be brief.","max_output_tokens":64,"temperature":0.2,"#
                + #""input":[{"role":"developer","content":"Answer in French."},"#
                + #"{"type":"message","role":"user","content":[{"type":"input_text","text":"What is this?"},"#
                + #"{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}]},"#
                + #"{"type":"reasoning","id":"rs_1","summary":[]},"#
                + #"{"type":"function_call","call_id":"call_1","name":"get_weather","#
                + #""arguments":"{\"city\":\"Paris\"}"},"#
                + #"{"type":"function_call_output","call_id":"call_1","output":"18C"},"#
                + #"{"role":"assistant","content":[{"type":"output_text","text":"It is 18C."}]}],"#
                + #""tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}],"#
                + #""tool_choice":{"type":"function","name":"get_weather"},"store":false,"stream":true}"#)
        let chat = try object(try ResponsesIngress.chatRequest(from: request))
        #expect(chat["model"] as? String == "claude" && chat["max_tokens"] as? Int == 64)
        #expect(chat["stream"] as? Bool == true && chat["temperature"] as? Double == 0.2)
        let messages = try #require(chat["messages"] as? [[String: Any]])
        #expect(
            messages.map { $0["role"] as? String } == ["system", "system", "user", "assistant", "tool", "assistant"])
        #expect(messages[0]["content"] as? String == "Be brief.")
        #expect(messages[1]["content"] as? String == "Answer in French.")
        let parts = try #require(messages[2]["content"] as? [[String: Any]])
        #expect(parts[0]["type"] as? String == "text" && parts[0]["text"] as? String == "What is this?")
        #expect(
            (parts[1]["image_url"] as? [String: Any])?["url"] as? String == "data:image/png;base64,iVBORw0KGgo=")
        let call = try #require((messages[3]["tool_calls"] as? [[String: Any]])?.first)
        #expect(call["id"] as? String == "call_1")
        #expect((call["function"] as? [String: Any])?["arguments"] as? String == #"{"city":"Paris"}"#)
        #expect(messages[4]["tool_call_id"] as? String == "call_1" && messages[4]["content"] as? String == "18C")
        let tool = try #require((chat["tools"] as? [[String: Any]])?.first)
        #expect((tool["function"] as? [String: Any])?["name"] as? String == "get_weather")
        #expect(
            ((chat["tool_choice"] as? [String: Any])?["function"] as? [String: Any])?["name"] as? String
                == "get_weather")
    }

    @Test(
        "what needs OpenAI's storage or tools is refused naming the field, never forwarded half-understood",
        arguments: [
            (#""previous_response_id":"resp_1""#, "previous_response_id"),
            (#""conversation":"conv_1""#, "conversation"), (#""store":true"#, "store"),
            (#""background":true"#, "background"),
            (#""tools":[{"type":"web_search_preview"}]"#, "tools[0].type"),
            (#""text":{"format":{"type":"json_schema","name":"x","schema":{}}}"#, "text.format"),
            (#""modalities":["audio"]"#, "modalities"),
        ])
    func refusals(field: String, named: String) throws {
        let request = try value(#"{"model":"claude","input":"Hi",\#(field)}"#)
        do {
            _ = try ResponsesIngress.chatRequest(from: request)
            Issue.record("\(field) was translated")
        } catch {
            #expect(error.param == named && error.code == "unsupported_parameter", "\(error.message)")
        }
        let file = try value(
            #"{"model":"c","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}"#)
        #expect(throws: RequestBodyError.self) { try ResponsesIngress.chatRequest(from: file) }
    }

    @Test("a chat completion becomes a response: text and function calls as items, usage in the API's names")
    func plainEgress() throws {
        let completion = Array(
            (#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","#
                + #""content":"Hi there","tool_calls":[{"id":"call_9","type":"function","function":{"name":"f","#
                + #""arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":100,"#
                + #""completion_tokens":7,"prompt_tokens_details":{"cached_tokens":60}}}"#).utf8)
        let translated = try #require(
            ResponsesEgress.response(fromChatCompletion: completion, model: "claude", created: 1_800_000_000))
        #expect(translated.usage == TokenUsage(promptTokens: 100, completionTokens: 7, cachedPromptTokens: 60))
        let response = try #require(try JSONSerialization.jsonObject(with: Data(translated.body)) as? [String: Any])
        #expect(response["object"] as? String == "response" && response["status"] as? String == "completed")
        #expect(response["id"] as? String == "resp_chatcmpl-1" && response["model"] as? String == "claude")
        let output = try #require(response["output"] as? [[String: Any]])
        #expect(output.map { $0["type"] as? String } == ["message", "function_call"])
        #expect(((output[0]["content"] as? [[String: Any]])?.first)?["text"] as? String == "Hi there")
        #expect(output[1]["call_id"] as? String == "call_9" && output[1]["name"] as? String == "f")
        let usage = try #require(response["usage"] as? [String: Any])
        #expect(usage["input_tokens"] as? Int == 100 && usage["output_tokens"] as? Int == 7)
        #expect((usage["input_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 60)

        let cut = Array(
            #"{"id":"c","choices":[{"index":0,"message":{"content":"Hi"},"finish_reason":"length"}]}"#.utf8)
        let incomplete = try #require(ResponsesEgress.response(fromChatCompletion: cut, model: "m", created: 0))
        #expect(String(decoding: incomplete.body, as: UTF8.self).contains(#""status":"incomplete""#))
    }

    @Test("a chat stream becomes the typed events in order, numbered, ending with response.completed")
    func streamedEgress() throws {
        var stream = ChatToResponsesStream(model: "claude", created: 1_800_000_000)
        let chat = [
            #"{"id":"chatcmpl-2","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            #"{"id":"chatcmpl-2","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            #"{"id":"chatcmpl-2","choices":[{"index":0,"delta":{"content":"lo"}}]}"#,
            #"{"id":"chatcmpl-2","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","#
                + #""type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}}]}"#,
            #"{"id":"chatcmpl-2","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"#
                + #""arguments":"1}"}}]}}]}"#,
            #"{"id":"chatcmpl-2","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            #"{"id":"chatcmpl-2","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":4}}"#,
        ].map { "data: \($0)\n\n" }.joined() + "data: [DONE]\n\n"
        // Fed in two pieces cut mid-event: a partial event waits for its rest.
        let bytes = Array(chat.utf8)
        let out = stream.convert(Array(bytes[..<137])) + stream.convert(Array(bytes[137...]))
        let events = String(decoding: out, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty }
        let types = events.map { $0.split(separator: "\n")[0].dropFirst(7) }
        #expect(
            types == [
                "response.created", "response.in_progress", "response.output_item.added",
                "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                "response.output_text.done", "response.content_part.done", "response.output_item.done",
                "response.output_item.added", "response.function_call_arguments.delta",
                "response.function_call_arguments.delta", "response.function_call_arguments.done",
                "response.output_item.done", "response.completed",
            ])
        let payloads = try events.map { event in
            try #require(
                try JSONSerialization.jsonObject(with: Data(event.split(separator: "\n")[1].dropFirst(6).utf8))
                    as? [String: Any])
        }
        #expect(payloads.map { $0["sequence_number"] as? Int } == Array(0..<15))
        let final = try #require(payloads.last?["response"] as? [String: Any])
        let output = try #require(final["output"] as? [[String: Any]])
        #expect(((output[0]["content"] as? [[String: Any]])?.first)?["text"] as? String == "Hello")
        #expect(output[1]["arguments"] as? String == #"{"a":1}"# && output[1]["status"] as? String == "completed")
        #expect((final["usage"] as? [String: Any])?["output_tokens"] as? Int == 4)
        #expect(stream.ended)
    }
}
