import SluiceWire
import Synchronization

/// Group commit for usage batches: a batch that arrives while the store's writers are all
/// busy waits for one, then goes into the store with every batch that arrived meanwhile, in
/// one transaction (``Store/apply(group:)``). With many agents flushing at once, each pays
/// a share of one transaction and the rollup cells they share are written once; while a
/// writer is free, a batch is written at once, as before. SQLite has one writer;
/// PostgreSQL several (``Store/usageWriters``), so a group never waits on a database round
/// trip that another connection could have made.
///
/// A group that fails fails every batch in it, and nothing of it is stored: each agent
/// keeps its batch in its spool and sends it again, so nothing is lost or counted twice.
public final class UsageCommitter: Sendable {
    private struct Waiting {
        var batch: UsageBatch
        var continuation: CheckedContinuation<UsageAck, any Error>
    }

    private struct State {
        var waiting: [Waiting] = []
        var writers = 0
        var groups = 0
    }

    private let store: any Store
    /// Batches per transaction at most: a group's locks and its write stay short.
    let maxGroup: Int
    private let maxWriters: Int
    private let state = Mutex(State())

    public init(store: any Store, maxGroup: Int = 256) {
        self.store = store
        self.maxGroup = maxGroup
        maxWriters = max(1, store.usageWriters)
    }

    /// Transactions written so far (each holding one or more batches).
    public var groupsWritten: Int { state.withLock { $0.groups } }

    /// Applies `batch` exactly once, with whatever other batches are waiting.
    public func apply(_ batch: UsageBatch) async throws -> UsageAck {
        // A batch the store would refuse never joins a group, so it cannot fail the others.
        try batch.validateForStore()
        return try await withCheckedThrowingContinuation { continuation in
            let leads = state.withLock { state -> Bool in
                state.waiting.append(Waiting(batch: batch, continuation: continuation))
                guard state.writers < maxWriters else { return false }
                state.writers += 1
                return true
            }
            // A batch that finds a writer free starts one; it writes until none is waiting.
            if leads { Task { await self.writeGroups() } }
        }
    }

    /// Writes groups until none is waiting.
    private func writeGroups() async {
        while true {
            let group = state.withLock { state -> [Waiting] in
                let count = min(state.waiting.count, maxGroup)
                defer { state.waiting.removeFirst(count) }
                if count == 0 { state.writers -= 1 } else { state.groups += 1 }
                return Array(state.waiting.prefix(count))
            }
            guard !group.isEmpty else { return }
            do {
                let acks = try await store.apply(group: group.map(\.batch))
                for (waiting, ack) in zip(group, acks) { waiting.continuation.resume(returning: ack) }
            } catch {
                for waiting in group { waiting.continuation.resume(throwing: error) }
            }
        }
    }
}
