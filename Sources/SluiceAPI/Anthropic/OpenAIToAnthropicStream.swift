/// OpenAI `chat.completion.chunk` events → Anthropic Messages streaming events, for callers
/// of `/v1/messages` served by a deployment of another dialect. It takes the OpenAI SSE
/// bytes the relay would have sent and returns Anthropic's: `message_start`, one content
/// block per text run or tool call (`content_block_start` / `_delta` / `_stop`), and at
/// `[DONE]` a `message_delta` with the stop reason and usage, then `message_stop`. An
/// OpenAI error event becomes an `error` event. A stream cut before `[DONE]` gets no
/// `message_stop`, so the caller can tell it is incomplete.
public struct OpenAIToAnthropicStream: Sendable {
    public let model: String
    private var decoder = SSEDecoder()
    private var started = false
    private var id = "msg_sluice"
    /// The open content block: its index and whether it is text.
    private var openBlock: (index: Int, isText: Bool)?
    private var nextBlock = 0
    /// OpenAI tool-call index → Anthropic block index.
    private var toolBlocks: [Int: Int] = [:]
    private var stopReason = "end_turn"
    private var usage: TokenUsage?
    public private(set) var ended = false

    public init(model: String) {
        self.model = model
    }

    /// Anthropic SSE bytes for whole OpenAI events in `bytes` (a partial event is kept).
    public mutating func convert(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for event in decoder.events(in: bytes) { out += convert(event) }
        return out
    }

    private mutating func convert(_ event: SSEEvent) -> [UInt8] {
        guard let data = event.data else { return [] }
        if data.elementsEqual("[DONE]".utf8) { return finish() }
        guard let chunk = try? JSONValue.parseObject(data) else { return [] }
        if let error = chunk["error"] {
            let type = error["type"]?.stringValue ?? "server_error"
            let code = error["code"]?.stringValue ?? type
            let status: Int =
                switch type {
                case _ where code == "overloaded_error": 529
                case "invalid_request_error": 400
                case "authentication_error": 401
                case "permission_error": 403
                case "rate_limit_error": 429
                default: 500
                }
            ended = true
            return AnthropicIngress.errorEvent(
                OpenAIError(
                    status: status, message: error["message"]?.stringValue ?? "upstream error", type: type, code: code))
        }
        var out: [UInt8] = []
        if !started {
            started = true
            if let value = chunk["id"]?.stringValue, !value.isEmpty { id = value }
            out += Self.event(
                "message_start",
                .object([
                    ("type", .string("message_start")),
                    (
                        "message",
                        .object([
                            ("id", .string(id)), ("type", .string("message")), ("role", .string("assistant")),
                            ("model", .string(model)),
                            ("content", .array([])), ("stop_reason", .null), ("stop_sequence", .null),
                            ("usage", AnthropicIngress.usageObject(TokenUsage(promptTokens: 0, completionTokens: 0))),
                        ])
                    ),
                ]))
        }
        if let found = TokenUsage.fromOpenAIUsage(chunk["usage"]) { usage = found }
        guard let choice = chunk["choices"]?.arrayValue?.first else { return out }
        let delta = choice["delta"]
        if let text = delta?["content"]?.stringValue, !text.isEmpty {
            if openBlock?.isText != true {
                out += closeBlock()
                out += open(.object([("type", .string("text")), ("text", .string(""))]), isText: true)
            }
            out += Self.event(
                "content_block_delta",
                .object([
                    ("type", .string("content_block_delta")), ("index", .int(openBlock!.index)),
                    ("delta", .object([("type", .string("text_delta")), ("text", .string(text))])),
                ]))
        }
        for call in delta?["tool_calls"]?.arrayValue ?? [] {
            let callIndex = call["index"]?.intValue ?? 0
            if toolBlocks[callIndex] == nil {
                out += closeBlock()
                out += open(
                    .object([
                        ("type", .string("tool_use")), ("id", .string(call["id"]?.stringValue ?? "toolu_\(callIndex)")),
                        ("name", .string(call["function"]?["name"]?.stringValue ?? "")), ("input", .object([])),
                    ]), isText: false)
                toolBlocks[callIndex] = openBlock!.index
            }
            if let piece = call["function"]?["arguments"]?.stringValue, !piece.isEmpty,
                let block = toolBlocks[callIndex]
            {
                out += Self.event(
                    "content_block_delta",
                    .object([
                        ("type", .string("content_block_delta")), ("index", .int(block)),
                        ("delta", .object([("type", .string("input_json_delta")), ("partial_json", .string(piece))])),
                    ]))
            }
        }
        if let reason = choice["finish_reason"]?.stringValue { stopReason = AnthropicIngress.stopReason(reason) }
        return out
    }

    private mutating func open(_ block: JSONValue, isText: Bool) -> [UInt8] {
        openBlock = (nextBlock, isText)
        nextBlock += 1
        return Self.event(
            "content_block_start",
            .object([
                ("type", .string("content_block_start")), ("index", .int(openBlock!.index)),
                ("content_block", block),
            ]))
    }

    private mutating func closeBlock() -> [UInt8] {
        guard let block = openBlock else { return [] }
        openBlock = nil
        return Self.event(
            "content_block_stop", .object([("type", .string("content_block_stop")), ("index", .int(block.index))]))
    }

    private mutating func finish() -> [UInt8] {
        guard !ended else { return [] }
        ended = true
        var out = closeBlock()
        let used = usage ?? TokenUsage(promptTokens: 0, completionTokens: 0)
        out += Self.event(
            "message_delta",
            .object([
                ("type", .string("message_delta")),
                ("delta", .object([("stop_reason", .string(stopReason)), ("stop_sequence", .null)])),
                ("usage", AnthropicIngress.usageObject(used)),
            ]))
        out += Self.event("message_stop", .object([("type", .string("message_stop"))]))
        return out
    }

    private static func event(_ name: String, _ value: JSONValue) -> [UInt8] {
        var out = Array("event: \(name)\ndata: ".utf8)
        value.write(to: &out)
        return out + Array("\n\n".utf8)
    }
}
