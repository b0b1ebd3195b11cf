/// Gemini `GenerateContentResponse` → OpenAI chat completions, for answers: a whole answer,
/// its usage, its finish reason, and error bodies.
public enum GeminiResponse {
    /// OpenAI's `finish_reason` for Gemini's `finishReason`; a turn that called functions
    /// ends with `tool_calls`.
    public static func finishReason(_ reason: String?, calledTools: Bool) -> String? {
        switch reason {
        case nil: nil
        case "MAX_TOKENS": "length"
        case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE":
            "content_filter"
        default: calledTools ? "tool_calls" : "stop"
        }
    }

    /// Usage from `usageMetadata`. Thinking tokens are billed as output, so they count as
    /// completion tokens (and as reasoning); tool-use prompt tokens count as prompt tokens;
    /// `promptTokenCount` already includes the cached content's tokens.
    public static func usage(_ metadata: JSONValue?) -> TokenUsage? {
        guard let metadata, let prompt = metadata["promptTokenCount"]?.intValue else { return nil }
        let thoughts = metadata["thoughtsTokenCount"]?.intValue ?? 0
        return TokenUsage(
            promptTokens: prompt + (metadata["toolUsePromptTokenCount"]?.intValue ?? 0),
            completionTokens: (metadata["candidatesTokenCount"]?.intValue ?? 0) + thoughts,
            cachedPromptTokens: metadata["cachedContentTokenCount"]?.intValue ?? 0, reasoningTokens: thoughts)
    }

    /// Whether Gemini refused the prompt itself (`promptFeedback.blockReason`, no candidate):
    /// a content-policy refusal, for routing's content-policy fallbacks.
    public static func promptBlocked(_ body: [UInt8]) -> Bool {
        guard let answer = try? JSONValue.parseObject(body) else { return false }
        return answer["promptFeedback"]?["blockReason"]?.stringValue != nil
            && (answer["candidates"]?.arrayValue ?? []).isEmpty
    }

    /// The text and function calls of the first candidate (thought parts left out).
    static func parts(of answer: JSONValue) -> (text: String, calls: [(id: String?, name: String, arguments: String)]) {
        var text = ""
        var calls: [(id: String?, name: String, arguments: String)] = []
        for part in answer["candidates"]?.arrayValue?.first?["content"]?["parts"]?.arrayValue ?? [] {
            if part["thought"]?.boolValue == true { continue }
            if let piece = part["text"]?.stringValue { text += piece }
            if let call = part["functionCall"], let name = call["name"]?.stringValue {
                calls.append(
                    (
                        call["id"]?.stringValue, name,
                        String(decoding: (call["args"] ?? .object([])).bytes, as: UTF8.self)
                    ))
            }
        }
        return (text, calls)
    }

    /// The OpenAI `chat.completion` body for a Gemini answer, and its usage.
    public static func chatCompletion(from body: [UInt8], model: String, created: Int64) -> (
        body: [UInt8], usage: TokenUsage?
    )? {
        guard let answer = try? JSONValue.parseObject(body),
            answer["candidates"] != nil || answer["promptFeedback"] != nil
        else { return nil }
        let (text, found) = parts(of: answer)
        let calls = found.enumerated().map { index, call in
            OpenAIChat.toolCall(id: call.id ?? "call_\(index)", name: call.name, arguments: call.arguments, index: nil)
        }
        var reply: [(key: String, value: JSONValue)] = [
            ("role", .string("assistant")), ("content", text.isEmpty && !calls.isEmpty ? .null : .string(text)),
        ]
        if !calls.isEmpty { reply.append(("tool_calls", .array(calls))) }
        let blocked = answer["promptFeedback"]?["blockReason"]?.stringValue != nil
        let reason =
            blocked
            ? "content_filter"
            : finishReason(
                answer["candidates"]?.arrayValue?.first?["finishReason"]?.stringValue, calledTools: !calls.isEmpty)
        let usage = Self.usage(answer["usageMetadata"])
        var completion: [(key: String, value: JSONValue)] = [
            ("id", .string(answer["responseId"]?.stringValue ?? "gemini-\(created)")),
            ("object", .string("chat.completion")),
            ("created", .number(String(created))), ("model", .string(model)),
            (
                "choices",
                .array([
                    .object([
                        ("index", .int(0)), ("message", .object(reply)),
                        ("finish_reason", reason.map(JSONValue.string) ?? .null),
                    ])
                ])
            ),
        ]
        if let usage { completion.append(("usage", OpenAIChat.usageObject(usage))) }
        return (JSONValue.object(completion).bytes, usage)
    }

    /// A Gemini error body (`{"error":{"code","message","status"}}`) as the OpenAI error the
    /// caller's dialect expects, HTTP status kept. Nil when it is not one.
    public static func error(from body: [UInt8], status: Int) -> OpenAIError? {
        guard let value = try? JSONValue.parseObject(body), let error = value["error"],
            let message = error["message"]?.stringValue
        else { return nil }
        let code = error["status"]?.stringValue ?? "UNKNOWN"
        return OpenAIError(
            status: status, message: message, type: openAIErrorType(status: status), code: code.lowercased())
    }

    /// The OpenAI error type for an HTTP status (Gemini's `status` names follow gRPC codes,
    /// which map one to one onto these).
    static func openAIErrorType(status: Int) -> String {
        switch status {
        case 400, 404, 413: "invalid_request_error"
        case 401: "authentication_error"
        case 403: "permission_error"
        case 429: "rate_limit_error"
        case 500...: "server_error"
        default: "upstream_error"
        }
    }
}
