/// A provider's event stream being translated into OpenAI chunks, whichever provider it is:
/// one value the relay holds, dispatched without existentials.
public enum TranslatedStream: Sendable {
    case anthropic(AnthropicStreamTranslator)
    case gemini(GeminiStreamTranslator)

    /// The OpenAI SSE bytes for one provider event (often none).
    public mutating func translate(_ event: SSEEvent) -> [UInt8] {
        switch self {
        case .anthropic(var translator):
            let out = translator.translate(event)
            self = .anthropic(translator)
            return out
        case .gemini(var translator):
            let out = translator.translate(event)
            self = .gemini(translator)
            return out
        }
    }

    /// Bytes that end the caller's stream once the provider ended its own.
    public func finish() -> [UInt8] {
        switch self {
        case .anthropic: []  // `message_stop` already ended it
        case .gemini(let translator): translator.finish()
        }
    }

    public var usage: TokenUsage? {
        switch self {
        case .anthropic(let translator): translator.usage
        case .gemini(let translator): translator.usage
        }
    }

    public var dataBytes: Int {
        switch self {
        case .anthropic(let translator): translator.dataBytes
        case .gemini(let translator): translator.dataBytes
        }
    }

    /// The provider said the answer was complete, and sent no error.
    public var completed: Bool {
        switch self {
        case .anthropic(let translator): translator.sawStop && translator.errorType == nil
        case .gemini(let translator): translator.sawStop && translator.errorStatus == nil
        }
    }

    /// The HTTP status an error event inside the stream stood for.
    public var errorStatus: Int? {
        switch self {
        case .anthropic(let translator): translator.errorType.map(AnthropicResponse.status(ofErrorType:))
        case .gemini(let translator): translator.errorStatus
        }
    }

    /// What the audit line says about how the stream ended, nil when it ended well.
    public var errorCode: String? {
        switch self {
        case .anthropic(let translator):
            translator.errorType.map { "upstream_\($0)" } ?? (translator.sawStop ? nil : "upstream_stream_incomplete")
        case .gemini(let translator):
            translator.errorStatus.map { "upstream_error_event_\($0)" }
                ?? (translator.sawStop ? nil : "upstream_stream_incomplete")
        }
    }
}
