/// What the mock provider does for one request, read from the upstream model name:
/// `name+directive+directive=value…`. Because the agent forwards the body and rewrites only
/// the model, a test picks a fault by pointing an alias at e.g. `mock+rst_after=3`.
///
/// Directives: `status=N` (answer N with an OpenAI error body), `rst_after=N` (reset the
/// stream after N chunks), `goaway_once` (the first such request on a server sends GOAWAY
/// below its own stream and never answers it), `first_byte_delay_ms=N`, `chunks=N`,
/// `chunk_delay_ms=N`, `malformed_sse` (a chunk of invalid JSON and no `[DONE]`),
/// `no_usage` (never send usage), `hang_after=N` (stop sending after N chunks, keep the
/// stream open), `big_body=N` (a non-streamed body of about N bytes), `mid_stream_error`
/// (an `error` event after the first chunk), `echo_key` (with `status`: the error message
/// quotes the caller's bearer key in full and half-masked, as some providers do),
/// `tool_call` (answer with a call to the request's first tool), `fail_first=N` (with
/// `status`: only the first N requests naming this exact model fail; later ones succeed),
/// `context_window` (400: the prompt exceeds the model's context), `content_filter` (400:
/// refused under the content policy), `retry_after=N` (a `Retry-After` header on errors),
/// `prompt=N` (report N prompt tokens instead of about a quarter of the body's bytes),
/// `cached=N` (N of them read from the prompt cache), `cache_write=N` (N written to it;
/// reported by Anthropic's format only, the others have no such figure) and `reasoning=N`
/// (N reasoning tokens: within the completion for OpenAI, on top of it for Gemini, whose
/// `thoughtsTokenCount` is apart from `candidatesTokenCount`; Anthropic reports none).
///
/// The same directives apply on `/v1/messages`, answered in Anthropic's format; there
/// `mid_stream_error` is an `overloaded_error` event inside the 200 stream. On Gemini's
/// `models/MODEL:generateContent` the model (and so the directives) is read from the path.
public struct MockBehaviour: Sendable, Equatable {
    public var model: String
    public var status: Int = 200
    public var resetAfterChunks: Int?
    public var goAwayOnce = false
    public var firstByteDelayMilliseconds = 0
    public var chunks: Int?
    public var chunkDelayMilliseconds: Int?
    public var malformedSSE = false
    public var noUsage = false
    public var hangAfterChunks: Int?
    public var bigBodyBytes: Int?
    public var midStreamError = false
    public var echoKey = false
    public var toolCall = false
    public var failFirst: Int?
    public var contextWindow = false
    public var contentFilter = false
    public var retryAfterSeconds: Int?
    public var promptTokens: Int?
    public var cachedTokens = 0
    public var cacheWriteTokens = 0
    public var reasoningTokens = 0

    public init(model: String) {
        self.model = model
        for directive in model.split(separator: "+").dropFirst() {
            let parts = directive.split(separator: "=", maxSplits: 1)
            let name = String(parts[0])
            let value = parts.count > 1 ? Int(parts[1]) : nil
            switch name {
            case "status": status = value ?? 500
            case "rst_after": resetAfterChunks = value ?? 0
            case "goaway_once": goAwayOnce = true
            case "first_byte_delay_ms": firstByteDelayMilliseconds = value ?? 0
            case "chunks": chunks = value
            case "chunk_delay_ms": chunkDelayMilliseconds = value
            case "malformed_sse": malformedSSE = true
            case "no_usage": noUsage = true
            case "hang_after": hangAfterChunks = value ?? 0
            case "big_body": bigBodyBytes = value
            case "mid_stream_error": midStreamError = true
            case "echo_key": echoKey = true
            case "tool_call": toolCall = true
            case "fail_first": failFirst = value ?? 1
            case "context_window":
                contextWindow = true
                status = 400
            case "content_filter":
                contentFilter = true
                status = 400
            case "retry_after": retryAfterSeconds = value ?? 1
            case "prompt": promptTokens = value
            case "cached": cachedTokens = value ?? 0
            case "cache_write": cacheWriteTokens = value ?? 0
            case "reasoning": reasoningTokens = value ?? 0
            default: continue
            }
        }
    }

    /// Counts this request for `fail_first`: once `seen` (the requests naming this model
    /// before it) reaches N, the scripted failure gives way to success.
    mutating func count(seen: (String) -> Int) {
        if let failFirst, seen(model) >= failFirst { status = 200 }
    }
}

extension MockBehaviour {
    /// The prompt tokens to report: `prompt=N`, or about a quarter of the body's bytes;
    /// never fewer than the cached and written parts.
    func promptTokens(bodyBytes: Int) -> Int {
        max(promptTokens ?? max(1, bodyBytes / 4), cachedTokens + cacheWriteTokens)
    }

    /// OpenAI's usage details for `cached` and `reasoning` (empty when both are 0), to
    /// follow `total_tokens` inside a `usage` object.
    var openAIUsageDetails: String {
        var details = ""
        if cachedTokens > 0 { details += #","prompt_tokens_details":{"cached_tokens":\#(cachedTokens)}"# }
        if reasoningTokens > 0 {
            details += #","completion_tokens_details":{"reasoning_tokens":\#(reasoningTokens)}"#
        }
        return details
    }
}
