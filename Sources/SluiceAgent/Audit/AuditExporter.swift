import Logging
import NIOCore
import ServiceLifecycle
import SluiceAPI
import SluiceHTTP2
import SluicePolicy
import Synchronization

/// Sends audit lines to one destination in batches, off the request path: a bounded queue
/// (past it, lines are dropped and counted, never waited for), one post per batch, retried
/// with backoff. At shutdown it runs after the server has drained, so the last calls'
/// lines go out too, within a deadline.
///
/// Delivery is at least once: a post whose answer is lost is sent again, so receivers
/// should drop repeats by `request_id`.
public final class AuditExporter: Service, Sendable {
    /// What became of the lines handed over so far.
    public struct Counts: Sendable, Equatable {
        public var sent = 0
        /// Refused at the door: the queue was full.
        public var dropped = 0
        /// Given up after every retry failed.
        public var failed = 0
        public var queued = 0
    }

    private struct Entry {
        var line: [UInt8]
        var nanoseconds: Int64
    }

    private struct State {
        var queue: [Entry] = []
        var counts = Counts()
        var waiter: CheckedContinuation<Void, Never>?
        var closing = false
    }

    public let destination: AuditExportDestination
    private let settings: AuditExportSettings
    private let identity: ServiceIdentity
    private let upstream: UpstreamClient
    private let group: any EventLoopGroup
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    private let origin: UpstreamOrigin
    private let state = Mutex(State())

    public init(
        destination: AuditExportDestination, settings: AuditExportSettings, identity: ServiceIdentity,
        upstream: UpstreamClient, group: any EventLoopGroup, logger: Logger,
        clock: @escaping @Sendable () -> Int64 = { Clocks.wallNanoseconds() }
    ) {
        self.destination = destination
        self.settings = settings
        self.identity = identity
        self.upstream = upstream
        self.group = group
        self.logger = logger
        self.clock = clock
        let endpoint = destination.endpoint
        origin = UpstreamOrigin(
            scheme: endpoint.scheme == .https ? .https : .http, host: endpoint.host, port: endpoint.port,
            trustRoots: destination.caFile.map { .caFile($0) } ?? .system)
    }

    public var counts: Counts {
        state.withLock { state in
            var counts = state.counts
            counts.queued = state.queue.count
            return counts
        }
    }

    /// Takes one audit line (with its newline). Never blocks: a full queue drops it.
    func enqueue(_ line: [UInt8]) {
        let now = clock()
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.queue.count < settings.queueRecords else {
                state.counts.dropped += 1
                return nil
            }
            state.queue.append(Entry(line: line, nanoseconds: now))
            guard state.queue.count >= settings.batchRecords else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            while await self.nextBatchDue() {
                await self.send(self.take(), retrying: true)
            }
        } onGracefulShutdown: {
            self.close()
        }
        // The server has drained: what is left goes out now, once each, within the deadline.
        let deadline = ContinuousClock.now + settings.shutdownDeadline
        while ContinuousClock.now < deadline {
            let batch = take()
            guard !batch.isEmpty else { break }
            await send(batch, retrying: false)
        }
        let left = state.withLock { state in
            defer { state.queue.removeAll() }
            state.counts.failed += state.queue.count
            return state.queue.count
        }
        if left > 0 {
            logger.warning("audit export: lines left unsent at shutdown", metadata: metadata(["lines": "\(left)"]))
        }
    }

    private func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closing = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits until a batch is full or the interval has passed; false once closing.
    private func nextBatchDue() async -> Bool {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: self.settings.interval)
                let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume()
            }
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Bool in
                    if state.closing || state.queue.count >= settings.batchRecords { return true }
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
            group.cancelAll()
        }
        return !state.withLock { $0.closing }
    }

    private func take() -> [Entry] {
        state.withLock { state in
            let count = min(state.queue.count, settings.batchRecords)
            defer { state.queue.removeFirst(count) }
            return Array(state.queue.prefix(count))
        }
    }

    private func send(_ batch: [Entry], retrying: Bool) async {
        guard !batch.isEmpty else { return }
        let body = encode(batch)
        var backoff = settings.firstBackoff
        let attempts = retrying ? settings.attempts : 1
        for attempt in 1...attempts {
            do {
                try await post(body)
                state.withLock { $0.counts.sent += batch.count }
                return
            } catch {
                if retrying, state.withLock({ $0.closing }) {
                    // Shutdown began during the retries: the batch goes back to the front of
                    // the queue, for the final posts.
                    state.withLock { $0.queue.insert(contentsOf: batch, at: 0) }
                    return
                }
                guard attempt < attempts else {
                    state.withLock { $0.counts.failed += batch.count }
                    logger.warning(
                        "audit export: batch given up",
                        metadata: metadata(["lines": "\(batch.count)", "attempts": "\(attempt)", "error": "\(error)"]))
                    return
                }
                try? await Task.sleep(for: backoff)
                backoff *= 2
            }
        }
    }

    private func post(_ body: [UInt8]) async throws(FetchFailure) {
        var headers: [(name: String, value: String)] = [
            ("content-type", "application/json"), ("user-agent", "sluice-agent/0.1"),
        ]
        for header in destination.headers { headers.append((header.name, header.value.reveal())) }
        let request = UpstreamRequest(
            method: "POST", path: destination.endpoint.basePath.isEmpty ? "/" : destination.endpoint.basePath,
            headers: headers, body: ByteBuffer(bytes: body), firstByteTimeout: .seconds(10),
            idleTimeout: .seconds(10))
        let response = try await upstream.fetch(
            request, to: origin, on: group.next(), limit: 64 << 10, subject: "the audit export destination")
        guard (200..<300).contains(response.status) else {
            throw FetchFailure(message: "the audit export destination answered \(response.status)")
        }
    }

    /// Names the destination by format and host only: a URL path or header may hold a token.
    private func metadata(_ extra: Logger.Metadata) -> Logger.Metadata {
        extra.merging(["destination": "\(destination.format.rawValue) \(destination.endpoint.host)"]) { $1 }
    }

    private func encode(_ batch: [Entry]) -> [UInt8] {
        switch destination.format {
        case .webhook: AuditExportEncoding.webhook(batch.map(\.line), identity: identity)
        case .otlp: AuditExportEncoding.otlpLogs(batch.map { ($0.line, $0.nanoseconds) }, identity: identity)
        }
    }
}

