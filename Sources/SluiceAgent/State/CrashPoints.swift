import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A test mode for the fault tests: when `SLUICE_TEST_CRASH_AT` names a point of the flush
/// cycle, the process kills itself with SIGKILL the `SLUICE_TEST_CRASH_AFTER`-th time (1
/// when unset) it gets there. SIGKILL, like `kill -9`, runs no cleanup at all. Unset (the
/// only state outside tests), reaching a point costs one atomic load.
public enum CrashPoints {
    private static let armed = Atomic<Bool>(false)
    private static let plan = Mutex<(point: UsageSpool.CrashPoint, remaining: Int)?>(nil)

    /// Reads the test variables; an unknown point name is an error, not a silent no-op.
    public static func configure(environment: [String: String]) throws(ConfigError) {
        guard let name = environment["SLUICE_TEST_CRASH_AT"], !name.isEmpty else { return }
        guard let point = UsageSpool.CrashPoint(rawValue: name) else {
            throw ConfigError(
                "SLUICE_TEST_CRASH_AT must be one of "
                    + UsageSpool.CrashPoint.allCases.map(\.rawValue).joined(separator: ", ")
            )
        }
        let after = Int(environment["SLUICE_TEST_CRASH_AFTER"] ?? "1") ?? 1
        plan.withLock { $0 = (point, max(1, after)) }
        armed.store(true, ordering: .releasing)
    }

    static func reach(_ point: UsageSpool.CrashPoint) {
        guard armed.load(ordering: .acquiring) else { return }
        let fire = plan.withLock { plan -> Bool in
            guard var current = plan, current.point == point else { return false }
            current.remaining -= 1
            plan = current
            return current.remaining == 0
        }
        if fire { kill(getpid(), SIGKILL) }
    }
}
