/// Tokens one call used, as the provider reported them or as Sluice estimated them.
public struct TokenUsage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// True when the provider sent no usage and these figures are estimates.
    public var estimated: Bool

    public init(promptTokens: Int, completionTokens: Int, estimated: Bool = false) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.estimated = estimated
    }

    public var totalTokens: Int { promptTokens + completionTokens }

    /// A rough estimate (about four bytes a token) for when the provider reports nothing.
    public static func estimate(promptBytes: Int, completionBytes: Int) -> TokenUsage {
        TokenUsage(promptTokens: (promptBytes + 3) / 4, completionTokens: (completionBytes + 3) / 4, estimated: true)
    }

    /// Reads an OpenAI `usage` object (`prompt_tokens`, `completion_tokens`) at `range`.
    public static func openAI(at range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> TokenUsage? {
        let members = JSONScanner.members(ofObjectAt: range, in: bytes)
        func count(_ key: String) -> Int? {
            guard let member = members.first(where: { $0.key == key }), member.kind == .number,
                let value = JSONScanner.integer(at: member.valueRange, in: bytes), value >= 0, value < Int64(Int32.max)
            else { return nil }
            return Int(value)
        }
        guard let prompt = count("prompt_tokens") else { return nil }
        // Embeddings report only prompt tokens.
        return TokenUsage(promptTokens: prompt, completionTokens: count("completion_tokens") ?? 0)
    }

    /// The usage block of a complete, non-streamed OpenAI response body.
    public static func fromOpenAIResponse(_ body: UnsafeRawBufferPointer) -> TokenUsage? {
        guard let members = try? JSONScanner.scanObject(body, maxDepth: 256),
            let usage = members.first(where: { $0.key == "usage" }), usage.kind == .object
        else { return nil }
        return openAI(at: usage.valueRange, in: body)
    }
}

extension TokenUsage {
    /// Usage from an OpenAI `usage` object already parsed as a value.
    public static func fromOpenAIUsage(_ usage: JSONValue?) -> TokenUsage? {
        guard let usage, let prompt = usage["prompt_tokens"]?.intValue else { return nil }
        return TokenUsage(promptTokens: prompt, completionTokens: usage["completion_tokens"]?.intValue ?? 0)
    }
}
