import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SluiceWire
import Synchronization

/// Every `interval`, seals the spool into a batch and sends every waiting batch to the
/// control plane, oldest first. A batch leaves the spool only once acknowledged, so a
/// failure at any point means it is sent again, and the control plane's
/// `(agent_id, epoch, sequence)` check makes the repeat count once.
///
/// Listed before the server in the service group, so on SIGTERM it is stopped after the
/// server has drained: its last flush carries the usage of the final calls.
public final class UsageFlusher: Service {
    private let runtime: AgentRuntime
    private let spool: UsageSpool
    private let client: ControlPlaneClient
    private let interval: Duration
    private let shutdownDeadline: Duration
    private let logger: Logger
    /// The disk error last logged, so a failing disk is reported once, and its recovery too.
    private let reportedDiskError = Mutex<String?>(nil)

    public init(
        runtime: AgentRuntime, spool: UsageSpool, client: ControlPlaneClient, interval: Duration,
        shutdownDeadline: Duration = .seconds(10), logger: Logger
    ) {
        self.runtime = runtime
        self.spool = spool
        self.client = client
        self.interval = interval
        self.shutdownDeadline = shutdownDeadline
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.waitForNextCycle()
                if Task.isCancelled { break }
                await self.flushAndRenew()
            }
        }
        // The server has drained (it stops first): send what the last calls used.
        let deadline = ContinuousClock.now + shutdownDeadline
        while ContinuousClock.now < deadline {
            if await flush() {
                logger.info(
                    "usage flushed at shutdown",
                    metadata: ["acknowledged_sequence": "\(spool.health.acknowledgedSequence)"])
                return
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        logger.error(
            "usage not fully flushed at shutdown; it stays in the spool and is sent by the next start",
            metadata: ["pending_batches": "\((try? spool.pending().count) ?? -1)", "directory": "\(spool.directory)"])
    }

    /// One cycle: seal, then send until the spool is empty or a send fails. True when
    /// nothing is left to send.
    @discardableResult
    public func flush() async -> Bool {
        await send(renewingLeases: false).done
    }

    /// One cycle's calls: the pending batches, the last carrying the lease renewal, so a
    /// cycle with usage to send is one call. The renewal goes on its own when there is no
    /// batch to carry it, a send failed before the last one, or the control plane answered
    /// without leases (one older than this agent).
    func flushAndRenew() async {
        if await !send(renewingLeases: true).renewed { await renewLeases() }
    }

    private func send(renewingLeases: Bool) async -> (done: Bool, renewed: Bool) {
        defer { reportDiskState() }
        guard let status = runtime.sync, let agentID = await agentID(status) else { return (false, false) }
        let pending: [UsageSpool.PendingBatch]
        do {
            pending = try spool.seal(agentID: agentID)
        } catch {
            report(status, "cannot seal the usage spool: \(error.message)")
            return (false, false)
        }
        runtime.metrics.spoolPending(batches: pending.count)
        var renewed = false
        for (index, entry) in pending.enumerated() {
            CrashPoints.reach(.beforeSend)
            var sent = entry.batch
            if renewingLeases, index == pending.count - 1 { sent.leases = leaseRequest() }
            let body: [UInt8]
            do {
                body = Array(try WireCoding.encoder.encode(sent))
            } catch {
                report(status, "cannot encode batch \(entry.batch.sequence): \(error)")
                return (false, renewed)
            }
            let response: ControlPlaneClient.Response
            do {
                // The batches still waiting behind this one: the dashboard's spool backlog.
                // A header, so a control plane from before it ignores it.
                response = try await client.post(
                    "/v1/agent/usage", json: body,
                    headers: [("sluice-spool-backlog", String(pending.count - index - 1))], timeout: .seconds(30))
            } catch {
                report(status, "usage flush: control plane unreachable: \(error.message)")
                return (false, renewed)
            }
            guard response.status == 200,
                let ack = try? WireCoding.decoder.decode(UsageAck.self, from: Data(response.body)),
                ack.epoch == entry.batch.epoch, ack.acknowledgedSequence >= entry.batch.sequence
            else {
                let detail = String(decoding: response.body.prefix(300), as: UTF8.self)
                report(
                    status,
                    "usage flush: batch \(entry.batch.epoch)/\(entry.batch.sequence) not acknowledged (HTTP "
                        + "\(response.status)): \(detail)"
                )
                return (false, renewed)
            }
            if sent.leases != nil, let answer = ack.leases {
                runtime.metrics.leasesRenewed(answer.grants.count)
                take(answer.grants)
                renewed = true
            }
            CrashPoints.reach(.afterCommit)
            do {
                try spool.acknowledge(entry.batch)
            } catch {
                report(status, "cannot remove acknowledged batch \(entry.batch.sequence): \(error.message)")
                return (false, renewed)
            }
            runtime.metrics.batchFlushed(bytes: body.count, duplicate: ack.duplicate)
        }
        status.flushFailed(nil)
        runtime.metrics.spoolPending(batches: 0)
        return (true, renewed)
    }

    /// Waits out the flush interval, but renews leases as soon as calls reach a fleet-limited
    /// scope this agent holds no lease for (checked every 100 ms, renewed at most once a
    /// second): a new or scaled-up agent gets its share on first demand, not a flush later.
    private func waitForNextCycle() async {
        let cycleEnds = ContinuousClock.now + interval
        var lastEarlyRenewal: ContinuousClock.Instant?
        while !Task.isCancelled, ContinuousClock.now < cycleEnds {
            try? await Task.sleep(for: min(.milliseconds(100), cycleEnds - ContinuousClock.now))
            guard let leases = runtime.leases, runtime.sync?.agentID != nil,
                lastEarlyRenewal.map({ ContinuousClock.now - $0 >= .seconds(1) }) ?? true,
                leases.wantsLease(limiter: runtime.limiter, engine: runtime.activePolicy.engine, now: runtime.now())
            else { continue }
            lastEarlyRenewal = .now
            await renewLeases()
        }
    }

    /// Reports this agent's demand for fleet-wide limits and takes the shares granted;
    /// shares not renewed in time fall back to the policy's fallback.
    func renewLeases() async {
        guard runtime.leases != nil else { return }
        var grants: [LeaseGrant] = []
        if let request = leaseRequest() {
            do {
                let body = Array(try WireCoding.encoder.encode(request))
                let response = try await client.post("/v1/agent/leases", json: body, timeout: .seconds(10))
                guard response.status == 200 else {
                    throw ControlPlaneClient.Failure(
                        message:
                            "HTTP \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
                }
                grants = try WireCoding.decoder.decode(LeaseAnswer.self, from: Data(response.body)).grants
                runtime.metrics.leasesRenewed(grants.count)
            } catch {
                runtime.metrics.leaseRenewalFailed()
                logger.warning(
                    "lease renewal failed; shares not renewed fall back when they expire",
                    metadata: ["error": "\(error)"])
            }
        }
        take(grants)
    }

    /// This agent's demand for every fleet-wide limit it enforces, sampled now; nil when it
    /// has none, or no agent id yet.
    private func leaseRequest() -> LeaseRequest? {
        guard let leases = runtime.leases, runtime.sync?.agentID != nil else { return nil }
        let sampled = runtime.now()
        let sampledWindows = AgentRuntime.windows(runtime.activePolicy.configuration.policy.timeZone, sampled)
        let demands = leases.demands(limiter: runtime.limiter, engine: runtime.activePolicy.engine, now: sampled) {
            [limiter = runtime.limiter] scope in
            limiter.use(of: scope, now: sampled, dayNumber: sampledWindows.day, monthNumber: sampledWindows.month)
        }
        return demands.isEmpty ? nil : LeaseRequest(instance: spool.health.epoch, demands: demands)
    }

    /// Puts the granted shares in force; shares not granted again fall back once they expire.
    private func take(_ grants: [LeaseGrant]) {
        guard let leases = runtime.leases else { return }
        let now = runtime.now()
        let policy = runtime.activePolicy
        let windows = AgentRuntime.windows(policy.configuration.policy.timeZone, now)
        let changed = leases.update(grants, now: now, windows: windows)
        leases.apply(changed, engine: policy.engine, limiter: runtime.limiter, now: now, windows: windows)
    }

    /// The id batches are tagged with: the control plane names it in every policy answer.
    /// Before the policy poll has had one (or once it has stopped, at shutdown), a quick
    /// poll asks for it; until then usage waits on disk.
    private func agentID(_ status: SyncStatus) async -> String? {
        if let known = status.agentID { return known }
        var headers: [(name: String, value: String)] = []
        if let version = status.version { headers.append(("if-none-match", "\"v\(version)\"")) }
        guard let response = try? await client.get("/v1/agent/policy?wait=0", headers: headers, timeout: .seconds(10)),
            let id = response.header("sluice-agent-id"), !id.isEmpty
        else {
            logger.debug("usage flush waits for the control plane to name this agent")
            return nil
        }
        status.learned(agentID: id)
        return id
    }

    /// Logs when the spool starts or stops refusing writes (the metrics and /readyz show it
    /// all along).
    private func reportDiskState() {
        let health = spool.health
        let previous = reportedDiskError.withLock { reported in
            defer { reported = health.lastError }
            return reported
        }
        if let error = health.lastError, error != previous {
            logger.error(
                "usage spool cannot write to disk; usage is held in memory",
                metadata: [
                    "error": "\(error)", "held_in_memory": "\(health.heldInMemory)", "directory": "\(spool.directory)",
                    "refusing_calls": "\(spool.refusesCalls)",
                ])
        } else if health.lastError == nil, previous != nil {
            logger.notice(
                "usage spool writes to disk again; held usage written", metadata: ["directory": "\(spool.directory)"])
        }
    }

    private func report(_ status: SyncStatus, _ message: String) {
        status.flushFailed(message)
        runtime.metrics.flushFailed()
        logger.warning("\(message)")
    }
}
