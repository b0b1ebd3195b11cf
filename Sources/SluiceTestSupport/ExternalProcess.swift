import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A helper process (nghttpd, …) started for one test and stopped by PID.
public final class ExternalProcess: Sendable {
    private let child: SpawnedChild
    public let port: Int

    /// Starts `executable` and returns once `port` on 127.0.0.1 accepts connections.
    /// `stderrPath`, when given, receives the process's standard error (created or truncated).
    public init(
        executable: String, arguments: [String], port: Int, group: any EventLoopGroup,
        environment: [String: String]? = nil, stderrPath: String? = nil
    ) async throws {
        self.port = port
        child = try SpawnedChild(
            executable: executable, arguments: arguments, environment: environment, outputPath: nil,
            errorPath: stderrPath)
        // The port opening is the readiness signal; there is no other.
        for _ in 0..<500 {
            if let channel = try? await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get() {
                try? await channel.close()
                return
            }
            if let status = child.status {
                throw TestClientError(message: "\(executable) exited with \(status)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        kill(child.pid, SIGKILL)
        throw TestClientError(message: "\(executable) did not open port \(port)")
    }

    public var isRunning: Bool { child.status == nil }

    public var processIdentifier: Int32 { child.pid }

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
        await child.waitForExit()
    }

    /// Sends `signal` (SIGHUP, …) to the process, while it runs.
    public func send(signal: Int32) {
        guard isRunning else { return }
        kill(child.pid, signal)
    }

    /// Sends SIGTERM and waits for the exit, then SIGKILL if it has not come within half a
    /// second: nghttpd (Debian 1.52) does not exit on SIGTERM or SIGINT.
    public func stop() async {
        guard isRunning else { return }
        kill(child.pid, SIGTERM)
        if await child.waitForExit(timeout: .milliseconds(500)) != nil { return }
        kill(child.pid, SIGKILL)
        _ = await child.waitForExit(timeout: .seconds(10))
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
