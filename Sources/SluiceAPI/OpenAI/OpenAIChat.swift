/// Pieces of OpenAI's chat dialect that every translation reads or writes: message text,
/// tool calls, and `chat.completion.chunk` events.
enum OpenAIChat {
    /// A message's content as plain text (a string, or text parts joined).
    static func text(of content: JSONValue?, param: String) throws(RequestBodyError) -> String {
        switch content {
        case .string(let text)?: return text
        case .array(let parts)?:
            return parts.compactMap { $0["type"]?.stringValue == "text" ? $0["text"]?.stringValue : nil }.joined(
                separator: "\n")
        case nil, .null?: return ""
        default:
            throw RequestBodyError("\(param) must be a string or an array of parts", param: param, code: "invalid_type")
        }
    }

    /// One entry of `tool_calls`; `index` only in stream deltas, `id` and type only where a
    /// call starts.
    static func toolCall(id: String?, name: String?, arguments: String, index: Int?) -> JSONValue {
        var function: [(key: String, value: JSONValue)] = []
        if let name { function.append(("name", .string(name))) }
        function.append(("arguments", .string(arguments)))
        var call: [(key: String, value: JSONValue)] = []
        if let index { call.append(("index", .int(index))) }
        if let id {
            call.append(("id", .string(id)))
            call.append(("type", .string("function")))
        }
        call.append(("function", .object(function)))
        return .object(call)
    }

    /// `{"prompt_tokens","completion_tokens","total_tokens"}`.
    /// OpenAI's `usage` object; the cache and reasoning details appear when there are any
    /// (OpenAI has no cache-write figure: those tokens stay in `prompt_tokens` only).
    static func usageObject(_ usage: TokenUsage) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [
            ("prompt_tokens", .int(usage.promptTokens)), ("completion_tokens", .int(usage.completionTokens)),
            ("total_tokens", .int(usage.totalTokens)),
        ]
        if usage.cachedPromptTokens > 0 {
            members.append(("prompt_tokens_details", .object([("cached_tokens", .int(usage.cachedPromptTokens))])))
        }
        if usage.reasoningTokens > 0 {
            members.append(
                ("completion_tokens_details", .object([("reasoning_tokens", .int(usage.reasoningTokens))])))
        }
        return .object(members)
    }

    /// The fields every chunk of one stream starts with.
    struct ChunkHeader: Sendable {
        var id: String
        let created: Int64
        let model: String

        var fields: [(key: String, value: JSONValue)] {
            [
                ("id", .string(id)), ("object", .string("chat.completion.chunk")),
                ("created", .number(String(created))), ("model", .string(model)),
            ]
        }

        /// One chunk with one choice, as an SSE event.
        func chunk(delta: JSONValue, finishReason: String? = nil) -> [UInt8] {
            let choice = JSONValue.object([
                ("index", .int(0)), ("delta", delta), ("finish_reason", finishReason.map(JSONValue.string) ?? .null),
            ])
            return OpenAIChat.sse(.object(fields + [("choices", .array([choice]))]))
        }

        /// The closing usage chunk (no choices), as an SSE event.
        func usageChunk(_ usage: TokenUsage) -> [UInt8] {
            OpenAIChat.sse(.object(fields + [("choices", .array([])), ("usage", OpenAIChat.usageObject(usage))]))
        }
    }

    static func sse(_ value: JSONValue) -> [UInt8] {
        var out = Array("data: ".utf8)
        value.write(to: &out)
        out += Array("\n\n".utf8)
        return out
    }

    static let done = Array("data: [DONE]\n\n".utf8)
}
