import SluiceAPI
import SluicePolicy

/// One line of the audit log: what a single request was, who made it, and what it cost.
/// It holds identifiers, counts and rule names only: never a prompt, a completion or a key.
struct AuditRecord: Sendable {
    var timestampNanoseconds: Int64
    var requestID: String
    var identity: ServiceIdentity
    var method: String
    var path: String
    /// The virtual key's id (never the key), its team and project.
    var keyID: String?
    var team: String?
    var project: String?
    /// The end user the caller named in the body's `user` field.
    var endUser: String?
    /// The policy rule that refused the call (`team "ml" tokens_per_minute`, `filter "ssn"`).
    var rule: String?
    var alias: String?
    /// The alias that answered: the caller's, or the fallback that stood in for it.
    var servedAlias: String?
    /// Upstream attempts the call took, retries and fallbacks included.
    var attempts: Int?
    var upstreamModel: String?
    var deployment: String?
    var httpVersion: String?
    var status: Int
    var stream = false
    var streamCompleted: Bool?
    var usage: TokenUsage?
    var costUSD: Double?
    var priceMissing = false
    var latencySeconds: Double
    var timeToFirstByteSeconds: Double?
    /// The rule or fault that decided the outcome, for denials and failures.
    var errorCode: String?
    /// Each guardrail asked (or skipped by sampling), in order; written only when there are some.
    var guardrails: [GuardrailDecision] = []

    var jsonLine: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        func key(_ name: StaticString) {
            out.append(out.count == 0 ? UInt8(ascii: "{") : UInt8(ascii: ","))
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: "\":".utf8)
        }
        func string(_ name: StaticString, _ value: String?) {
            key(name)
            if let value { appendJSONString(value, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        func number(_ name: StaticString, _ value: String?) {
            key(name)
            out.append(contentsOf: (value ?? "null").utf8)
        }
        string("ts", formatRFC3339(nanoseconds: timestampNanoseconds))
        string("request_id", requestID)
        string("service", identity.service)
        string("namespace", identity.namespace)
        string("pod", identity.pod)
        string("service_account", identity.serviceAccount.isEmpty ? nil : identity.serviceAccount)
        string("key_id", keyID)
        string("team", team)
        string("project", project)
        string("end_user", endUser.map { String($0.prefix(128)) })
        string("method", method)
        string("path", path)
        string("alias", alias)
        string("served_alias", servedAlias)
        number("attempts", attempts.map { String($0) })
        string("upstream_model", upstreamModel)
        string("deployment", deployment)
        string("http_version", httpVersion)
        number("status", String(status))
        number("stream", String(stream))
        number("stream_completed", streamCompleted.map { String($0) })
        number("prompt_tokens", usage.map { String($0.promptTokens) })
        number("completion_tokens", usage.map { String($0.completionTokens) })
        number("cached_tokens", usage.map { String($0.cachedPromptTokens) })
        number("cache_creation_tokens", usage.map { String($0.cacheCreationTokens) })
        number("reasoning_tokens", usage.map { String($0.reasoningTokens) })
        number("usage_estimated", usage.map { String($0.estimated) })
        number("cost_usd", costUSD.map { formatDecimal($0, places: 9) })
        number("price_missing", String(priceMissing))
        number("latency_ms", formatDecimal(latencySeconds * 1000, places: 3))
        number("ttfb_ms", timeToFirstByteSeconds.map { formatDecimal($0 * 1000, places: 3) })
        string("error", errorCode)
        string("rule", rule)
        if !guardrails.isEmpty {
            key("guardrails")
            out.append(UInt8(ascii: "["))
            for (index, decision) in guardrails.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: #"{"name":"#.utf8)
                appendJSONString(decision.guardrail, to: &out)
                out.append(contentsOf: #","stage":""#.utf8)
                out.append(contentsOf: decision.stage.rawValue.utf8)
                out.append(UInt8(ascii: "\""))
                out.append(contentsOf: #","verdict":""#.utf8)
                out.append(contentsOf: decision.verdict.rawValue.utf8)
                out.append(contentsOf: #"","ms":"#.utf8)
                out.append(contentsOf: (decision.milliseconds.map { formatDecimal($0, places: 3) } ?? "null").utf8)
                out.append(contentsOf: #","reason":"#.utf8)
                if let reason = decision.reason {
                    appendJSONString(reason, to: &out)
                } else {
                    out.append(contentsOf: "null".utf8)
                }
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(contentsOf: "}\n".utf8)
        return out
    }
}

/// Fixed-point formatting without Foundation (and without exponents, which some log
/// pipelines parse badly).
func formatDecimal(_ value: Double, places: Int) -> String {
    guard value.isFinite else { return "0" }
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9.0e18 else { return String(Int64(value)) }
    let whole = Int64(scaled) / Int64(scale)
    var fraction = String(Int64(scaled) % Int64(scale))
    while fraction.count < places { fraction = "0" + fraction }
    while fraction.hasSuffix("0") { fraction.removeLast() }
    let sign = value < 0 && scaled > 0 ? "-" : ""
    return fraction.isEmpty ? "\(sign)\(whole)" : "\(sign)\(whole).\(fraction)"
}

/// `2026-11-23T19:40:00.123Z` from nanoseconds since the Unix epoch (civil-from-days).
func formatRFC3339(nanoseconds: Int64) -> String {
    let seconds = nanoseconds / 1_000_000_000
    let millis = (nanoseconds / 1_000_000) % 1000
    let days = seconds / 86_400
    let secondOfDay = seconds % 86_400
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthPrime = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * monthPrime + 2) / 5 + 1
    let month = monthPrime < 10 ? monthPrime + 3 : monthPrime - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return
        "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):"
        + "\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(millis, 3))Z"
}
