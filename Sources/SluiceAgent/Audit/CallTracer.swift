import Logging
import NIOCore
import SluiceAPI
import SluiceExport
import SluiceHTTP2
import SluicePolicy
import Synchronization

/// OpenTelemetry spans for calls, sent as OTLP/HTTP JSON (`--otlp-traces`): a server span
/// per call with the GenAI semantic-convention attributes and Sluice's own, and a client
/// span per upstream attempt, whose context goes upstream as W3C `traceparent`.
///
/// Off unless configured, and then the request path pays only for sampled calls: the
/// caller's `traceparent` decides when it has one (its sampled flag), the ratio otherwise.
/// When the call settles, its audit record is handed to the exporter, which builds the
/// spans from it with the rest of the batch, off the event loop.
public final class CallTracer: Sendable {
    public let exporter: BatchExporter
    let sampleRatio: Double

    public init(
        destination: ExportDestination, sampleRatio: Double, settings: ExportSettings, identity: ServiceIdentity,
        upstream: UpstreamClient, group: any EventLoopGroup, logger: Logger
    ) {
        self.sampleRatio = sampleRatio
        exporter = BatchExporter(
            destination: destination, settings: settings, subject: "traces", upstream: upstream, group: group,
            logger: logger, clock: { Clocks.wallNanoseconds() }
        ) { spans in
            ExportEncoding.otlpSpans(
                spans,
                resource: [
                    ("service.name", "sluice-agent"), ("service.namespace", identity.namespace),
                    ("sluice.service", identity.qualifiedName), ("k8s.pod.name", identity.pod),
                ], scope: "sluice")
        }
    }

    /// The call's trace when it is sampled; nil otherwise.
    func begin(traceparent: String?) -> CallTrace? {
        if let traceparent, let parent = TraceParent(parsing: traceparent) {
            return parent.sampled ? CallTrace(traceID: parent.traceID, parentSpanID: parent.spanID) : nil
        }
        guard sampleRatio >= 1 || Double.random(in: 0..<1) < sampleRatio else { return nil }
        return CallTrace(traceID: Hex.id(bytes: 16), parentSpanID: nil)
    }

    /// Hands the call's spans over, to be built from its audit record when they are sent.
    func finish(
        _ trace: CallTrace, record: AuditRecord, deployment: Deployment?, admitted: Bool, endNanoseconds: Int64
    ) {
        exporter.enqueue {
            Self.serverSpan(
                trace, record: record, deployment: deployment, admitted: admitted, endNanoseconds: endNanoseconds)
        }
        let operation = Self.operation(path: record.path)
        for attempt in trace.finishedAttempts(at: endNanoseconds) {
            exporter.enqueue {
                Self.attemptSpan(trace, attempt, operation: operation, endNanoseconds: endNanoseconds)
            }
        }
    }

    /// The call's own span (kind server).
    static func serverSpan(
        _ trace: CallTrace, record: AuditRecord, deployment: Deployment?, admitted: Bool, endNanoseconds: Int64
    ) -> [UInt8] {
        let operation = Self.operation(path: record.path)
        var attributes = SpanAttributes()
        attributes.string("gen_ai.operation.name", operation)
        if let deployment { attributes.string("gen_ai.provider.name", Self.provider(deployment.dialect)) }
        attributes.string("gen_ai.request.model", record.alias)
        attributes.string("gen_ai.response.model", record.upstreamModel)
        if let usage = record.usage {
            attributes.int("gen_ai.usage.input_tokens", usage.promptTokens)
            attributes.int("gen_ai.usage.output_tokens", usage.completionTokens)
            attributes.int("gen_ai.usage.cache_read.input_tokens", usage.cachedPromptTokens)
            attributes.int("gen_ai.usage.cache_creation.input_tokens", usage.cacheCreationTokens)
        }
        attributes.int("http.response.status_code", record.status)
        for (key, value) in [
            ("http.request.method", record.method), ("url.path", record.path), ("error.type", record.errorCode),
            ("sluice.request_id", record.requestID), ("sluice.team", record.team), ("sluice.project", record.project),
            ("sluice.key_id", record.keyID), ("sluice.decision", admitted ? "allow" : "deny"),
            ("sluice.rule", record.rule),
        ] {
            attributes.string(key, value)
        }
        if let cost = record.costUSD { attributes.double("sluice.cost_usd", cost) }
        return Self.span(
            traceID: trace.traceID, spanID: trace.spanID, parent: trace.parentSpanID,
            name: "\(operation) \(record.alias ?? "unknown")", kind: 2, start: record.timestampNanoseconds,
            end: endNanoseconds, attributes: attributes, error: record.status >= 500 ? record.errorCode : nil)
    }

