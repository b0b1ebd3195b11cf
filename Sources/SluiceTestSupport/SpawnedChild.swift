import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with posix_spawn, its exit observed by a thread blocked in
/// `waitpid` on its PID alone.
///
/// Not Foundation's `Process`: on Linux it learns of a child's exit through a socket its
/// run-loop thread watches with `select(2)`, which cannot watch a descriptor numbered 1024 or
/// more. The parallel suite has well over a thousand sockets open at times; then an exit goes
/// unseen and the test waiting for it hangs.
final class SpawnedChild: Sendable {
    let pid: pid_t
    private let exit = Mutex(ExitState())

    private struct ExitState: ~Copyable {
        var status: Int32?
        var waiters: [UInt64: CheckedContinuation<Int32?, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    /// Starts `executable`. Standard input is /dev/null; standard output and error go to the
    /// files named (created or truncated; the same path for both shares one file), else to
    /// /dev/null. Nothing else the test process has open is inherited.
    init(
        executable: String, arguments: [String], environment: [String: String]?, outputPath: String?,
        errorPath: String?
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if let errorPath, errorPath == outputPath {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        guard closeFrom(3, in: &actions) else { throw TestClientError(message: "posix_spawn cannot close descriptors") }
        let all = [executable] + arguments
        var cArguments = all.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var cEnvironment = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { for pointer in cEnvironment ?? [] { free(pointer) } }
        var pid: pid_t = 0
        let spawned: Int32
        if cEnvironment != nil {
            spawned = posix_spawn(&pid, executable, &actions, nil, &cArguments, &cEnvironment!)
        } else {
            spawned = posix_spawn(&pid, executable, &actions, nil, &cArguments, environ)
        }
        guard spawned == 0 else { throw TestClientError(message: "cannot start \(executable): error \(spawned)") }
        self.pid = pid
        let child = pid
        Thread { [self] in
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0, errno == EINTR {}
            // As Foundation reports it: the exit code, or the signal that ended the process.
            let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : status & 0x7f
            let waiters = self.exit.withLock { state -> [CheckedContinuation<Int32?, Never>] in
                state.status = code
                defer { state.waiters.removeAll() }
                return Array(state.waiters.values)
            }
            for waiter in waiters { waiter.resume(returning: code) }
        }.start()
    }

    /// The exit status once the process has exited (and been reaped), else nil.
    var status: Int32? { exit.withLock { $0.status } }

    /// Returns the exit status once the process has exited (-1 if the waiting task is
    /// cancelled first).
    func waitForExit() async -> Int32 {
        await exitOrCancellation() ?? -1
    }

    /// The exit status if the process exits within `timeout`, else nil (it keeps running).
    func waitForExit(timeout: Duration) async -> Int32? {
        await withTaskGroup(of: Int32?.self) { group in
            group.addTask { await self.exitOrCancellation() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// The exit status once the process exits, or nil as soon as the task is cancelled.
    private func exitOrCancellation() async -> Int32? {
        let id = exit.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
                let immediate = exit.withLock { state -> Int32?? in
                    if let status = state.status { return .some(status) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            exit.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later; Swift's Glibc module
/// does not declare it): closes every descriptor from `lowest` up in the child.
func closeFrom(_ lowest: Int32, in actions: inout posix_spawn_file_actions_t) -> Bool {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
    else { return false }
    return unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, lowest) == 0
}
