/// Tokens one call used, as the provider reported them or as Sluice estimated them.
///
/// Normalised across providers so that prices apply the same way: `promptTokens` is every
/// input token, cache reads and cache writes included (Anthropic reports those apart from
/// `input_tokens`; OpenAI and Gemini include them), and `completionTokens` is every output
/// token, reasoning included. The parts are subsets priced at their own rates.
public struct TokenUsage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// Prompt tokens read from the provider's prompt cache (OpenAI `cached_tokens`,
    /// Anthropic `cache_read_input_tokens`, Gemini `cachedContentTokenCount`).
    public var cachedPromptTokens: Int
    /// Prompt tokens written to the provider's cache (Anthropic `cache_creation_input_tokens`).
    public var cacheCreationTokens: Int
    /// Completion tokens spent reasoning (OpenAI `reasoning_tokens`, Gemini `thoughtsTokenCount`).
    public var reasoningTokens: Int
    /// True when the provider sent no usage and these figures are estimates.
    public var estimated: Bool

    public init(
        promptTokens: Int, completionTokens: Int, cachedPromptTokens: Int = 0, cacheCreationTokens: Int = 0,
        reasoningTokens: Int = 0, estimated: Bool = false
    ) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        // A provider's parts can never exceed its whole: clamped so a garbled report
        // cannot price more tokens than were used.
        let cached = min(max(0, cachedPromptTokens), max(0, promptTokens))
        self.cachedPromptTokens = cached
        self.cacheCreationTokens = min(max(0, cacheCreationTokens), max(0, promptTokens - cached))
        self.reasoningTokens = min(max(0, reasoningTokens), max(0, completionTokens))
        self.estimated = estimated
    }

    public var totalTokens: Int { promptTokens + completionTokens }

    /// A rough estimate (about four bytes a token) for when the provider reports nothing.
    public static func estimate(promptBytes: Int, completionBytes: Int) -> TokenUsage {
        TokenUsage(promptTokens: (promptBytes + 3) / 4, completionTokens: (completionBytes + 3) / 4, estimated: true)
    }

    /// Reads an OpenAI `usage` object at `range`: chat's (`prompt_tokens`,
    /// `completion_tokens`, their `_details`) or the Responses API's (`input_tokens`,
    /// `output_tokens`, their `_details`).
    public static func openAI(at range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> TokenUsage? {
        // Chat's names first, then the Responses API's, in the same order.
        let fields = JSONScanner.values(
            [
                "prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details",
                "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details",
            ], ofObjectAt: range, in: bytes)
        func count(_ field: JSONNamedValue?) -> Int? {
            guard let field, field.kind == .number, let value = JSONScanner.integer(at: field.range, in: bytes),
                value >= 0, value < Int64(Int32.max)
            else { return nil }
            return Int(value)
        }
        func detail(_ object: JSONNamedValue?, _ key: StaticString) -> Int {
            guard let object, object.kind == .object else { return 0 }
            return count(JSONScanner.values([key], ofObjectAt: object.range, in: bytes)[0]) ?? 0
        }
        // Chat's four names when it has prompt_tokens, else the Responses API's.
        let shape = count(fields[0]) != nil ? 0 : 4
        guard let prompt = count(fields[shape]) else { return nil }
        // Embeddings report only prompt tokens.
        return TokenUsage(
            promptTokens: prompt, completionTokens: count(fields[shape + 1]) ?? 0,
            cachedPromptTokens: detail(fields[shape + 2], "cached_tokens"),
            reasoningTokens: detail(fields[shape + 3], "reasoning_tokens"))
    }

    /// The usage block of a complete, non-streamed OpenAI response body. The whole body is
    /// validated (as the caller receives it); only the `usage` member is read.
    public static func fromOpenAIResponse(_ body: UnsafeRawBufferPointer) -> TokenUsage? {
        guard let found = try? JSONScanner.scanObject(body, maxDepth: 256, values: ["usage"]), let usage = found[0],
            usage.kind == .object
        else { return nil }
        return openAI(at: usage.range, in: body)
    }
}

extension TokenUsage {
    /// Usage from an OpenAI `usage` object already parsed as a value.
    public static func fromOpenAIUsage(_ usage: JSONValue?) -> TokenUsage? {
        guard let usage, let prompt = usage["prompt_tokens"]?.intValue else { return nil }
        return TokenUsage(
            promptTokens: prompt, completionTokens: usage["completion_tokens"]?.intValue ?? 0,
            cachedPromptTokens: usage["prompt_tokens_details"]?["cached_tokens"]?.intValue ?? 0,
            reasoningTokens: usage["completion_tokens_details"]?["reasoning_tokens"]?.intValue ?? 0)
    }
}
