import Logging
import ServiceLifecycle

/// With several replicas on PostgreSQL, the one that allocates every agent's lease grants.
///
/// Every replica runs one. Each second it tries to take the allocation lock (a session
/// advisory lock); the replica that holds it allocates every live claim each second for as
/// long as its database session lasts, and the others count the active agents for their
/// bundles. A replica that dies or loses its session frees the lock, and another takes over
/// within a second, well within a lease: agents keep enforcing their last grants meanwhile.
public final class LeaseCoordinator: Service, Sendable {
    private let store: PostgresStore
    private let book: LeaseBook
    private let interval: Duration
    private let logger: Logger

    public init(store: PostgresStore, book: LeaseBook, interval: Duration = .seconds(1), logger: Logger) {
        self.store = store
        self.book = book
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let led = try await self.store.whileLeaseLeader { session in
                        self.logger.notice("this replica allocates the fleet's lease grants")
                        while !Task.isCancelled {
                            try await self.book.allocate(session)
                            try await Task.sleep(for: self.interval)
                        }
                    }
                    if !led { try await self.book.refreshActiveAgents() }
                } catch is CancellationError {
                    return
                } catch {
                    self.logger.warning(
                        "lease allocation failed; grants already made stay until they expire",
                        metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: self.interval)
            }
        }
    }
}
