import SluiceAPI

/// The mock provider's Gemini mode (`POST …/models/{model}:generateContent` and
/// `:streamGenerateContent?alt=sse`): deterministic answers in Gemini's own wire format,
/// with `usageMetadata`, and the same fault directives as the OpenAI mode (see
/// ``MockBehaviour``), read from the model in the path. `mid_stream_error` is an `error`
/// object (503 `UNAVAILABLE`) inside the 200 stream; `content_filter` is a prompt blocked
/// by `promptFeedback` in a 200 answer, as Gemini reports it.
struct GeminiMockScript {
    let defaultChunks: Int
    let defaultChunkDelayMilliseconds: Int

    func steps(body: [UInt8], model: String, stream: Bool, behaviour: MockBehaviour) -> [MockStep] {
        guard let request = try? JSONValue.parseObject(body) else {
            return error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        }
        guard let contents = request["contents"]?.arrayValue, !contents.isEmpty else {
            return error(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified")
        }
        var steps: [MockStep] = []
        if behaviour.firstByteDelayMilliseconds > 0 {
            steps.append(.delay(milliseconds: behaviour.firstByteDelayMilliseconds))
        }
        if behaviour.contextWindow {
            return steps
                + error(
                    400, "INVALID_ARGUMENT",
                    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).")
        }
        let promptTokens = behaviour.promptTokens(bodyBytes: body.count)
        if behaviour.contentFilter {
            return steps
                + MockScript.json(
                    200,
                    #"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":\#(promptTokens),"#
                        + #""totalTokenCount":\#(promptTokens)},"modelVersion":\#(jsonString(model))}"#
                )
        }
        if behaviour.status != 200 {
            let status =
                switch behaviour.status {
                case 400: "INVALID_ARGUMENT"
                case 401: "UNAUTHENTICATED"
                case 403: "PERMISSION_DENIED"
                case 404: "NOT_FOUND"
                case 429: "RESOURCE_EXHAUSTED"
                case 503: "UNAVAILABLE"
                default: "INTERNAL"
                }
            return steps + error(behaviour.status, status, "mock provider answered \(behaviour.status)")
        }
        let chunkCount = behaviour.chunks ?? defaultChunks
        let delay = behaviour.chunkDelayMilliseconds ?? defaultChunkDelayMilliseconds
        let tool =
            behaviour.toolCall
            ? request["tools"]?.arrayValue?.first?["functionDeclarations"]?.arrayValue?.first?["name"]?.stringValue
            : nil
        let words = (0..<chunkCount).map {
            MockScript.words[$0 % MockScript.words.count] + ($0 + 1 < chunkCount ? " " : "")
        }
        func usage(_ output: Int) -> String {
            behaviour.noUsage
                ? ""
                : #","usageMetadata":{"promptTokenCount":\#(promptTokens),"candidatesTokenCount":\#(output),"#
                    + (behaviour.cachedTokens > 0 ? #""cachedContentTokenCount":\#(behaviour.cachedTokens),"# : "")
                    + (behaviour.reasoningTokens > 0 ? #""thoughtsTokenCount":\#(behaviour.reasoningTokens),"# : "")
                    + #""totalTokenCount":\#(promptTokens + output + behaviour.reasoningTokens)}"#
        }
        func candidate(_ parts: [String], finish: Bool) -> String {
            #"{"candidates":[{"content":{"parts":[\#(parts.joined(separator: ","))],"#
                + #""role":"model"}\#(finish ? #","finishReason":"STOP""# : ""),"index":0}]"#
        }
        let call = tool.map { #"{"functionCall":{"name":\#(jsonString($0)),"args":{"city":"Paris"}}}"# }
        let tail = #","modelVersion":\#(jsonString(model)),"responseId":"mock-gemini-1"}"#

        guard stream else {
            let parts = [#"{"text":\#(jsonString(words.joined()))}"#] + (call.map { [$0] } ?? [])
            return steps + MockScript.json(200, candidate(parts, finish: true) + usage(chunkCount) + tail)
        }
        steps.append(.head(status: 200, headers: [("content-type", "text/event-stream")]))
        func event(_ json: String) -> MockStep { .data(Array("data: \(json)\r\n\r\n".utf8)) }
        for (index, word) in words.enumerated() {
            if let reset = behaviour.resetAfterChunks, index == reset { return steps + [.reset] }
            if let hang = behaviour.hangAfterChunks, index == hang { return steps + [.hang] }
            if index > 0, delay > 0 { steps.append(.delay(milliseconds: delay)) }
            let last = index + 1 == words.count && call == nil
            steps.append(
                event(
                    candidate([#"{"text":\#(jsonString(word))}"#], finish: last) + usage(last ? chunkCount : index + 1)
                        + tail))
            if index == 0, behaviour.midStreamError {
                steps.append(
                    event(
                        #"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","#
                            + #""status":"UNAVAILABLE"}}"#
                    ))
                steps.append(.end)
                return steps
            }
        }
        if let call { steps.append(event(candidate([call], finish: true) + usage(chunkCount) + tail)) }
        steps.append(.end)
        return steps
    }

    private func error(_ status: Int, _ name: String, _ message: String) -> [MockStep] {
        MockScript.json(status, #"{"error":{"code":\#(status),"message":\#(jsonString(message)),"status":"\#(name)"}}"#)
    }
}