    /// One upstream attempt's span (kind client), a child of the call's.
    static func attemptSpan(
        _ trace: CallTrace, _ attempt: CallTrace.Attempt, operation: String, endNanoseconds: Int64
    ) -> [UInt8] {
        var attributes = SpanAttributes()
        attributes.string("gen_ai.operation.name", operation)
        attributes.string("gen_ai.provider.name", Self.provider(attempt.deployment.dialect))
        attributes.string("gen_ai.request.model", attempt.deployment.upstreamModel)
        attributes.string("server.address", attempt.deployment.endpoint.host)
        attributes.int("server.port", attempt.deployment.endpoint.port)
        attributes.string("sluice.deployment", attempt.deployment.endpoint.description)
        attributes.string("sluice.outcome", attempt.outcome)
        return Self.span(
            traceID: trace.traceID, spanID: attempt.spanID, parent: trace.spanID,
            name: "\(operation) \(attempt.deployment.upstreamModel)", kind: 3, start: attempt.start,
            end: attempt.end ?? endNanoseconds, attributes: attributes,
            error: attempt.outcome == "ok" ? nil : attempt.outcome)
    }

    /// The GenAI operation a path is: `chat`, `embeddings` or `text_completion`.
    static func operation(path: String) -> String {
        if path.hasPrefix("/v1/embeddings") { return "embeddings" }
        if path.hasPrefix("/v1/completions") { return "text_completion" }
        return "chat"
    }

    /// The semantic conventions' `gen_ai.provider.name` for a deployment's dialect.
    static func provider(_ dialect: ProviderDialect) -> String {
        switch dialect {
        case .openAI: "openai"
        case .anthropic: "anthropic"
        case .azure: "azure.ai.openai"
        case .gemini: "gcp.gemini"
        }
    }

    /// One OTLP/JSON span object (ids in hex, times as decimal strings).
    static func span(
        traceID: String, spanID: String, parent: String?, name: String, kind: Int, start: Int64, end: Int64,
        attributes: SpanAttributes, error: String?
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1024)
        out += #"{"traceId":"\#(traceID)","spanId":"\#(spanID)""#.utf8
        if let parent { out += #","parentSpanId":"\#(parent)""#.utf8 }
        out += #","name":"#.utf8
        appendJSONString(name, to: &out)
        out += #","kind":\#(kind),"startTimeUnixNano":"\#(start)","endTimeUnixNano":"\#(max(start, end))","#.utf8
        out += #""attributes":["#.utf8
        out += attributes.bytes
        out.append(UInt8(ascii: "]"))
        if let error {
            out += #","status":{"code":2,"message":"#.utf8
            appendJSONString(error, to: &out)
            out += "}".utf8
        }
        out += "}".utf8
        return out
    }
}

/// A span's attributes as OTLP/JSON key-value objects; a nil value leaves the key out.
struct SpanAttributes {
    private(set) var bytes: [UInt8] = []

    private mutating func key(_ key: String) {
        if !bytes.isEmpty { bytes.append(UInt8(ascii: ",")) }
        bytes += #"{"key":"#.utf8
        appendJSONString(key, to: &bytes)
        bytes += #","value":{"#.utf8
    }

