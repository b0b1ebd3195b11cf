/// A test fixture that owns servers, processes or event loops and must be shut down.
public protocol ScopedHarness: AnyObject {
    /// Stops whatever still runs. Must be safe to call more than once.
    func shutdown() async throws
}

extension ScopedHarness {
    /// Runs `body` with the harness `start` makes and shuts it down afterwards, also when
    /// `body` throws (a failing `#require` included), so a test leaks nothing.
    public static func with(
        starting start: () async throws -> Self, _ body: (Self) async throws -> Void
    ) async throws {
        let harness = try await start()
        do {
            try await body(harness)
        } catch {
            try? await harness.shutdown()
            throw error
        }
        try await harness.shutdown()
    }
}
