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
        var line = AuditLineWriter()
        line.string("ts") { appendRFC3339(nanoseconds: timestampNanoseconds, to: &$0) }
        line.string("request_id", requestID)
        line.string("service", identity.service)
        line.string("namespace", identity.namespace)
        line.string("pod", identity.pod)
        line.string("service_account", identity.serviceAccount.isEmpty ? nil : identity.serviceAccount)
        line.string("key_id", keyID)
        line.string("team", team)
        line.string("project", project)
        line.string("end_user", endUser.map { String($0.prefix(128)) })
        line.string("method", method)
        line.string("path", path)
        line.string("alias", alias)
        line.string("served_alias", servedAlias)
        line.integer("attempts", attempts)
        line.string("upstream_model", upstreamModel)
        line.string("deployment", deployment)
        line.string("http_version", httpVersion)
        line.integer("status", status)
        line.bool("stream", stream)
        line.bool("stream_completed", streamCompleted)
        line.integer("prompt_tokens", usage?.promptTokens)
        line.integer("completion_tokens", usage?.completionTokens)
        line.integer("cached_tokens", usage?.cachedPromptTokens)
        line.integer("cache_creation_tokens", usage?.cacheCreationTokens)
        line.integer("reasoning_tokens", usage?.reasoningTokens)
        line.bool("usage_estimated", usage?.estimated)
        line.fixedPoint("cost_usd", costUSD, places: 9)
        line.bool("price_missing", priceMissing)
        line.fixedPoint("latency_ms", latencySeconds * 1000, places: 3)
        line.fixedPoint("ttfb_ms", timeToFirstByteSeconds.map { $0 * 1000 }, places: 3)
        line.string("error", errorCode)
        line.string("rule", rule)
        if !guardrails.isEmpty {
            line.key("guardrails")
            line.out.append(UInt8(ascii: "["))
            for (index, decision) in guardrails.enumerated() {
                if index > 0 { line.out.append(UInt8(ascii: ",")) }
                line.object { entry in
                    entry.string("name", decision.guardrail)
                    entry.string("stage", decision.stage.rawValue)
                    entry.string("verdict", decision.verdict.rawValue)
                    entry.fixedPoint("ms", decision.milliseconds, places: 3)
                    entry.string("reason", decision.reason)
                }
            }
            line.out.append(UInt8(ascii: "]"))
        }
        line.close()
        line.out.append(UInt8(ascii: "\n"))
        return line.out
    }
}

/// Writes one flat JSON object field by field straight into bytes: no intermediate strings
/// for numbers or times, since an audit line is built for every call.
struct AuditLineWriter {
    var out: [UInt8]
    private var empty = true

    init() {
        out = []
        // A served call's line is about 700 bytes: one allocation, no regrowth.
        out.reserveCapacity(1024)
    }

    /// `{"name":` or `,"name":`, laid out on the stack and appended at once: one append
    /// where five byte appends each checked the array's capacity and uniqueness.
    mutating func key(_ name: StaticString) {
        let opener = empty ? UInt8(ascii: "{") : UInt8(ascii: ",")
        empty = false
        let count = name.utf8CodeUnitCount
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count + 4) { field in
            field[0] = opener
            field[1] = UInt8(ascii: "\"")
            (field.baseAddress! + 2).initialize(from: name.utf8Start, count: count)
            field[count + 2] = UInt8(ascii: "\"")
            field[count + 3] = UInt8(ascii: ":")
            out.append(contentsOf: UnsafeBufferPointer(field))
        }
    }

    private mutating func literal(_ text: StaticString) {
        out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    private mutating func null() { literal("null") }

    mutating func string(_ name: StaticString, _ value: String?) {
        key(name)
        if let value { appendJSONString(value, to: &out) } else { null() }
    }

    /// A string written by `body`, which must not need escaping (timestamps).
    mutating func string(_ name: StaticString, _ body: (inout [UInt8]) -> Void) {
        key(name)
        out.append(UInt8(ascii: "\""))
        body(&out)
        out.append(UInt8(ascii: "\""))
    }

    mutating func integer(_ name: StaticString, _ value: Int?) {
        key(name)
        if let value { appendDecimalInteger(Int64(value), to: &out) } else { null() }
    }

    mutating func bool(_ name: StaticString, _ value: Bool?) {
        key(name)
        guard let value else { return null() }
        literal(value ? "true" : "false")
    }

    mutating func fixedPoint(_ name: StaticString, _ value: Double?, places: Int) {
        key(name)
        if let value { appendFixedPoint(value, places: places, to: &out) } else { null() }
    }

    /// Ends the object being written.
    mutating func close() {
        literal(empty ? "{}" : "}")
        empty = false
    }

    /// Writes a nested object (an array element) whose fields `body` adds.
    mutating func object(_ body: (inout AuditLineWriter) -> Void) {
        empty = true
        body(&self)
        close()
    }
}

/// Appends `2026-11-23T19:40:00.123Z` for nanoseconds since the Unix epoch (civil-from-days).
func appendRFC3339(nanoseconds: Int64, to out: inout [UInt8]) {
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
    func field(_ separator: Unicode.Scalar, _ value: Int64, width: Int) {
        out.append(UInt8(ascii: separator))
        appendDecimalInteger(value, minimumDigits: width, to: &out)
    }
    appendDecimalInteger(year, minimumDigits: 4, to: &out)
    field("-", month, width: 2)
    field("-", day, width: 2)
    field("T", secondOfDay / 3600, width: 2)
    field(":", secondOfDay / 60 % 60, width: 2)
    field(":", secondOfDay % 60, width: 2)
    field(".", millis, width: 3)
    out.append(UInt8(ascii: "Z"))
}
