import SluiceWire
import Synchronization

/// What this replica has heard from each agent lately: the policy version it holds, its
/// last usage batch and the batches waiting behind it in its spool, and the shares its last
/// lease renewal was granted. In memory, per replica: an agent talks to one replica at a
/// time, so after a move the new replica knows it from its next call. Bounded: past
/// ``capacity`` agents, the one heard from longest ago is forgotten.
public final class AgentActivity: Sendable {
    /// One agent, as last heard from.
    public struct Seen: Sendable, Equatable {
        public var service: String?
        /// The version its last policy request held (If-None-Match) or was sent.
        public var policyVersion: Int64?
        /// Unix seconds of that request.
        public var policyAt: Int64?
        /// Unix seconds of its last usage batch, and that batch's sequence.
        public var usageAt: Int64?
        public var sequence: Int64?
        /// Batches its spool still held behind the last one (the `Sluice-Spool-Backlog` header).
        public var spoolBacklog: Int?
        /// Its last renewal's grants, and when.
        public var grants: [LeaseGrant] = []
        public var leasedAt: Int64?

        var lastHeard: Int64 { max(policyAt ?? 0, usageAt ?? 0, leasedAt ?? 0) }
    }

    let capacity: Int
    private let agents = Mutex<[String: Seen]>([:])

    public init(capacity: Int = 20_000) {
        self.capacity = capacity
    }

    func policyRequested(agentID: String, service: String?, version: Int64, now: Int64) {
        update(agentID, now: now) { seen in
            seen.service = service ?? seen.service
            seen.policyVersion = version
            seen.policyAt = now
        }
    }

    func usageArrived(agentID: String, sequence: Int64, backlog: Int?, now: Int64) {
        update(agentID, now: now) { seen in
            seen.usageAt = now
            seen.sequence = sequence
            seen.spoolBacklog = backlog
        }
    }

    func leased(agentID: String, grants: [LeaseGrant], now: Int64) {
        update(agentID, now: now) { seen in
            seen.grants = grants
            seen.leasedAt = now
        }
    }

    /// Every agent heard from, by id.
    public func snapshot() -> [String: Seen] { agents.withLock { $0 } }

    private func update(_ agentID: String, now: Int64, _ change: (inout Seen) -> Void) {
        agents.withLock { agents in
            change(&agents[agentID, default: Seen()])
            if agents.count > capacity, let oldest = agents.min(by: { $0.value.lastHeard < $1.value.lastHeard })?.key {
                agents[oldest] = nil
            }
        }
    }
}
