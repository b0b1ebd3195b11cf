import SluiceAPI

/// The mock provider's answer to OpenAI's Responses API (`POST …/responses`, also Azure's
/// `/openai/responses`), as OpenAI's API reference shows it: a `response` object with a
/// `message` output item of `output_text` parts and `input_tokens`/`output_tokens` usage, or,
/// streamed, the typed events from `response.created` to `response.completed` (each named
/// in an `event:` line, each with its `sequence_number`). The directives of
/// ``MockBehaviour`` that shape an answer apply: `chunks`, `chunk_delay_ms`, `no_usage`,
/// `prompt`, `cached`, `reasoning`, `rst_after`, `hang_after`, `mid_stream_error`.
struct ResponsesMockScript {
    let defaultChunks: Int
    let defaultChunkDelayMilliseconds: Int

    func steps(model: String, stream: Bool, promptTokens: Int, behaviour: MockBehaviour) -> [MockStep] {
        let chunkCount = max(behaviour.chunks ?? defaultChunks, behaviour.reasoningTokens)
        let delay = behaviour.chunkDelayMilliseconds ?? defaultChunkDelayMilliseconds
        let words = (0..<chunkCount).map {
            MockScript.words[$0 % MockScript.words.count] + ($0 + 1 < chunkCount ? " " : "")
        }
        var usage = ""
        if !behaviour.noUsage {
            usage =
                #","usage":{"input_tokens":\#(promptTokens),"#
                + #""input_tokens_details":{"cached_tokens":\#(behaviour.cachedTokens)},"#
                + #""output_tokens":\#(chunkCount),"#
                + #""output_tokens_details":{"reasoning_tokens":\#(behaviour.reasoningTokens)},"#
                + #""total_tokens":\#(promptTokens + chunkCount)}"#
        }
        func message(_ text: String, status: String) -> String {
            #"{"type":"message","id":"msg_mock_1","status":"\#(status)","role":"assistant","content":["#
                + (status == "completed" ? #"{"type":"output_text","text":\#(jsonString(text)),"annotations":[]}"# : "")
                + "]}"
        }
        func response(status: String, output: String, usage: String) -> String {
            #"{"id":"resp_mock_1","object":"response","created_at":1700000000,"status":"\#(status)","#
                + #""model":\#(jsonString(model)),"output":[\#(output)],"parallel_tool_calls":true,"#
                + #""tool_choice":"auto","tools":[]\#(usage)}"#
        }
        let text = words.joined()
        guard stream else {
            return MockScript.json(
                200, response(status: "completed", output: message(text, status: "completed"), usage: usage))
        }

        var steps: [MockStep] = [
            .head(status: 200, headers: [("content-type", "text/event-stream"), ("cache-control", "no-cache")])
        ]
        var sequence = 0
        func event(_ type: String, _ fields: String) {
            steps.append(
                .data(
                    Array(
                        "event: \(type)\ndata: {\"type\":\"\(type)\",\"sequence_number\":\(sequence)\(fields)}\n\n"
                            .utf8)))
            sequence += 1
        }
        event("response.created", #","response":\#(response(status: "in_progress", output: "", usage: ""))"#)
        event("response.in_progress", #","response":\#(response(status: "in_progress", output: "", usage: ""))"#)
        event(
            "response.output_item.added", #","output_index":0,"item":\#(message("", status: "in_progress"))"#)
        let part = #""part":{"type":"output_text","text":"","annotations":[]}"#
        event("response.content_part.added", #","item_id":"msg_mock_1","output_index":0,"content_index":0,\#(part)"#)
        for (index, word) in words.enumerated() {
            if let reset = behaviour.resetAfterChunks, index == reset { return steps + [.reset] }
            if let hang = behaviour.hangAfterChunks, index == hang { return steps + [.hang] }
            if index > 0, delay > 0 { steps.append(.delay(milliseconds: delay)) }
            event(
                "response.output_text.delta",
                #","item_id":"msg_mock_1","output_index":0,"content_index":0,"delta":\#(jsonString(word)),"#
                    + #""logprobs":[]"#)
            if index == 0, behaviour.midStreamError {
                event("error", #","code":"server_error","message":"overloaded","param":null"#)
                steps.append(.end)
                return steps
            }
        }
        event(
            "response.output_text.done",
            #","item_id":"msg_mock_1","output_index":0,"content_index":0,"text":\#(jsonString(text)),"logprobs":[]"#)
        let done = #""part":{"type":"output_text","text":\#(jsonString(text)),"annotations":[]}"#
        event("response.content_part.done", #","item_id":"msg_mock_1","output_index":0,"content_index":0,\#(done)"#)
        event("response.output_item.done", #","output_index":0,"item":\#(message(text, status: "completed"))"#)
        event(
            "response.completed",
            #","response":\#(response(status: "completed", output: message(text, status: "completed"), usage: usage))"#)
        steps.append(.end)
        return steps
    }
}
