import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A helper process (nghttpd, …) started for one test and stopped by PID.
public final class ExternalProcess: @unchecked Sendable {
    // Set once at start; Process itself is thread-safe for terminate/waitUntilExit.
    private let process = Process()
    public let port: Int
    /// Set by Foundation's termination handler: the exit is a signal, not a poll.
    private let exit = ExitState()

    /// Starts `executable` and returns once `port` on 127.0.0.1 accepts connections.
    /// `stderrPath`, when given, receives the process's standard error (created or truncated).
    public init(
        executable: String, arguments: [String], port: Int, group: any EventLoopGroup,
        environment: [String: String]? = nil, stderrPath: String? = nil
    ) async throws {
        self.port = port
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = FileHandle.nullDevice
        if let stderrPath {
            _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: stderrPath)
        } else {
            process.standardError = FileHandle.nullDevice
        }
        let exit = self.exit
        process.terminationHandler = { finished in
            let status = finished.terminationStatus
            let waiters = exit.state.withLock { state -> [CheckedContinuation<Int32, Never>] in
                state.status = status
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }
        try process.run()
        // The port opening is the readiness signal; there is no other.
        for _ in 0..<500 {
            if let channel = try? await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get() {
                try? await channel.close()
                return
            }
            guard process.isRunning else {
                throw TestClientError(message: "\(executable) exited with \(process.terminationStatus)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        process.terminate()
        throw TestClientError(message: "\(executable) did not open port \(port)")
    }

    public var isRunning: Bool { process.isRunning }

    public var processIdentifier: Int32 { process.processIdentifier }

    /// CPU time used so far (user and system) and resident memory now, from `/proc`: what
    /// the benchmarks report of a process they started. Zeros once it has exited.
    public var usage: (cpuSeconds: Double, residentBytes: Int) {
        guard let stat = try? String(contentsOfFile: "/proc/\(processIdentifier)/stat", encoding: .utf8) else {
            return (0, 0)
        }
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        // utime, stime and rss are fields 14, 15 and 24; after the ")" they are the 12th, 13th and 22nd.
        guard fields.count > 21, let user = Double(fields[11]), let system = Double(fields[12]),
            let pages = Int(fields[21])
        else { return (0, 0) }
        return ((user + system) / Double(sysconf(Int32(_SC_CLK_TCK))), pages * Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    /// Returns the exit status (or the signal that ended it) once the process has exited.
    public func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = exit.state.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Sends `signal` (SIGHUP, …) to the process.
    public func send(signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Sends SIGTERM and waits (briefly) for the exit. `waitUntilExit` needs a run loop,
    /// which async tests do not have, so the exit is observed by polling.
    public func stop() async {
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<50 where process.isRunning {
            try? await Task.sleep(for: .milliseconds(10))
        }
        // nghttpd (Debian 1.52) does not exit on SIGTERM or SIGINT.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for _ in 0..<300 where process.isRunning {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// A port that was free a moment ago, for a process that binds it itself.
    ///
    /// It is drawn below the kernel's ephemeral range (32768 and up): a port obtained by
    /// binding port 0 and releasing it can be handed straight to another test's listener or
    /// outgoing connection before the process gets to bind it; these ports never are.
    public static func freePort(group: any EventLoopGroup) async throws -> Int {
        for _ in 0..<50 {
            let candidate = Int.random(in: 10_000..<20_000)
            if let channel = try? await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: candidate).get() {
                try await channel.close()
                return candidate
            }
        }
        throw TestClientError(message: "no free port found between 10000 and 20000")
    }

    /// A port that refuses connections for as long as the returned socket is kept: bound,
    /// never listening, so no other test can take it either.
    public static func refusingPort() throws -> (port: Int, close: @Sendable () -> Void) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else {
            close(descriptor)
            throw TestClientError(message: "cannot bind a refusing port")
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return (Int(UInt16(bigEndian: address.sin_port)), { close(descriptor) })
    }

    /// The first of `candidates` that exists.
    public static func find(_ candidates: [String]) -> String? {
        candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

private final class ExitState: Sendable {
    let state = Mutex<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))
}
