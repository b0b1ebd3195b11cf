import SluiceAPI

/// The mock provider's Anthropic Messages mode (`POST …/messages`): deterministic answers
/// in Anthropic's own wire format, streamed or not, with usage, and the same fault
/// directives as the OpenAI mode (see ``MockBehaviour``).
struct AnthropicMockScript {
    let defaultChunks: Int
    let defaultChunkDelayMilliseconds: Int

    func steps(body: [UInt8], model: String, behaviour: MockBehaviour) -> [MockStep] {
        guard let request = try? JSONValue.parseObject(body) else {
            return error(400, "invalid_request_error", "body is not a JSON object")
        }
        guard request["max_tokens"]?.intValue != nil else {
            return error(400, "invalid_request_error", "max_tokens: Field required")
        }
        guard request["messages"]?.arrayValue != nil else {
            return error(400, "invalid_request_error", "messages: Field required")
        }
        var steps: [MockStep] = []
        if behaviour.firstByteDelayMilliseconds > 0 {
            steps.append(.delay(milliseconds: behaviour.firstByteDelayMilliseconds))
        }
        if behaviour.contextWindow {
            return steps + error(400, "invalid_request_error", "prompt is too long: 210541 tokens > 200000 maximum")
        }
        if behaviour.status != 200 {
            let type =
                switch behaviour.status {
                case 401: "authentication_error"
                case 429: "rate_limit_error"
                case 529: "overloaded_error"
                case 400..<500: "invalid_request_error"
                default: "api_error"
                }
            return steps
                + error(
                    behaviour.status, type,
                    behaviour.status == 529 ? "Overloaded" : "mock provider answered \(behaviour.status)")
        }
        // Anthropic's `input_tokens` leave out what was read from or written to the cache.
        let inputTokens = behaviour.promptTokens(bodyBytes: body.count) - behaviour.cachedTokens
            - behaviour.cacheWriteTokens
        let cacheFigures =
            #""cache_creation_input_tokens":\#(behaviour.cacheWriteTokens),"#
            + #""cache_read_input_tokens":\#(behaviour.cachedTokens)"#
        let chunkCount = behaviour.chunks ?? defaultChunks
        let delay = behaviour.chunkDelayMilliseconds ?? defaultChunkDelayMilliseconds
        let tool = behaviour.toolCall ? request["tools"]?.arrayValue?.first?["name"]?.stringValue : nil
        let words = (0..<chunkCount).map {
            MockScript.words[$0 % MockScript.words.count] + ($0 + 1 < chunkCount ? " " : "")
        }
        let stopReason = tool == nil ? "end_turn" : "tool_use"

        guard request["stream"]?.boolValue == true else {
            var content = [#"{"type":"text","text":\#(jsonString(words.joined()))}"#]
            if let tool {
                content.append(
                    #"{"type":"tool_use","id":"toolu_mock_1","name":\#(jsonString(tool)),"input":{"city":"Paris"}}"#)
            }
            let usage =
                behaviour.noUsage
                ? ""
                : #","usage":{"input_tokens":\#(inputTokens),"output_tokens":\#(chunkCount),"#
                    + #"\#(cacheFigures)}"#
            return steps
                + MockScript.json(
                    200,
                    """
                    {"id":"msg_mock_1","type":"message","role":"assistant","model":\(jsonString(model)),
                     "content":[\(content.joined(separator: ","))],"stop_reason":"\(stopReason)",
                     "stop_sequence":null\(usage)}
                    """)
        }

        steps.append(
            .head(status: 200, headers: [("content-type", "text/event-stream"), ("cache-control", "no-cache")]))
        func event(_ name: String, _ data: String) -> MockStep {
            .data(Array("event: \(name)\ndata: \(data)\n\n".utf8))
        }
        steps.append(
            event(
                "message_start",
                #"{"type":"message_start","message":{"id":"msg_mock_1","type":"message","role":"assistant","#
                    + #""model":\#(jsonString(model)),"content":[],"stop_reason":null,"stop_sequence":null,"#
                    + #""usage":{"input_tokens":\#(inputTokens),"output_tokens":1,\#(cacheFigures)}}}"#
            ))
        steps.append(
            event(
                "content_block_start",
                #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#))
        steps.append(event("ping", #"{"type":"ping"}"#))
        for (index, word) in words.enumerated() {
            if let reset = behaviour.resetAfterChunks, index == reset { return steps + [.reset] }
            if let hang = behaviour.hangAfterChunks, index == hang { return steps + [.hang] }
            if index > 0, delay > 0 { steps.append(.delay(milliseconds: delay)) }
            steps.append(
                event(
                    "content_block_delta",
                    #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","#
                        + #""text":\#(jsonString(word))}}"#
                ))
            if index == 0, behaviour.midStreamError {
                steps.append(
                    event("error", #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#))
                steps.append(.end)
                return steps
            }
        }
        steps.append(event("content_block_stop", #"{"type":"content_block_stop","index":0}"#))
        if let tool {
            steps.append(
                event(
                    "content_block_start",
                    #"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_mock_1","#
                        + #""name":\#(jsonString(tool)),"input":{}}}"#
                ))
            steps.append(
                event(
                    "content_block_delta",
                    #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","#
                        + #""partial_json":"{\"city\": "}}"#
                ))
            steps.append(
                event(
                    "content_block_delta",
                    #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","#
                        + #""partial_json":"\"Paris\"}"}}"#
                ))
            steps.append(event("content_block_stop", #"{"type":"content_block_stop","index":1}"#))
        }
        let usage = behaviour.noUsage ? "" : #","usage":{"output_tokens":\#(chunkCount)}"#
        steps.append(
            event(
                "message_delta",
                #"{"type":"message_delta","delta":{"stop_reason":"\#(stopReason)","stop_sequence":null}\#(usage)}"#))
        steps.append(event("message_stop", #"{"type":"message_stop"}"#))
        steps.append(.end)
        return steps
    }

    private func error(_ status: Int, _ type: String, _ message: String) -> [MockStep] {
        MockScript.json(status, #"{"type":"error","error":{"type":"\#(type)","message":\#(jsonString(message))}}"#)
    }
}
