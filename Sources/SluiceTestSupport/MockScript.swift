import NIOCore
import SluiceAPI

/// One step of a scripted answer. Transports (HTTP/2, HTTP/1.1) only know how to play these.
enum MockStep: Sendable {
    case head(status: Int, headers: [(String, String)])
    case data([UInt8])
    case delay(milliseconds: Int)
    case end
    /// RST_STREAM(INTERNAL_ERROR) on HTTP/2; a dropped connection on HTTP/1.1.
    case reset
    /// GOAWAY whose last stream id lies below the current stream, which is then left unanswered.
    case goAway
    /// Stop here and keep the stream open.
    case hang
}

/// Builds the deterministic OpenAI-compatible answer to one request.
struct MockScript {
    static let words = ["Sluice", "mock", "says", "hello", "and", "counts", "every", "token", "it", "streams"]

    let defaultChunks: Int
    let defaultChunkDelayMilliseconds: Int

    /// - Parameter seen: how many requests naming a model came before this one.
    func steps(
        method: String, path fullPath: String, authorization: String?, body: [UInt8], goAwayAvailable: () -> Bool,
        seen: (String) -> Int = { _ in 0 }
    ) -> [MockStep] {
        // Routes by path alone: Azure-style calls carry `?api-version=…`.
        let path = fullPath.split(separator: "?", maxSplits: 1).first.map(String.init) ?? fullPath
        if let steps = PassThroughMockScript().steps(
            method: method, path: path, query: String(fullPath.dropFirst(path.count + 1)),
            authorization: authorization, body: body)
        {
            return steps
        }
        guard method == "POST" else {
            if path.hasSuffix("/models") {
                return Self.json(
                    200,
                    #"{"object":"list","data":[{"id":"mock","object":"model","created":0,"owned_by":"sluice-mock"}]}"#)
            }
            return error(404, "no such route", type: "invalid_request_error", code: "not_found")
        }
        if path.hasSuffix("/guardrail") { return GuardrailMockScript().steps(body: body) }
        if let range = path.range(of: "/models/"), let colon = path[range.upperBound...].lastIndex(of: ":") {
            // Gemini names the model, and whether to stream, in the path.
            let model = String(path[range.upperBound..<colon])
            var behaviour = MockBehaviour(model: model)
            behaviour.count(seen: seen)
            if path.hasSuffix(":batchEmbedContents") {
                // One vector per request of the batch, Gemini reporting no usage.
                let count = (try? JSONValue.parseObject(body))?["requests"]?.arrayValue?.count ?? 0
                guard count > 0 else {
                    return error(400, "requests must not be empty", type: "INVALID_ARGUMENT", code: "400")
                }
                let vector = #"{"values":[0.0023,-0.0091,0.0154,0.0042]}"#
                return Self.json(
                    200, #"{"embeddings":[\#(Array(repeating: vector, count: count).joined(separator: ","))]}"#)
            }
            return GeminiMockScript(
                defaultChunks: defaultChunks, defaultChunkDelayMilliseconds: defaultChunkDelayMilliseconds
            )
            .steps(body: body, model: model, stream: path.hasSuffix(":streamGenerateContent"), behaviour: behaviour)
        }
        let request = body.withUnsafeBytes { try? JSONScanner.scanObject($0) }
        guard let request else {
            return error(400, "body is not a JSON object", type: "invalid_request_error", code: "invalid_json")
        }
        let model =
            body.withUnsafeBytes { bytes in
                request.first(where: { $0.key == "model" }).flatMap {
                    JSONScanner.decodeString(at: $0.valueRange, in: bytes)
                }
            } ?? "mock"
        var behaviour = MockBehaviour(model: model)
        behaviour.count(seen: seen)
        if path.hasSuffix("/messages") {
            return AnthropicMockScript(
                defaultChunks: defaultChunks, defaultChunkDelayMilliseconds: defaultChunkDelayMilliseconds
            )
            .steps(body: body, model: model, behaviour: behaviour)
        }
        var steps: [MockStep] = []
        if behaviour.goAwayOnce, goAwayAvailable() { return [.goAway] }
        if behaviour.firstByteDelayMilliseconds > 0 {
            steps.append(.delay(milliseconds: behaviour.firstByteDelayMilliseconds))
        }
        if behaviour.contextWindow {
            return steps
                + error(
                    400,
                    "This model's maximum context length is 128000 tokens. However,"
                        + " your messages resulted in 130512 tokens.",
                    type: "invalid_request_error", code: "context_length_exceeded")
        }
        if behaviour.contentFilter {
            return steps
                + error(
                    400, "The response was filtered due to the prompt triggering the content management policy.",
                    type: "invalid_request_error", code: "content_filter")
        }
        if behaviour.status != 200 {
            var message = "mock provider answered \(behaviour.status)"
            if behaviour.echoKey, let key = authorization?.split(separator: " ").last {
                message += "; Incorrect API key provided: \(key) (\(key.prefix(8))************\(key.suffix(4)))"
            }
            var answer = error(
                behaviour.status, message,
                type: behaviour.status == 429 ? "rate_limit_exceeded" : "server_error", code: "mock_\(behaviour.status)"
            )
            if let retryAfter = behaviour.retryAfterSeconds, case .head(let status, let headers) = answer[0] {
                answer[0] = .head(status: status, headers: headers + [("retry-after", String(retryAfter))])
            }
            return steps + answer
        }
        let stream =
            request.first(where: { $0.key == "stream" }).map { body[$0.valueRange.lowerBound] == UInt8(ascii: "t") }
            ?? false
        var includeUsage = false
        if let options = request.first(where: { $0.key == "stream_options" }), options.kind == .object {
            let inner = body.withUnsafeBytes { JSONScanner.members(ofObjectAt: options.valueRange, in: $0) }
            includeUsage =
                inner.first(where: { $0.key == "include_usage" }).map {
                    body[$0.valueRange.lowerBound] == UInt8(ascii: "t")
                } ?? false
        }
        let promptTokens = behaviour.promptTokens(bodyBytes: body.count)
        let chunkCount = max(behaviour.chunks ?? defaultChunks, behaviour.reasoningTokens)
        let delay = behaviour.chunkDelayMilliseconds ?? defaultChunkDelayMilliseconds

        if path.hasSuffix("/embeddings") {
            return steps
                + Self.json(
                    200,
                    #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023,-0.0091,0.0154,"#
                        + #"0.0042]}],"model":\#(jsonString(model)),"usage":{"prompt_tokens":\#(promptTokens),"#
                        + #""total_tokens":\#(promptTokens)}}"#
                )
        }
        if path.hasSuffix("/responses") {
            return steps
                + ResponsesMockScript(
                    defaultChunks: defaultChunks, defaultChunkDelayMilliseconds: defaultChunkDelayMilliseconds
                )
                .steps(model: model, stream: stream, promptTokens: promptTokens, behaviour: behaviour)
        }
        let isChat = path.hasSuffix("/chat/completions")
        let tool =
            behaviour.toolCall && isChat
            ? (try? JSONValue.parseObject(body))?["tools"]?.arrayValue?.first?["function"]?["name"]?.stringValue : nil
        let finishReason = tool == nil ? "stop" : "tool_calls"
        if !stream {
            let text = (0..<chunkCount).map { Self.words[$0 % Self.words.count] }.joined(separator: " ")
            var content = text
            if let big = behaviour.bigBodyBytes { content = String(repeating: "x", count: big) }
            let usage =
                behaviour.noUsage
                ? ""
                : #","usage":{"prompt_tokens":\#(promptTokens),"completion_tokens":\#(chunkCount),"#
                    + #""total_tokens":\#(promptTokens + chunkCount)\#(behaviour.openAIUsageDetails)}"#
            let calls =
                tool.map {
                    #","tool_calls":[{"id":"call_mock_1","type":"function","function":{"name":\#(jsonString($0)),"#
                        + #""arguments":"{\"city\":\"Paris\"}"}}]"#
                } ?? ""
            let choice =
                isChat
                ? #"{"index":0,"message":{"role":"assistant","content":\#(jsonString(content))\#(calls)},"#
                    + #""finish_reason":"\#(finishReason)"}"#
                : #"{"index":0,"text":\#(jsonString(content)),"finish_reason":"stop"}"#
            let object = isChat ? "chat.completion" : "text_completion"
            return steps
                + Self.json(
                    200,
                    #"{"id":"mock-1","object":"\#(object)","created":1700000000,"model":\#(jsonString(model)),"#
                        + #""choices":[\#(choice)]\#(usage)}"#
                )
        }

        steps.append(
            .head(status: 200, headers: [("content-type", "text/event-stream"), ("cache-control", "no-cache")]))
        let usageNull = includeUsage && !behaviour.noUsage ? #","usage":null"# : ""
        for index in 0..<chunkCount {
            if let reset = behaviour.resetAfterChunks, index == reset { return steps + [.reset] }
            if let hang = behaviour.hangAfterChunks, index == hang { return steps + [.hang] }
            if index > 0, delay > 0 { steps.append(.delay(milliseconds: delay)) }
            let word = Self.words[index % Self.words.count] + (index + 1 < chunkCount ? " " : "")
            let delta =
                isChat
                ? #"{"index":0,"delta":{"content":\#(jsonString(word))},"finish_reason":null}"#
                : #"{"index":0,"text":\#(jsonString(word)),"finish_reason":null}"#
            let object = isChat ? "chat.completion.chunk" : "text_completion"
            steps.append(
                .data(
                    Array(
                        (#"data: {"id":"mock-1","object":"\#(object)","created":1700000000,"#
                            + #""model":\#(jsonString(model)),"choices":[\#(delta)]\#(usageNull)}"#
                            ).utf8) + [0x0A, 0x0A]))
            if index == 0, behaviour.midStreamError {
                steps.append(
                    .data(
                        Array(
                            #"data: {"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}"#.utf8)
                            + [0x0A, 0x0A]))
                steps.append(.end)
                return steps
            }
            if index == 0, behaviour.malformedSSE {
                steps.append(.data(Array("data: {\"id\": broken\n\n".utf8)))
                steps.append(.end)
                return steps
            }
        }
        if let reset = behaviour.resetAfterChunks, reset >= chunkCount { return steps + [.reset] }
        func chunk(_ delta: String, finish: String?) -> MockStep {
            let reason = finish.map { "\"\($0)\"" } ?? "null"
            return .data(
                Array(
                    (#"data: {"id":"mock-1","object":"chat.completion.chunk","created":1700000000,"#
                        + #""model":\#(jsonString(model)),"choices":[{"index":0,"delta":\#(delta),"#
                        + #""finish_reason":\#(reason)}]\#(usageNull)}"#
                        ).utf8) + [0x0A, 0x0A])
        }
        if let tool {
            steps.append(
                chunk(
                    #"{"tool_calls":[{"index":0,"id":"call_mock_1","type":"function","#
                        + #""function":{"name":\#(jsonString(tool)),"arguments":""}}]}"#,
                    finish: nil))
            steps.append(chunk(#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": "}}]}"#, finish: nil))
            steps.append(chunk(#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"#, finish: nil))
        }
        if isChat { steps.append(chunk("{}", finish: finishReason)) }
        if includeUsage, !behaviour.noUsage {
            steps.append(
                .data(
                    Array(
                        (#"data: {"id":"mock-1","object":"chat.completion.chunk","created":1700000000,"#
                            + #""model":\#(jsonString(model)),"choices":[],"usage":{"prompt_tokens":\#(promptTokens),"#
                            + #""completion_tokens":\#(chunkCount),"total_tokens":\#(promptTokens + chunkCount)"#
                            + #"\#(behaviour.openAIUsageDetails)}}"#
                            ).utf8) + [0x0A, 0x0A]))
        }
        steps.append(.data(Array("data: [DONE]\n\n".utf8)))
        steps.append(.end)
        return steps
    }

    /// A whole JSON answer with its length.
    static func json(_ status: Int, _ body: String) -> [MockStep] {
        let bytes = Array(body.utf8)
        return [
            .head(
                status: status,
                headers: [("content-type", "application/json"), ("content-length", String(bytes.count))]), .data(bytes),
            .end,
        ]
    }

    private func error(_ status: Int, _ message: String, type: String, code: String) -> [MockStep] {
        Self.json(
            status,
            String(decoding: OpenAIError(status: status, message: message, type: type, code: code).body, as: UTF8.self))
    }
}
