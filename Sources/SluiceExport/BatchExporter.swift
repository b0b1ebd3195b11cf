import Logging
import NIOCore
import ServiceLifecycle
import SluiceHTTP2
import SluicePolicy
import Synchronization

/// One record to export: a JSON object's bytes (a trailing newline is ignored) and when it
/// was handed over. A record may be handed over unbuilt, as a closure the exporter runs
/// when it encodes the batch, so what makes records pays only for handing one over.
public struct ExportRecord: Sendable {
    private enum Content: Sendable {
        case bytes([UInt8])
        case deferred(@Sendable () -> [UInt8])
    }

    private var content: Content
    public var nanoseconds: Int64

    public init(line: [UInt8], nanoseconds: Int64) {
        content = .bytes(line)
        self.nanoseconds = nanoseconds
    }

    init(building: @escaping @Sendable () -> [UInt8], nanoseconds: Int64) {
        content = .deferred(building)
        self.nanoseconds = nanoseconds
    }

    /// The record's bytes (built now when it was handed over unbuilt).
    public var line: [UInt8] {
        switch content {
        case .bytes(let bytes): bytes
        case .deferred(let build): build()
        }
    }

    /// The record with its bytes built, so encoding reads them as often as it likes.
    func built() -> ExportRecord {
        guard case .deferred = content else { return self }
        return ExportRecord(line: line, nanoseconds: nanoseconds)
    }
}

/// Sends records to one destination in batches, off the path that makes them: a bounded
/// queue (past it, records are dropped and counted, never waited for), one post per batch,
/// retried with backoff. Run as a service, it sends what is left at shutdown, once each,
/// within a deadline; list it before the services that make records, so it stops after them.
///
/// Delivery is at least once: a post whose answer is lost is sent again, so receivers
/// should drop repeats by the records' own ids.
public final class BatchExporter: Service, Sendable {
    /// What became of the records handed over so far.
    public struct Counts: Sendable, Equatable {
        public var sent = 0
        /// Refused at the door: the queue was full.
        public var dropped = 0
        /// Given up after every retry failed.
        public var failed = 0
        public var queued = 0
    }

    private struct State {
        var queue: [ExportRecord] = []
        var counts = Counts()
        var waiter: CheckedContinuation<Void, Never>?
        /// The interval passed (or the wait was cancelled) before the wait could see it.
        var due = false
        var closing = false
    }

    public let destination: ExportDestination
    private let settings: ExportSettings
    /// What is exported, for logs (`audit`, `usage`).
    private let subject: String
    private let encode: @Sendable ([ExportRecord]) -> [UInt8]
    private let upstream: UpstreamClient
    private let group: any EventLoopGroup
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    private let origin: UpstreamOrigin
    private let state = Mutex(State())

    /// - Parameters:
    ///   - encode: a batch's body for this destination's format.
    ///   - clock: wall-clock nanoseconds, stamped on each record handed over.
    public init(
        destination: ExportDestination, settings: ExportSettings, subject: String, upstream: UpstreamClient,
        group: any EventLoopGroup, logger: Logger, clock: @escaping @Sendable () -> Int64,
        encode: @escaping @Sendable ([ExportRecord]) -> [UInt8]
    ) {
        self.destination = destination
        self.settings = settings
        self.subject = subject
        self.encode = encode
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

    /// Takes one record. Never blocks: a full queue drops it.
    public func enqueue(_ line: [UInt8]) {
        enqueue(record: ExportRecord(line: line, nanoseconds: clock()))
    }

    /// Takes one record to be built by `building` when its batch is encoded, off the
    /// caller's thread. Never blocks: a full queue drops it unbuilt.
    public func enqueue(building: @escaping @Sendable () -> [UInt8]) {
        enqueue(record: ExportRecord(building: building, nanoseconds: clock()))
    }

    private func enqueue(record: ExportRecord) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.queue.count < settings.queueRecords else {
                state.counts.dropped += 1
                return nil
            }
            state.queue.append(record)
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
        // Whatever made records has stopped: what is left goes out now, once each, within the deadline.
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
            logger.warning("export: records left unsent at shutdown", metadata: metadata(["records": "\(left)"]))
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

    /// Ends the current wait: the interval passed, or the task was cancelled. `due` stays set
    /// until the wait has seen it, so a timer that fires before the wait begins is not lost.
    private func wake() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.due = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits until a batch is full or the interval has passed; false once closing or cancelled.
    private func nextBatchDue() async -> Bool {
        guard !Task.isCancelled else { return false }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: self.settings.interval)
                self.wake()
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let ready = state.withLock { state -> Bool in
                        if state.closing || state.due || state.queue.count >= settings.batchRecords { return true }
                        state.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                self.wake()
            }
            group.cancelAll()
        }
        // The timer child has finished by now, so clearing `due` cannot race it.
        return !state.withLock { state in
            state.due = false
            return state.closing
        } && !Task.isCancelled
    }

    private func take() -> [ExportRecord] {
        state.withLock { state in
            let count = min(state.queue.count, settings.batchRecords)
            defer { state.queue.removeFirst(count) }
            return Array(state.queue.prefix(count))
        }
    }

    private func send(_ batch: [ExportRecord], retrying: Bool) async {
        guard !batch.isEmpty else { return }
        let body = encode(batch.map { $0.built() })
        let outcome = await retryWithBackoff(
            attempts: retrying ? settings.attempts : 1, firstBackoff: settings.firstBackoff,
            stop: { retrying && state.withLock { $0.closing } }
        ) {
            try await post(body)
        }
        switch outcome {
        case .succeeded:
            state.withLock { $0.counts.sent += batch.count }
        case .stopped:
            // Shutdown began during the retries: the batch goes back to the front of the
            // queue, for the final posts.
            state.withLock { $0.queue.insert(contentsOf: batch, at: 0) }
        case .gaveUp(let attempts, let error):
            state.withLock { $0.counts.failed += batch.count }
            logger.warning(
                "export: batch given up",
                metadata: metadata(["records": "\(batch.count)", "attempts": "\(attempts)", "error": "\(error)"]))
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
            request, to: origin, on: group.next(), limit: 64 << 10, subject: "the \(subject) export destination")
        guard (200..<300).contains(response.status) else {
            throw FetchFailure(message: "the \(subject) export destination answered \(response.status)")
        }
    }

    /// Names the destination by format and host only: a URL path or header may hold a token.
    private func metadata(_ extra: Logger.Metadata) -> Logger.Metadata {
        extra.merging([
            "export": "\(subject)", "destination": "\(destination.format.rawValue) \(destination.endpoint.host)",
        ]) { $1 }
    }
}

