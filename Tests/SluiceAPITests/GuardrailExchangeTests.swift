import SluiceAPI
import Testing

@Suite("Guardrail exchange")
struct GuardrailExchangeTests {
    func value(_ json: String) throws -> JSONValue { try JSONValue.parseObject(Array(json.utf8)) }
    func text(_ value: JSONValue) -> String { String(decoding: value.bytes, as: UTF8.self) }

    @Test("chat messages: strings and text parts, images left out, tool-only turns as empty text")
    func chatMessages() throws {
        let body = try value(
            #"{"model":"m","messages":[{"role":"system","content":"be brief"},"#
                + #"{"role":"user","content":[{"type":"text","text":"look"},"#
                + #"{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},"#
                + #"{"type":"text","text":"here"}]},"#
                + #"{"role":"assistant","content":null,"tool_calls":[]},{"role":"tool","content":"42"}]}"#)
        let messages = GuardrailPrompt.messages(of: body, endpoint: .chatCompletions)
        #expect(
            messages == [
                .init(role: "system", content: "be brief"), .init(role: "user", content: "look\nhere"),
                .init(role: "assistant", content: ""), .init(role: "tool", content: "42"),
            ])
    }

    @Test("a rewrite changes only the changed messages, keeps images, and puts the text in the first text part")
    func chatRewrite() throws {
        let body = try value(
            #"{"model":"m","messages":[{"role":"system","content":"be brief"},"#
                + #"{"role":"user","content":[{"type":"text","text":"card 4242"},"#
                + #"{"type":"image_url","image_url":{"url":"https://x/y.png"}},{"type":"text","text":"pin 12"}]}],"#
                + #""temperature":0.5}"#)
        let rewritten = try GuardrailPrompt.rewrite(
            body, endpoint: .chatCompletions,
            with: [.init(role: "system", content: "be brief"), .init(role: "user", content: "card ####\npin ##")])
        #expect(
            text(rewritten)
                == #"{"model":"m","messages":[{"role":"system","content":"be brief"},"#
                + #"{"role":"user","content":[{"type":"text","text":"card ####\npin ##"},"#
                + #"{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}],"temperature":0.5}"#)
        let unchanged = try GuardrailPrompt.rewrite(
            body, endpoint: .chatCompletions, with: GuardrailPrompt.messages(of: body, endpoint: .chatCompletions))
        #expect(unchanged == body, "giving the same messages back leaves the body as it was")
        #expect(throws: GuardrailExchangeError.self) {
            try GuardrailPrompt.rewrite(body, endpoint: .chatCompletions, with: [.init(role: "system", content: "x")])
        }
    }

