import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A real PostgreSQL server for the tests that need one: its own cluster in a temporary
/// directory, listening on 127.0.0.1 on a free port, started once per test process and
/// stopped when the process exits. Each caller gets a fresh database.
///
/// The server binaries come from Debian's `postgresql` package, which `scripts/test.sh`
/// installs. PostgreSQL refuses to run as root, so as root the cluster belongs to the
/// `postgres` user the package creates.
public final class TemporaryPostgres: Sendable {
    public let port: Int
    public let directory: String
    private let binaries: String
    private let runAs: String?
    private let databases = Atomic<Int>(0)

    private static let shared = Mutex<TemporaryPostgres?>(nil)
    private static let registry = Registry()

    /// Starts the server once; concurrent callers wait for the same start by suspending,
    /// never by blocking a thread of the (small) cooperative pool, which the PostgreSQL
    /// client's own tasks need in order to run.
    private actor Registry {
        private var starting: Task<TemporaryPostgres, any Error>?

        func server() async throws -> TemporaryPostgres {
            if let starting { return try await starting.value }
            let task = Task { try await offPool { try TemporaryPostgres() } }
            starting = task
            let server = try await task.value
            TemporaryPostgres.shared.withLock { $0 = server }
            atexit { TemporaryPostgres.shared.withLock { $0?.stop() } }
            return server
        }
    }

    /// The process-wide server, started on first use.
    public static func server() async throws -> TemporaryPostgres {
        try await registry.server()
    }

    private init() throws {
        guard
            let bin = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql"))?.sorted().last
                .map({ "/usr/lib/postgresql/\($0)/bin" }), FileManager.default.isExecutableFile(atPath: "\(bin)/initdb")
        else {
            throw TestClientError(
                message: "PostgreSQL is not installed: run scripts/test.sh, which installs Debian's postgresql package")
        }
        binaries = bin
        runAs = getuid() == 0 ? "postgres" : nil
        directory = NSTemporaryDirectory() + "sluice-pg-\(UInt32.random(in: .min ... .max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if let runAs {
            guard let user = getpwnam(runAs) else {
                throw TestClientError(message: "no \(runAs) user to run PostgreSQL as")
            }
            chown(directory, user.pointee.pw_uid, user.pointee.pw_gid)
        }
        try Self.run(
            "\(binaries)/initdb",
            ["-D", "\(directory)/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            runAs: runAs, directory: directory)
        // The port is drawn below the kernel's ephemeral range (32768 and up), so it can
        // never be the "free port" another test just obtained by binding port 0.
        var chosen = 0
        for _ in 0..<10 {
            let candidate = Int.random(in: 20_000..<30_000)
            guard Self.isFree(candidate) else { continue }
            do {
                try Self.run(
                    "\(binaries)/pg_ctl",
                    [
                        "-D", "\(directory)/data", "-l", "\(directory)/server.log", "-w", "-t", "60", "start", "-o",
                        "-p \(candidate) -c listen_addresses=127.0.0.1 -k \(directory)"
                            + " -c fsync=off -c max_connections=200",
                    ],
                    runAs: runAs, directory: directory)
                chosen = candidate
                break
            } catch {
                continue  // taken between the check and the start: draw again
            }
        }
        guard chosen > 0 else {
            throw TestClientError(message: "PostgreSQL could not start on a free port; see \(directory)/server.log")
        }
        port = chosen
    }

    /// A new, empty database, and its name.
    public func createDatabase() async throws -> String {
        let name = "sluice_test_\(databases.add(1, ordering: .relaxed).newValue)"
        try await offPool {
            try self.run(
                "\(self.binaries)/createdb", ["-h", "127.0.0.1", "-p", String(self.port), "-U", "postgres", name])
        }
        return name
    }

    /// Runs `sql` in database `name` through psql, for tests that shape a database the way
    /// an older release left it.
    public func execute(_ sql: String, in name: String) async throws {
        try await offPool {
            try self.run(
                "/usr/bin/psql",
                [
                    "-h", "127.0.0.1", "-p", String(self.port), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql,
                    name,
                ])
        }
    }

    /// Database `name`'s size on disk in bytes (`pg_database_size`), for the benchmarks. It
    /// reads the shared command log, so it must not run beside another command of this server.
    public func databaseBytes(_ name: String) async throws -> Int64 {
        try await offPool {
            try self.run(
                "/usr/bin/psql",
                [
                    "-h", "127.0.0.1", "-p", String(self.port), "-U", "postgres", "-At", "-c",
                    "SELECT pg_database_size('\(name)')", "postgres",
                ])
            let text = try String(contentsOfFile: "\(self.directory)/command.log", encoding: .utf8)
            guard let bytes = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw TestClientError(message: "psql answered: \(text.prefix(200))")
            }
            return bytes
        }
    }

    func stop() {
        try? run("\(binaries)/pg_ctl", ["-D", "\(directory)/data", "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs a command to completion with posix_spawn and waitpid: deterministic, and free of
    /// the run-loop and pipe pitfalls of Foundation's Process with a daemonising child.
    /// Output goes to a file, not a pipe: the server pg_ctl starts would hold a pipe open.
    private func run(_ executable: String, _ arguments: [String]) throws {
        try Self.run(executable, arguments, runAs: runAs, directory: directory)
    }

    private static func run(_ executable: String, _ arguments: [String], runAs: String?, directory: String) throws {
        let argv = runAs.map { ["/usr/sbin/runuser", "-u", $0, "--", executable] } ?? [executable]
        let outputPath = "\(directory)/command.log"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else the test process has open may leak into the server, which outlives the
        // test that started it: an inherited listening socket would keep another test's port
        // bound, and an inherited end of the socket pair Foundation's Process watches a child
        // by would hide that child's exit (a CLI test would wait forever). Closing them in the
        // child, rather than marking them close-on-exec here, leaves no window in which
        // another thread opens one.
        guard closeFrom(3, in: &actions) else { throw TestClientError(message: "posix_spawn cannot close descriptors") }
        let all = argv + arguments
        var cArguments = all.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, all[0], &actions, nil, &cArguments, environ)
        guard spawned == 0 else { throw TestClientError(message: "cannot start \(all[0]): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let exited = (status & 0x7f) == 0
        let code = (status >> 8) & 0xff
        guard exited, code == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw TestClientError(
                message: "\(URL(fileURLWithPath: executable).lastPathComponent) failed: \(text.suffix(500))")
        }
    }

    private static func isFree(_ port: Int) -> Bool {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socketFD) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, length) }
        } == 0
    }
}

/// Runs blocking work (spawning and waiting for a command) on its own thread, suspending
/// the caller meanwhile.
private func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}
