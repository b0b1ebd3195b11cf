/// Anthropic Messages → OpenAI chat completions, for answers: a whole message, its usage,
/// its stop reason, and error bodies.
public enum AnthropicResponse {
    /// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
    public static func finishReason(_ stopReason: String?) -> String? {
        switch stopReason {
        case "end_turn", "stop_sequence", "pause_turn": "stop"
        case "max_tokens", "model_context_window_exceeded": "length"
        case "tool_use": "tool_calls"
        case "refusal": "content_filter"
        case nil: nil
        default: "stop"
        }
    }

    /// Usage from an Anthropic `usage` object. Cache reads and writes are input tokens too,
    /// reported apart from `input_tokens` and priced at their own rates.
    public static func usage(_ usage: JSONValue?) -> TokenUsage? {
        guard let usage, let output = usage["output_tokens"]?.intValue else { return nil }
        let cacheRead = usage["cache_read_input_tokens"]?.intValue ?? 0
        let cacheCreation = usage["cache_creation_input_tokens"]?.intValue ?? 0
        return TokenUsage(
            promptTokens: (usage["input_tokens"]?.intValue ?? 0) + cacheCreation + cacheRead, completionTokens: output,
            cachedPromptTokens: cacheRead, cacheCreationTokens: cacheCreation)
    }

    /// The OpenAI `chat.completion` body for an Anthropic message body, and its usage.
    /// `created` is Unix seconds (Anthropic's messages carry no time).
    public static func chatCompletion(from body: [UInt8], model: String, created: Int64) -> (
        body: [UInt8], usage: TokenUsage?
    )? {
        guard let message = try? JSONValue.parseObject(body), message["type"]?.stringValue == "message" else {
            return nil
        }
        var text = ""
        var calls: [JSONValue] = []
        for block in message["content"]?.arrayValue ?? [] {
            switch block["type"]?.stringValue {
            case "text": text += block["text"]?.stringValue ?? ""
            case "tool_use":
                calls.append(
                    OpenAIChat.toolCall(
                        id: block["id"]?.stringValue ?? "", name: block["name"]?.stringValue ?? "",
                        arguments: String(decoding: (block["input"] ?? .object([])).bytes, as: UTF8.self), index: nil))
            default: break  // thinking and other blocks have no OpenAI counterpart
            }
        }
        var reply: [(key: String, value: JSONValue)] = [
            ("role", .string("assistant")), ("content", text.isEmpty && !calls.isEmpty ? .null : .string(text)),
        ]
        if !calls.isEmpty { reply.append(("tool_calls", .array(calls))) }
        let usage = Self.usage(message["usage"])
        var completion: [(key: String, value: JSONValue)] = [
            ("id", .string(message["id"]?.stringValue ?? "")), ("object", .string("chat.completion")),
            ("created", .number(String(created))),
            ("model", .string(model)),
            (
                "choices",
                .array([
                    .object([
                        ("index", .int(0)), ("message", .object(reply)),
                        (
                            "finish_reason",
                            finishReason(message["stop_reason"]?.stringValue).map(JSONValue.string) ?? .null
                        ),
                    ])
                ])
            ),
        ]
        if let usage {
            completion.append(("usage", OpenAIChat.usageObject(usage)))
        }
        return (JSONValue.object(completion).bytes, usage)
    }

    /// An Anthropic error body (`{"type":"error","error":{"type","message"}}`) as the
    /// OpenAI error the caller's dialect expects, status kept. Nil when it is not one.
    public static func error(from body: [UInt8], status: Int) -> OpenAIError? {
        guard let value = try? JSONValue.parseObject(body), let error = value["error"],
            let type = error["type"]?.stringValue
        else { return nil }
        let message = error["message"]?.stringValue ?? "the provider reported \(type)"
        return OpenAIError(status: status, message: message, type: openAIErrorType(type), code: type)
    }

    /// The OpenAI error type closest to an Anthropic one.
    static func openAIErrorType(_ anthropicType: String) -> String {
        switch anthropicType {
        case "invalid_request_error", "not_found_error", "request_too_large": "invalid_request_error"
        case "authentication_error": "authentication_error"
        case "permission_error": "permission_error"
        case "rate_limit_error": "rate_limit_error"
        case "overloaded_error", "api_error": "server_error"
        default: "upstream_error"
        }
    }

    /// The HTTP status an Anthropic error type stands for, for errors that arrive inside a
    /// 200 stream.
    public static func status(ofErrorType type: String) -> Int {
        switch type {
        case "invalid_request_error": 400
        case "authentication_error": 401
        case "permission_error": 403
        case "not_found_error": 404
        case "request_too_large": 413
        case "rate_limit_error": 429
        case "overloaded_error": 529
        default: 500
        }
    }
}