    @Test("completions, embeddings and the Responses API have their own message shapes")
    func otherEndpoints() throws {
        let completions = try value(#"{"model":"m","prompt":["one 1","two 2"]}"#)
        #expect(
            GuardrailPrompt.messages(of: completions, endpoint: .completions) == [
                .init(role: "user", content: "one 1"), .init(role: "user", content: "two 2"),
            ])
        let masked = try GuardrailPrompt.rewrite(
            completions, endpoint: .completions,
            with: [.init(role: "user", content: "one #"), .init(role: "user", content: "two #")])
        #expect(text(masked) == #"{"model":"m","prompt":["one #","two #"]}"#)

        let tokens = try value(#"{"model":"m","input":[[1,2,3]]}"#)
        #expect(GuardrailPrompt.messages(of: tokens, endpoint: .embeddings).isEmpty, "token arrays have no text")
        let embeddings = try value(#"{"model":"m","input":"secret 9"}"#)
        #expect(
            GuardrailPrompt.messages(of: embeddings, endpoint: .embeddings) == [
                .init(role: "user", content: "secret 9")
            ])

        let responses = try value(
            #"{"model":"m","instructions":"sys","#
                + #""input":[{"role":"user","content":[{"type":"input_text","text":"a 1"}]},"#
                + #"{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},"#
                + #"{"type":"function_call_output","call_id":"c","output":"result 7"}]}"#)
        #expect(
            GuardrailPrompt.messages(of: responses, endpoint: .responses) == [
                .init(role: "system", content: "sys"), .init(role: "user", content: "a 1"),
                .init(role: "tool", content: "result 7"),
            ])
        let rewritten = try GuardrailPrompt.rewrite(
            responses, endpoint: .responses,
            with: [
                .init(role: "system", content: "sys"), .init(role: "user", content: "a #"),
                .init(role: "tool", content: "result #"),
            ])
        #expect(text(rewritten).contains(#"{"type":"input_text","text":"a #"}"#))
        #expect(text(rewritten).contains(#""output":"result #""#))
        #expect(text(rewritten).contains(#"{"type":"function_call","call_id":"c","name":"f","arguments":"{}"}"#))
    }

    @Test("the request body carries the prompt and the caller's ids")
    func requestBody() throws {
        let body = GuardrailExchange.requestBody(
            guardrail: "pii", requestID: "r-1", model: "gpt-4o", endpoint: .chatCompletions,
            caller: GuardrailCaller(keyID: "k1", team: "ml", project: nil, service: "shop/checkout", endUser: "u7"),
            messages: [.init(role: "user", content: "hi \"there\"")])
        #expect(
            String(decoding: body, as: UTF8.self)
                == #"{"guardrail":"pii","stage":"prompt","request_id":"r-1","endpoint":"/v1/chat/completions","#
                + #""model":"gpt-4o","caller":{"key_id":"k1","team":"ml","project":null,"service":"shop/checkout","#
                + #""end_user":"u7"},"messages":[{"role":"user","content":"hi \"there\""}]}"#)
    }

    @Test("verdicts: allow, deny with a cleaned reason, modify with matching roles; anything else is refused")
    func verdicts() throws {
        let sent: [GuardrailMessage] = [.init(role: "system", content: "s"), .init(role: "user", content: "u 1")]
        func read(_ json: String) throws(GuardrailExchangeError) -> GuardrailVerdict {
            try GuardrailExchange.verdict(from: Array(json.utf8), sent: sent)
        }
        #expect(try read(#"{"action":"allow","score":0.1}"#) == .allow)
        #expect(try read(#"{"action":"deny"}"#) == .deny(reason: nil))
        let long = String(repeating: "x", count: 400)
        #expect(
            try read(#"{"action":"deny","reason":"line\nbreak \#(long)"}"#)
                == .deny(reason: "line break " + String(repeating: "x", count: 245)))
        #expect(
            try read(
                #"{"action":"modify","reason":"masked","messages":[{"role":"system","content":"s"},"#
                    + #"{"role":"user","content":"u #"}]}"#)
                == .modify(messages: [.init(role: "system", content: "s"), .init(role: "user", content: "u #")],
                    reason: "masked"))
        for garbage in [
            "<html>", "[]", #"{}"#, #"{"action":"maybe"}"#, #"{"action":"deny","reason":5}"#,
            #"{"action":"modify"}"#, #"{"action":"modify","messages":[{"role":"user","content":"u"}]}"#,
            #"{"action":"modify","messages":[{"role":"user","content":"s"},{"role":"user","content":"u"}]}"#,
            #"{"action":"modify","messages":[{"role":"system","content":"s"},{"role":"user","content":[]}]}"#,
        ] {
            #expect(throws: GuardrailExchangeError.self, "\(garbage)") { try read(garbage) }
        }
    }
}

@Suite("Completion text")
struct CompletionTextTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("whole answers in each dialect")
    func wholeAnswers() {
        #expect(
            CompletionText.extract(
                bytes(
                    #"{"choices":[{"index":0,"message":{"role":"assistant","content":"one"}},"#
                        + #"{"index":1,"message":{"role":"assistant","content":"two"}}]}"#), shape: .chat,
                streamed: false) == "one\n\ntwo")
        #expect(
            CompletionText.extract(bytes(#"{"choices":[{"text":"done"}]}"#), shape: .completions, streamed: false)
                == "done")
        #expect(
            CompletionText.extract(
                bytes(
                    #"{"output":[{"type":"reasoning"},{"type":"message","content":[{"type":"output_text","#
                        + #""text":"Hi "},{"type":"output_text","text":"there"}]}]}"#), shape: .responses,
                streamed: false) == "Hi there")
        #expect(
            CompletionText.extract(
                bytes(
                    #"{"content":[{"type":"text","text":"a"},{"type":"tool_use","id":"t"},"#
                        + #"{"type":"text","text":"b"}]}"#),
                shape: .anthropic, streamed: false) == "ab")
        #expect(CompletionText.extract(bytes("not json"), shape: .chat, streamed: false) == "")
    }

    @Test("streams in each dialect, choices kept apart, [DONE] and other events skipped")
    func streams() {
        let chat =
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n"
            + "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"B\"}}]}\n\n"
            + "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n"
            + "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n"
        #expect(CompletionText.extract(bytes(chat), shape: .chat, streamed: true) == "Hello\n\nB")
        let responses =
            "event: response.created\ndata: {\"type\":\"response.created\"}\n\n"
            + "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n"
            + "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"!\"}\n\n"
        #expect(CompletionText.extract(bytes(responses), shape: .responses, streamed: true) == "Hi!")
        let anthropic =
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
            + "\"delta\":{\"type\":\"text_delta\",\"text\":\"Yes\"}}\n\n"
            + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,"
            + "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n"
        #expect(CompletionText.extract(bytes(anthropic), shape: .anthropic, streamed: true) == "Yes")
    }
}
