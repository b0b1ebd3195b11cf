import Foundation
import SluiceAPI
import Testing

/// OpenAI ⇄ Gemini translation on fixtures in Gemini's wire format, as its public API
/// reference (`generateContent`, `streamGenerateContent`, `GenerateContentResponse`) shows it.
@Suite("Gemini translation")
struct GeminiTranslationTests {
    func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    func request(_ text: String) throws -> JSONValue {
        try JSONValue.parseObject(Array(text.utf8))
    }

    @Test("a chat request with system, turns, an image, tools and tool results becomes a generateContent request")
    func requestTranslation() throws {
        let openAI = try request(
            """
            {"model":"gemini-alias","max_tokens":300,"temperature":0.2,"top_p":0.9,"stop":["END"],"seed":7,
             "user":"u-42","stream":true,
             "response_format":{"type":"json_object"},
             "messages":[
              {"role":"system","content":"You are terse."},
              {"role":"user","content":[{"type":"text","text":"Weather in Paris and Rome?"},
                                        {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}}]},
              {"role":"assistant","content":"Checking.","tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"get_weather",
                 "arguments":"{\\"city\\":\\"Paris\\"}"}},
                {"id":"call_2","type":"function","function":{"name":"get_weather",
                 "arguments":"{\\"city\\":\\"Rome\\"}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"{\\"temp_c\\":18}"},
              {"role":"tool","tool_call_id":"call_2","content":"sunny"},
              {"role":"user","content":"Thanks."}],
             "tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather",
               "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],
                "additionalProperties":false}}}],
             "tool_choice":{"type":"function","function":{"name":"get_weather"}}}
            """)
        let body = try json(try GeminiRequest.body(from: openAI))
        #expect(body["model"] == nil && body["stream"] == nil && body["user"] == nil)
        let system = try #require((body["systemInstruction"] as? [String: Any])?["parts"] as? [[String: Any]])
        #expect(system.first?["text"] as? String == "You are terse.")
        let config = try #require(body["generationConfig"] as? [String: Any])
        #expect(
            config["maxOutputTokens"] as? Int == 300 && config["temperature"] as? Double == 0.2
                && config["topP"] as? Double == 0.9)
        #expect(config["stopSequences"] as? [String] == ["END"] && config["seed"] as? Int == 7)
        #expect(config["responseMimeType"] as? String == "application/json")
        let declarations = try #require(
            ((body["tools"] as? [[String: Any]])?.first)?["functionDeclarations"] as? [[String: Any]])
        #expect(declarations.first?["name"] as? String == "get_weather")
        #expect(
            (declarations.first?["parametersJsonSchema"] as? [String: Any])?["additionalProperties"] as? Bool == false)
        let calling = try #require((body["toolConfig"] as? [String: Any])?["functionCallingConfig"] as? [String: Any])
        #expect(calling["mode"] as? String == "ANY" && calling["allowedFunctionNames"] as? [String] == ["get_weather"])

        let contents = try #require(body["contents"] as? [[String: Any]])
        #expect(contents.map { $0["role"] as? String } == ["user", "model", "user", "user"])
        let userParts = try #require(contents[0]["parts"] as? [[String: Any]])
        #expect(userParts[0]["text"] as? String == "Weather in Paris and Rome?")
        let inline = try #require(userParts[1]["inlineData"] as? [String: Any])
        #expect(inline["mimeType"] as? String == "image/jpeg" && inline["data"] as? String == "/9j/4AAQ")
        let modelParts = try #require(contents[1]["parts"] as? [[String: Any]])
        #expect(modelParts[0]["text"] as? String == "Checking.")
        let call = try #require(modelParts[1]["functionCall"] as? [String: Any])
        #expect(
            call["name"] as? String == "get_weather" && (call["args"] as? [String: Any])?["city"] as? String == "Paris")
        // Both results in one turn; a JSON object result as it is, plain text wrapped.
        let responses = try #require(contents[2]["parts"] as? [[String: Any]])
        #expect(responses.count == 2)
        let first = try #require(responses[0]["functionResponse"] as? [String: Any])
        #expect(
            first["name"] as? String == "get_weather" && (first["response"] as? [String: Any])?["temp_c"] as? Int == 18)
        let second = try #require(responses[1]["functionResponse"] as? [String: Any])
        #expect((second["response"] as? [String: Any])?["content"] as? String == "sunny")
    }

    @Test("what Gemini cannot take is refused with a param: n above 1, image URLs, a tool result without its call")
    func refusals() throws {
        func refusal(_ text: String) -> RequestBodyError? {
            do {
                _ = try GeminiRequest.body(from: try request(text))
                return nil
            } catch let error as RequestBodyError {
                return error
            } catch {
                return nil
            }
        }
        #expect(refusal(#"{"n":2,"messages":[{"role":"user","content":"hi"}]}"#)?.param == "n")
        #expect(
            refusal(
                #"{"messages":[{"role":"user","content":[{"type":"image_url","#
                    + #""image_url":{"url":"https://x/cat.png"}}]}]}"#
            )?.code == "unsupported_content")
        #expect(
            refusal(#"{"messages":[{"role":"tool","tool_call_id":"nope","content":"x"}]}"#)?.code == "invalid_value")
        #expect(refusal(#"{"messages":[{"role":"critic","content":"x"}]}"#)?.param == "messages[0]")
    }

    @Test("an answer with text, a function call and usage (thinking included) becomes a chat completion")
    func responseTranslation() throws {
        let gemini = Array(
            """
            {"candidates":[{"content":{"parts":[{"text":"thinking…","thought":true},{"text":"Let me check."},
              {"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}],"role":"model"},"finishReason":"STOP",
               "index":0,
              "safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"NEGLIGIBLE"}]}],
             "usageMetadata":{"promptTokenCount":31,"candidatesTokenCount":12,"thoughtsTokenCount":20,
              "totalTokenCount":63},
             "modelVersion":"gemini-2.5-flash","responseId":"abc123"}
            """.utf8)
        let translated = try #require(GeminiResponse.chatCompletion(from: gemini, model: "gem", created: 1_700_000_000))
        #expect(translated.usage == TokenUsage(promptTokens: 31, completionTokens: 32, reasoningTokens: 20))
        let body = try json(translated.body)
        #expect(
            body["id"] as? String == "abc123" && body["model"] as? String == "gem"
                && body["created"] as? Int == 1_700_000_000)
        let choice = try #require((body["choices"] as? [[String: Any]])?.first)
        #expect(choice["finish_reason"] as? String == "tool_calls")
        let message = try #require(choice["message"] as? [String: Any])
        #expect(message["content"] as? String == "Let me check.")
        let call = try #require((message["tool_calls"] as? [[String: Any]])?.first)
        #expect(call["id"] as? String == "call_0" && call["type"] as? String == "function")
        #expect((call["function"] as? [String: Any])?["arguments"] as? String == #"{"city":"Paris"}"#)
        #expect((body["usage"] as? [String: Any])?["total_tokens"] as? Int == 63)
    }

    @Test("finish reasons, a blocked prompt and error bodies map to OpenAI's")
    func reasonsAndErrors() throws {
        #expect(GeminiResponse.finishReason("STOP", calledTools: false) == "stop")
        #expect(GeminiResponse.finishReason("MAX_TOKENS", calledTools: false) == "length")
        #expect(GeminiResponse.finishReason("SAFETY", calledTools: false) == "content_filter")
        #expect(GeminiResponse.finishReason("RECITATION", calledTools: true) == "content_filter")
        #expect(GeminiResponse.finishReason("STOP", calledTools: true) == "tool_calls")
        let blocked = Array(
            #"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}"#
                .utf8)
        #expect(GeminiResponse.promptBlocked(blocked))
        let answer = try json(try #require(GeminiResponse.chatCompletion(from: blocked, model: "gem", created: 1)).body)
        #expect((answer["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "content_filter")

        let error = try #require(
            GeminiResponse.error(
                from: Array(
                    (#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","#
                        + #""status":"RESOURCE_EXHAUSTED"}}"#
                        ).utf8), status: 429))
        #expect(
            error
                == OpenAIError(
                    status: 429, message: "Resource has been exhausted (e.g. check quota).", type: "rate_limit_error",
                    code: "resource_exhausted"))
        #expect(
            GeminiResponse.error(
                from: Array(
                    (#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","#
                        + #""status":"INVALID_ARGUMENT"}}"#
                        ).utf8), status: 400)?.type == "invalid_request_error")
        #expect(GeminiResponse.error(from: Array("<html>".utf8), status: 502) == nil)
    }

    func events(_ payloads: [String]) -> [SSEEvent] {
        var decoder = SSEDecoder()
        let text = payloads.map { "data: \($0)\r\n\r\n" }.joined()
        return (try? Array(text.utf8).withUnsafeBytes { try decoder.push($0) }) ?? []
    }

    @Test(
        "streamed events become chunks: role, text deltas, a whole tool call, finish reason, usage when asked, [DONE]"
    )
    func streamTranslation() throws {
        let stream = events([
            #"{"candidates":[{"content":{"parts":[{"text":"Hello"}],"role":"model"},"index":0}],"#
                + #""usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":1,"totalTokenCount":11},"#
                + #""responseId":"r1"}"#,
            #"{"candidates":[{"content":{"parts":[{"text":" there"}],"role":"model"},"index":0}],"#
                + #""usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":2,"totalTokenCount":12},"#
                + #""responseId":"r1"}"#,
            #"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}],"#
                + #""role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":10,"#
                + #""candidatesTokenCount":9,"totalTokenCount":19},"responseId":"r1"}"#,
        ])
        #expect(stream.count == 3)
        var translator = GeminiStreamTranslator(model: "gem", created: 5, callerRequestedUsage: true)
        var out: [UInt8] = []
        for event in stream { out += translator.translate(event) }
        out += translator.finish()
        let lines = String(decoding: out, as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("data: ") }.map {
            String($0.dropFirst(6))
        }
        #expect(lines.last == "[DONE]")
        let chunks = try lines.dropLast().map { try json(Array($0.utf8)) }
        #expect(
            chunks.allSatisfy {
                $0["id"] as? String == "r1" && $0["model"] as? String == "gem"
                    && $0["object"] as? String == "chat.completion.chunk"
            })
        func delta(_ index: Int) -> [String: Any]? {
            ((chunks[index]["choices"] as? [[String: Any]])?.first)?["delta"] as? [String: Any]
        }
        #expect(delta(0)?["role"] as? String == "assistant")
        #expect(delta(1)?["content"] as? String == "Hello" && delta(2)?["content"] as? String == " there")
        let call = try #require((delta(3)?["tool_calls"] as? [[String: Any]])?.first)
        #expect(call["index"] as? Int == 0 && call["id"] as? String == "call_0")
        #expect((call["function"] as? [String: Any])?["arguments"] as? String == #"{"city":"Paris"}"#)
        #expect(((chunks[4]["choices"] as? [[String: Any]])?.first)?["finish_reason"] as? String == "tool_calls")
        #expect((chunks[5]["usage"] as? [String: Any])?["completion_tokens"] as? Int == 9)
        #expect(translator.usage == TokenUsage(promptTokens: 10, completionTokens: 9))
        #expect(TranslatedStream.gemini(translator).completed)
    }

    @Test("an error inside the stream becomes an OpenAI error event; a cut stream keeps its usage and gets no [DONE]")
    func streamFaults() throws {
        var translator = GeminiStreamTranslator(model: "gem", created: 5, callerRequestedUsage: false)
        let stream = events([
            #"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],"#
                + #""usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":1,"totalTokenCount":11}}"#,
            #"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#,
        ])
        let first = translator.translate(stream[0])
        #expect(String(decoding: first, as: UTF8.self).contains(#""content":"Hel""#))
        #expect(translator.finish().isEmpty)  // cut here: not complete
        #expect(translator.usage == TokenUsage(promptTokens: 10, completionTokens: 1))
        let error = String(decoding: translator.translate(stream[1]), as: UTF8.self)
        #expect(error.contains(#""type":"server_error""#) && error.contains(#""code":"unavailable""#))
        let wrapped = TranslatedStream.gemini(translator)
        #expect(wrapped.errorStatus == 503 && !wrapped.completed && wrapped.errorCode == "upstream_error_event_503")
    }
}