    mutating func string(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        bytes += #""stringValue":"#.utf8
        appendJSONString(value, to: &bytes)
        bytes += "}}".utf8
    }

    mutating func int(_ name: String, _ value: Int) {
        key(name)
        // OTLP/JSON carries 64-bit integers as strings.
        bytes += #""intValue":"\#(value)"}}"#.utf8
    }

    mutating func double(_ name: String, _ value: Double) {
        key(name)
        bytes += #""doubleValue":\#(value.isFinite ? value : 0)}}"#.utf8
    }
}

/// A sampled call's trace: its ids, and the upstream attempts made for it.
final class CallTrace: Sendable {
    struct Attempt: Sendable {
        var spanID: String
        var deployment: Deployment
        var start: Int64
        var end: Int64?
        var outcome = "ok"
    }

    let traceID: String
    let spanID = Hex.id(bytes: 8)
    let parentSpanID: String?
    private let attempts = Mutex<[Attempt]>([])

    init(traceID: String, parentSpanID: String?) {
        self.traceID = traceID
        self.parentSpanID = parentSpanID
    }

    /// Begins an attempt's span; returns the `traceparent` to send upstream with it.
    func attemptStarted(_ deployment: Deployment, at now: Int64) -> String {
        let id = Hex.id(bytes: 8)
        attempts.withLock { $0.append(Attempt(spanID: id, deployment: deployment, start: now)) }
        return "00-\(traceID)-\(id)-01"
    }

    /// Ends the attempt still open, if there is one (a second report of the same end is ignored).
    func attemptEnded(outcome: String, at now: Int64) {
        attempts.withLock { attempts in
            guard let last = attempts.indices.last, attempts[last].end == nil else { return }
            attempts[last].end = now
            attempts[last].outcome = outcome
        }
    }

    func finishedAttempts(at now: Int64) -> [Attempt] {
        attempts.withLock { $0 }.map { attempt in
            var attempt = attempt
            if attempt.end == nil { attempt.end = now }
            return attempt
        }
    }
}

/// A W3C `traceparent` header: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
struct TraceParent: Equatable {
    var traceID: String
    var spanID: String
    var sampled: Bool

    /// Nil for anything malformed: version `ff`, wrong lengths, upper-case or non-hex digits,
    /// an all-zero id. A later version is read by its first four fields, as the spec asks.
    init?(parsing header: String) {
        let parts = header.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].utf8.count == 2, parts[0] != "ff", parts[1].utf8.count == 32,
            parts[2].utf8.count == 16, parts[3].utf8.count == 2, parts[0] != "00" || parts.count == 4,
            parts[0...3].allSatisfy(Hex.isLowerHex),
            parts[1].contains(where: { $0 != "0" }), parts[2].contains(where: { $0 != "0" }),
            let flags = UInt8(parts[3], radix: 16)
        else { return nil }
        traceID = String(parts[1])
        spanID = String(parts[2])
        sampled = flags & 1 == 1
    }
}

enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)
    /// SplitMix64 over an atomic counter seeded once from the system's generator: ids must
    /// be unique and unpredictable enough to not collide, not secret, and a system call per
    /// id would cost more than the rest of the span.
    private static let state = Atomic<UInt64>(UInt64.random(in: .min ... .max))

    private static func next() -> UInt64 {
        var z = state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A random id of `bytes` bytes (8 or 16) in lower-case hex, never all zeros.
    static func id(bytes: Int) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes * 2)
        while true {
            out.removeAll(keepingCapacity: true)
            for _ in 0..<(bytes / 8) {
                let word = next()
                for shift in stride(from: 60, through: 0, by: -4) {
                    out.append(digits[Int((word >> UInt64(shift)) & 0x0F)])
                }
            }
            if out.contains(where: { $0 != UInt8(ascii: "0") }) { return String(decoding: out, as: UTF8.self) }
        }
    }

    static func isLowerHex(_ text: Substring) -> Bool {
        text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
