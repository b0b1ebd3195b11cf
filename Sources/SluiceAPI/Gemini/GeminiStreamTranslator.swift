/// Gemini `streamGenerateContent?alt=sse` events → OpenAI `chat.completion.chunk` events,
/// one event at a time.
///
/// Each Gemini event is a partial `GenerateContentResponse`: its text parts become `content`
/// deltas and each `functionCall` part a whole tool call (Gemini sends calls complete). The
/// event with a `finishReason` gives the chunk with `finish_reason`; `usageMetadata`
/// (cumulative, on any event) is kept. Gemini sends no `[DONE]`: ``finish()`` writes the usage
/// chunk (when asked) and `[DONE]` once the provider ends the stream cleanly. An `error`
/// object in an event becomes an OpenAI error event.
public struct GeminiStreamTranslator: Sendable {
    public let callerRequestedUsage: Bool
    private var header: OpenAIChat.ChunkHeader
    private var started = false
    private var toolCalls = 0
    private var reportedUsage: TokenUsage?
    public private(set) var sawStop = false
    /// The HTTP status of an error event, if one arrived.
    public private(set) var errorStatus: Int?
    public private(set) var dataBytes = 0

    public init(model: String, created: Int64, callerRequestedUsage: Bool) {
        header = OpenAIChat.ChunkHeader(id: "gemini-\(created)", created: created, model: model)
        self.callerRequestedUsage = callerRequestedUsage
    }

    /// Usage as far as the stream went: the last `usageMetadata`, or, before any, an
    /// estimate from the text relayed (nil before the first event).
    public var usage: TokenUsage? {
        if let reportedUsage { return reportedUsage }
        guard started else { return nil }
        return TokenUsage(
            promptTokens: 0,
            completionTokens: TokenUsage.estimate(promptBytes: 0, completionBytes: dataBytes).completionTokens,
            estimated: true)
    }

    /// The OpenAI chunk bytes for one Gemini stream event (often none); usage, stop and errors
    /// are remembered for the stream's end.
    public mutating func translate(_ event: SSEEvent) -> [UInt8] {
        guard let data = event.data, let value = try? JSONValue.parseObject(data) else { return [] }
        if let error = value["error"] {
            let status = error["code"]?.intValue ?? 500
            errorStatus = status
            let message = error["message"]?.stringValue ?? "the provider reported an error"
            return OpenAIError(
                status: status, message: message, type: GeminiResponse.openAIErrorType(status: status),
                code: (error["status"]?.stringValue ?? "UNKNOWN").lowercased()
            ).sseEvent
        }
        var out: [UInt8] = []
        if !started {
            started = true
            if let id = value["responseId"]?.stringValue { header.id = id }
            out += header.chunk(delta: .object([("role", .string("assistant")), ("content", .string(""))]))
        }
        if let usage = GeminiResponse.usage(value["usageMetadata"]) { reportedUsage = usage }
        let (text, calls) = GeminiResponse.parts(of: value)
        if !text.isEmpty {
            dataBytes += text.utf8.count
            out += header.chunk(delta: .object([("content", .string(text))]))
        }
        if !calls.isEmpty {
            let deltas = calls.map { call -> JSONValue in
                dataBytes += call.arguments.utf8.count
                defer { toolCalls += 1 }
                return OpenAIChat.toolCall(
                    id: call.id ?? "call_\(toolCalls)", name: call.name, arguments: call.arguments, index: toolCalls)
            }
            out += header.chunk(delta: .object([("tool_calls", .array(deltas))]))
        }
        let blocked = value["promptFeedback"]?["blockReason"]?.stringValue != nil
        if let reason = blocked
            ? "content_filter"
            : GeminiResponse.finishReason(
                value["candidates"]?.arrayValue?.first?["finishReason"]?.stringValue,
                calledTools: toolCalls > 0)
        {
            sawStop = true
            out += header.chunk(delta: .object([]), finishReason: reason)
        }
        return out
    }

    /// What ends the caller's stream once the provider closed its own cleanly: the usage
    /// chunk when asked, then `[DONE]`. Nothing after an error event or without a finish
    /// reason (the stream was cut, and the caller must not read it as complete).
    public func finish() -> [UInt8] {
        guard sawStop, errorStatus == nil else { return [] }
        var out: [UInt8] = []
        if callerRequestedUsage, let usage = reportedUsage { out += header.usageChunk(usage) }
        return out + OpenAIChat.done
    }
}