/// The bodies the exporters post: built from the audit lines' bytes, each line exactly as
/// the audit log holds it.
enum AuditExportEncoding {
    static func webhook(_ lines: [[UInt8]], identity: ServiceIdentity) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(lines.reduce(64) { $0 + $1.count + 1 })
        out += #"{"service":"#.utf8
        appendJSONString(identity.qualifiedName, to: &out)
        out += #","pod":"#.utf8
        appendJSONString(identity.pod, to: &out)
        out += #","records":["#.utf8
        for (index, line) in lines.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += trimmed(line)
        }
        out += "]}".utf8
        return out
    }

    /// OTLP/HTTP JSON (`ExportLogsServiceRequest`): the line as the body, the fields a log
    /// search filters on as attributes.
    static func otlpLogs(_ lines: [(line: [UInt8], nanoseconds: Int64)], identity: ServiceIdentity) -> [UInt8] {
        var out: [UInt8] = []
        out += #"{"resourceLogs":[{"resource":{"attributes":["#.utf8
        attribute("service.name", "sluice-agent", to: &out)
        out.append(UInt8(ascii: ","))
        attribute("service.namespace", identity.namespace, to: &out)
        out.append(UInt8(ascii: ","))
        attribute("sluice.service", identity.qualifiedName, to: &out)
        out.append(UInt8(ascii: ","))
        attribute("k8s.pod.name", identity.pod, to: &out)
        out += #"]},"scopeLogs":[{"scope":{"name":"sluice.audit"},"logRecords":["#.utf8
        for (index, entry) in lines.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            let line = trimmed(entry.line)
            let fields = try? JSONValue.parseObject(Array(line))
            let status = fields?["status"]?.intValue ?? 0
            // 5xx is an error, a refusal a warning, the rest information (OTLP severity numbers).
            let severity = status >= 500 ? (17, "ERROR") : status >= 400 ? (13, "WARN") : (9, "INFO")
            out += #"{"timeUnixNano":""#.utf8
            out += String(entry.nanoseconds).utf8
            out += #"","observedTimeUnixNano":""#.utf8
            out += String(entry.nanoseconds).utf8
            out += #"","severityNumber":\#(severity.0),"severityText":"\#(severity.1)","body":{"stringValue":"#.utf8
            appendJSONString(String(decoding: line, as: UTF8.self), to: &out)
            out += #"},"attributes":["#.utf8
            var first = true
            for name in ["request_id", "team", "project", "key_id", "alias", "upstream_model", "error", "rule"] {
                guard let value = fields?[name]?.stringValue else { continue }
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                attribute("sluice.\(name)", value, to: &out)
            }
            if !first { out.append(UInt8(ascii: ",")) }
            out += #"{"key":"http.response.status_code","value":{"intValue":"\#(status)"}}]}"#.utf8
        }
        out += "]}]}]}".utf8
        return out
    }

    private static func attribute(_ key: String, _ value: String, to out: inout [UInt8]) {
        out += #"{"key":"#.utf8
        appendJSONString(key, to: &out)
        out += #","value":{"stringValue":"#.utf8
        appendJSONString(value, to: &out)
        out += "}}".utf8
    }

    private static func trimmed(_ line: [UInt8]) -> ArraySlice<UInt8> {
        line.last == UInt8(ascii: "\n") ? line.dropLast() : line[...]
    }
}
