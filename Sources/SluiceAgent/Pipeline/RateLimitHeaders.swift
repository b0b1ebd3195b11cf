import SluicePolicy

/// OpenAI-style `x-ratelimit-*` headers for the tightest request and token limits that
/// applied to a call. When no such limit applies, none are sent: there is nothing to report.
enum RateLimitHeaders {
    static func fields(for status: RateLimitStatus?) -> [(String, String)] {
        guard let status else { return [] }
        var fields: [(String, String)] = []
        fields.reserveCapacity(6)
        if let requests = status.requests {
            fields.append(("x-ratelimit-limit-requests", String(requests.limit)))
            fields.append(("x-ratelimit-remaining-requests", String(requests.remaining)))
            fields.append(("x-ratelimit-reset-requests", duration(requests.resetNanoseconds)))
        }
        if let tokens = status.tokens {
            fields.append(("x-ratelimit-limit-tokens", String(tokens.limit)))
            fields.append(("x-ratelimit-remaining-tokens", String(tokens.remaining)))
            fields.append(("x-ratelimit-reset-tokens", duration(tokens.resetNanoseconds)))
        }
        return fields
    }

    /// OpenAI's duration style: `20ms`, `6s`, `1m30s`, `11h59m0s`.
    /// Built by concatenating short strings, which stay inline, where interpolation went
    /// through a growing buffer: two of these go out with every limited call.
    static func duration(_ nanoseconds: Int64) -> String {
        guard nanoseconds > 0 else { return "0s" }
        if nanoseconds < 1_000_000_000 { return String((nanoseconds + 999_999) / 1_000_000) + "ms" }
        let seconds = (nanoseconds + 999_999_999) / 1_000_000_000
        let hours = seconds / 3600
        let minutes = seconds / 60 % 60
        let rest = String(seconds % 60) + "s"
        if hours > 0 { return String(hours) + "h" + String(minutes) + "m" + rest }
        if minutes > 0 { return String(minutes) + "m" + rest }
        return rest
    }
}
