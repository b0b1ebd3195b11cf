import SluiceAPI

/// The API a caller speaks: OpenAI's (chat, completions, embeddings) or Anthropic's Messages
/// (`POST /v1/messages`). Every answer and error goes back in it.
enum CallerDialect {
    case openAI
    case anthropic

    /// An error body in this dialect, status and rule code kept.
    func body(_ error: OpenAIError) -> [UInt8] {
        switch self {
        case .openAI: error.body
        case .anthropic: AnthropicIngress.errorBody(error)
        }
    }

    /// An error as a stream event in this dialect, for failures after a stream began.
    func streamEvent(_ error: OpenAIError) -> [UInt8] {
        switch self {
        case .openAI: error.sseEvent
        case .anthropic: AnthropicIngress.errorEvent(error)
        }
    }
}
