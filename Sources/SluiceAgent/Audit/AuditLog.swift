#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers

/// Where audit lines go. The agent writes JSON lines to stdout (collected by the
/// container runtime); tests capture them in memory.
public protocol AuditSink: Sendable {
    func write(_ line: [UInt8])
}

/// Writes each line to a file descriptor with one `write(2)`, under a lock so lines from
/// different event loops never interleave.
public final class FileDescriptorAuditSink: AuditSink {
    private let descriptor: Int32
    private let lock = NIOLock()

    public init(descriptor: Int32 = 1) {
        self.descriptor = descriptor
    }

    public func write(_ line: [UInt8]) {
        lock.withLock {
            line.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return  // stdout gone: nothing sensible to do from the request path
                    }
                    offset += written
                }
            }
        }
    }
}

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
