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
    public let callerRequestedUsage: Bool
    private var header: OpenAIChat.ChunkHeader
    private var inputTokens = 0
    private var cacheReadTokens = 0
    private var cacheCreationTokens = 0
    private var outputTokens: Int?
    /// Anthropic content-block index → OpenAI tool-call index.
    private var toolCallIndex: [Int: Int] = [:]
    public private(set) var sawStop = false
    /// The `error.type` of an error event, if one arrived.
    public private(set) var errorType: String?
    /// Bytes of text and tool arguments relayed, for an estimate when no usage came.
    public private(set) var dataBytes = 0

    public init(model: String, created: Int64, callerRequestedUsage: Bool) {
        header = OpenAIChat.ChunkHeader(id: "", created: created, model: model)
        self.callerRequestedUsage = callerRequestedUsage
    }

    /// Usage as far as the stream went: input from `message_start`, output from the last
    /// `message_delta`. A stream cut before that counts its output from the text relayed,
    /// marked estimated. Nil before `message_start`.
    public var usage: TokenUsage? {
        guard !header.id.isEmpty || inputTokens > 0 else { return nil }
        guard let outputTokens else {
            let seen = TokenUsage.estimate(promptBytes: 0, completionBytes: dataBytes).completionTokens
            return TokenUsage(
                promptTokens: inputTokens, completionTokens: dataBytes == 0 ? 0 : seen,
                cachedPromptTokens: cacheReadTokens, cacheCreationTokens: cacheCreationTokens, estimated: true)
        }
        return TokenUsage(
            promptTokens: inputTokens, completionTokens: outputTokens, cachedPromptTokens: cacheReadTokens,
            cacheCreationTokens: cacheCreationTokens)
    }

    /// Takes the input side of a `usage` object (`message_start`'s, or a `message_delta`'s
    /// cumulative one): input tokens include cache reads and writes.
    private mutating func readInput(_ usage: JSONValue) {
        // A `message_delta` without input figures (older API versions) leaves them as they
        // were; cumulative counts never fall, so a smaller one is not taken either.
        guard let input = usage["input_tokens"]?.intValue else { return }
        let cacheRead = usage["cache_read_input_tokens"]?.intValue ?? 0
        let cacheCreation = usage["cache_creation_input_tokens"]?.intValue ?? 0
        guard input + cacheRead + cacheCreation >= inputTokens else { return }
        cacheReadTokens = cacheRead
        cacheCreationTokens = cacheCreation
        inputTokens = input + cacheRead + cacheCreation
    }

    /// The OpenAI SSE bytes for one Anthropic event (often none).
    public mutating func translate(_ event: SSEEvent) -> [UInt8] {
        guard let data = event.data, let value = try? JSONValue.parseObject(data), let type = value["type"]?.stringValue
        else { return [] }
        switch type {
        case "message_start":
            let message = value["message"]
            header.id = message?["id"]?.stringValue ?? ""
            if let usage = message?["usage"] { readInput(usage) }
            return header.chunk(delta: .object([("role", .string("assistant")), ("content", .string(""))]))
        case "content_block_start":
            guard let block = value["content_block"], block["type"]?.stringValue == "tool_use",
                let index = value["index"]?.intValue
            else { return [] }
            let callIndex = toolCallIndex.count
            toolCallIndex[index] = callIndex
            let call = OpenAIChat.toolCall(
                id: block["id"]?.stringValue, name: block["name"]?.stringValue, arguments: "", index: callIndex)
            return header.chunk(delta: .object([("tool_calls", .array([call]))]))
        case "content_block_delta":
            guard let delta = value["delta"] else { return [] }
            switch delta["type"]?.stringValue {
            case "text_delta":
                let text = delta["text"]?.stringValue ?? ""
                dataBytes += text.utf8.count
                return header.chunk(delta: .object([("content", .string(text))]))
            case "input_json_delta":
                guard let index = value["index"]?.intValue, let callIndex = toolCallIndex[index] else { return [] }
                let piece = delta["partial_json"]?.stringValue ?? ""
                dataBytes += piece.utf8.count
                let call = OpenAIChat.toolCall(id: nil, name: nil, arguments: piece, index: callIndex)
                return header.chunk(delta: .object([("tool_calls", .array([call]))]))
            default:
                return []  // thinking and signature deltas have no OpenAI counterpart
            }
        case "message_delta":
            if let usage = value["usage"] {
                if let output = usage["output_tokens"]?.intValue { outputTokens = output }
                readInput(usage)
            }
            let reason = AnthropicResponse.finishReason(value["delta"]?["stop_reason"]?.stringValue)
            return header.chunk(delta: .object([]), finishReason: reason)
        case "message_stop":
            sawStop = true
            var out: [UInt8] = []
            if callerRequestedUsage, let usage { out += header.usageChunk(usage) }
            return out + OpenAIChat.done
        case "error":
            let errorType = value["error"]?["type"]?.stringValue ?? "api_error"
            self.errorType = errorType
            let message = value["error"]?["message"]?.stringValue ?? "the provider reported \(errorType)"
            return OpenAIError(
                status: AnthropicResponse.status(ofErrorType: errorType), message: message,
                type: AnthropicResponse.openAIErrorType(errorType), code: errorType
            ).sseEvent
        default:
            return []  // ping, content_block_stop
        }
    }
}
