/// What a provider's 4xx error body says went wrong, where routing treats it specially:
/// a prompt too long for the model (context-window fallbacks) or a prompt refused under
/// the provider's content policy (content-policy fallbacks).
public enum ProviderErrorCategory: Sendable, Equatable {
    case contextWindowExceeded
    case contentPolicy
    case other

    /// Reads an OpenAI, Azure, Anthropic or Gemini error body. Anything unrecognised is
    /// `.other`: routing then treats the error by its status alone.
    public static func of(status: Int, body: [UInt8]) -> ProviderErrorCategory {
        guard status == 400 || status == 413 || status == 422,
            let root = try? JSONValue.parseObject(body), let error = root["error"]
        else { return .other }
        let code = error["code"]?.stringValue ?? ""
        let type = error["type"]?.stringValue ?? ""
        let message = (error["message"]?.stringValue ?? "").lowercased()
        if code == "context_length_exceeded" || code == "string_above_max_length" { return .contextWindowExceeded }
        if code == "content_policy_violation" || code == "content_filter" || code == "ResponsibleAIPolicyViolation" {
            return .contentPolicy
        }
        // Anthropic: invalid_request_error "prompt is too long: 210000 tokens > 200000 maximum".
        if type == "invalid_request_error" && message.contains("prompt is too long") { return .contextWindowExceeded }
        // Gemini: INVALID_ARGUMENT "The input token count (…) exceeds the maximum number of tokens allowed (…)".
        if message.contains("exceeds the maximum number of tokens") || message.contains("maximum context length") {
            return .contextWindowExceeded
        }
        return .other
    }
}
