/// Anthropic Messages streaming events → OpenAI `chat.completion.chunk` events, one event at
/// a time (nothing is buffered beyond the event in hand).
///
/// `message_start` opens the stream with the assistant role; text deltas become `content`
/// deltas; a `tool_use` block becomes a tool call (its `input_json_delta` pieces become
/// `arguments` pieces, numbered among tool calls only); `message_delta` carries the finish
/// reason and the output tokens; `message_stop` ends with a usage chunk when the caller
/// asked for one, then `[DONE]`. An `error` event becomes an OpenAI error event and ends
/// the stream. Usage seen so far is always readable, so a cut stream still counts.
public struct AnthropicStreamTranslator: Sendable {
    public let model: String
    public let created: Int64
    public let callerRequestedUsage: Bool
    private var id = ""
    private var inputTokens = 0
    private var outputTokens: Int?
    /// Anthropic content-block index → OpenAI tool-call index.
    private var toolCallIndex: [Int: Int] = [:]
    public private(set) var sawStop = false
    /// The `error.type` of an error event, if one arrived.
    public private(set) var errorType: String?
    /// Bytes of text and tool arguments relayed, for an estimate when no usage came.
    public private(set) var dataBytes = 0

    public init(model: String, created: Int64, callerRequestedUsage: Bool) {
        self.model = model
        self.created = created
        self.callerRequestedUsage = callerRequestedUsage
    }

    /// Usage as far as the stream went: input from `message_start`, output from the last
    /// `message_delta`. A stream cut before that counts its output from the text relayed,
    /// marked estimated. Nil before `message_start`.
    public var usage: TokenUsage? {
        guard !id.isEmpty || inputTokens > 0 else { return nil }
        guard let outputTokens else {
            let seen = TokenUsage.estimate(promptBytes: 0, completionBytes: dataBytes).completionTokens
            return TokenUsage(promptTokens: inputTokens, completionTokens: dataBytes == 0 ? 0 : seen, estimated: true)
        }
        return TokenUsage(promptTokens: inputTokens, completionTokens: outputTokens)
    }

    /// The OpenAI SSE bytes for one Anthropic event (often none).
    public mutating func translate(_ event: SSEEvent) -> [UInt8] {
        guard let data = event.data, let value = try? JSONValue.parseObject(data), let type = value["type"]?.stringValue else { return [] }
        switch type {
        case "message_start":
            let message = value["message"]
            id = message?["id"]?.stringValue ?? ""
            if let usage = message?["usage"] {
                inputTokens = (usage["input_tokens"]?.intValue ?? 0) + (usage["cache_creation_input_tokens"]?.intValue ?? 0)
                    + (usage["cache_read_input_tokens"]?.intValue ?? 0)
            }
            return chunk(delta: .object([("role", .string("assistant")), ("content", .string(""))]))
        case "content_block_start":
            guard let block = value["content_block"], block["type"]?.stringValue == "tool_use", let index = value["index"]?.intValue else { return [] }
            let callIndex = toolCallIndex.count
            toolCallIndex[index] = callIndex
            let call = AnthropicResponse.toolCall(id: block["id"]?.stringValue, name: block["name"]?.stringValue, arguments: "", index: callIndex)
            return chunk(delta: .object([("tool_calls", .array([call]))]))
        case "content_block_delta":
            guard let delta = value["delta"] else { return [] }
            switch delta["type"]?.stringValue {
            case "text_delta":
                let text = delta["text"]?.stringValue ?? ""
                dataBytes += text.utf8.count
                return chunk(delta: .object([("content", .string(text))]))
            case "input_json_delta":
                guard let index = value["index"]?.intValue, let callIndex = toolCallIndex[index] else { return [] }
                let piece = delta["partial_json"]?.stringValue ?? ""
                dataBytes += piece.utf8.count
                let call = AnthropicResponse.toolCall(id: nil, name: nil, arguments: piece, index: callIndex)
                return chunk(delta: .object([("tool_calls", .array([call]))]))
            default:
                return []  // thinking and signature deltas have no OpenAI counterpart
            }
        case "message_delta":
            if let output = value["usage"]?["output_tokens"]?.intValue { outputTokens = output }
            let reason = AnthropicResponse.finishReason(value["delta"]?["stop_reason"]?.stringValue)
            return chunk(delta: .object([]), finishReason: reason)
        case "message_stop":
            sawStop = true
            var out: [UInt8] = []
            if callerRequestedUsage, let usage {
                out += sse(.object(header() + [("choices", .array([])), ("usage", .object([
                    ("prompt_tokens", .int(usage.promptTokens)), ("completion_tokens", .int(usage.completionTokens)),
                    ("total_tokens", .int(usage.totalTokens)),
                ]))]))
            }
            out += Array("data: [DONE]\n\n".utf8)
            return out
        case "error":
            let errorType = value["error"]?["type"]?.stringValue ?? "api_error"
            self.errorType = errorType
            let message = value["error"]?["message"]?.stringValue ?? "the provider reported \(errorType)"
            return OpenAIError(status: AnthropicResponse.status(ofErrorType: errorType), message: message,
                               type: AnthropicResponse.openAIErrorType(errorType), code: errorType).sseEvent
        default:
            return []  // ping, content_block_stop
        }
    }

    private func header() -> [(key: String, value: JSONValue)] {
        [("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .number(String(created))), ("model", .string(model))]
    }

    private func chunk(delta: JSONValue, finishReason: String? = nil) -> [UInt8] {
        let choice = JSONValue.object([("index", .int(0)), ("delta", delta), ("finish_reason", finishReason.map(JSONValue.string) ?? .null)])
        var fields = header()
        fields.append(("choices", .array([choice])))
        return sse(.object(fields))
    }

    private func sse(_ value: JSONValue) -> [UInt8] {
        var out = Array("data: ".utf8)
        value.write(to: &out)
        out += Array("\n\n".utf8)
        return out
    }
}
