import NIOConcurrencyHelpers
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where audit lines go. The agent writes JSON lines to stdout (collected by the
/// container runtime); tests capture them in memory.
public protocol AuditSink: Sendable {
    /// Writes one audit line (a JSON object, no trailing newline). Never blocks the caller for long.
    func write(_ line: [UInt8])
    /// Writes out anything held back. Called on shutdown.
    func flush()
}

extension AuditSink {
    public func flush() {}
}

/// Writes audit lines to a file descriptor (stdout by default).
///
/// Lines produced during one event-loop tick go out together in one `write(2)` at the end
/// of the tick (or at once past 64 KiB), instead of a system call per request. A line is
/// therefore held at most until the tick that produced it ends; lines from other threads
/// are written at once. The lock keeps lines from different loops from interleaving.
public final class FileDescriptorAuditSink: AuditSink {
    private let descriptor: Int32
    private let state = NIOLockedValueBox<(pending: [UInt8], flushScheduled: Bool)>(([], false))
    static let batchLimit = 64 * 1024

    public init(descriptor: Int32 = 1) {
        self.descriptor = descriptor
    }

    public func write(_ line: [UInt8]) {
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else {
            state.withLockedValue { $0.pending.append(contentsOf: line) }
            flush()
            return
        }
        let action = state.withLockedValue { state -> (flushNow: Bool, schedule: Bool) in
            state.pending.append(contentsOf: line)
            if state.pending.count >= Self.batchLimit { return (true, false) }
            if state.flushScheduled { return (false, false) }
            state.flushScheduled = true
            return (false, true)
        }
        if action.flushNow { flush() }
        if action.schedule { loop.execute { self.flush() } }
    }

    public func flush() {
        let bytes = state.withLockedValue { state -> [UInt8] in
            state.flushScheduled = false
            defer { state.pending.removeAll(keepingCapacity: true) }
            return state.pending
        }
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = systemWrite(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return  // stdout gone: nothing sensible to do from the request path
                }
                offset += written
            }
        }
    }
}

#if canImport(Glibc)
    private let systemWrite = Glibc.write
#elseif canImport(Darwin)
    private let systemWrite = Darwin.write
#endif

/// Keeps lines in memory, for tests: ``waitForLines(_:)`` is the signal that a request's
/// accounting has finished, which can lag the caller seeing its last response byte.
public final class MemoryAuditSink: AuditSink {
    private struct State {
        var lines: [String] = []
        var waiters: [(count: Int, continuation: CheckedContinuation<[String], Never>)] = []
    }
    private let state = NIOLockedValueBox(State())

    public init() {}

    public func write(_ line: [UInt8]) {
        let ready = state.withLockedValue { state -> [(CheckedContinuation<[String], Never>, [String])] in
            state.lines.append(String(decoding: line.dropLast(), as: UTF8.self))
            let lines = state.lines
            var ready: [(CheckedContinuation<[String], Never>, [String])] = []
            state.waiters.removeAll { waiter in
                guard lines.count >= waiter.count else { return false }
                ready.append((waiter.continuation, lines))
                return true
            }
            return ready
        }
        for (continuation, lines) in ready { continuation.resume(returning: lines) }
    }

    public var all: [String] { state.withLockedValue { $0.lines } }

    /// Returns once at least `count` lines have been written.
    public func waitForLines(_ count: Int) async -> [String] {
        await withCheckedContinuation { continuation in
            let lines = state.withLockedValue { state -> [String]? in
                if state.lines.count >= count { return state.lines }
                state.waiters.append((count, continuation))
                return nil
            }
            if let lines { continuation.resume(returning: lines) }
        }
    }
}
