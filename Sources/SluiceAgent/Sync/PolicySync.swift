import Logging
import NIOCore
import ServiceLifecycle
import SluiceWire

/// Keeps the agent's policy in step with the control plane by long-polling
/// `GET /v1/agent/policy`. A new bundle is verified and compiled before it replaces the
/// one in force; one that fails any check is refused, logged and counted, and the old
/// policy stays. While the control plane is away the last policy keeps being enforced
/// (fail-static) until it is older than the maximum age.
public final class PolicySync: Service {
    private let runtime: AgentRuntime
    private let client: ControlPlaneClient
    private let source: PolicyBundleSource
    private let logger: Logger
    /// How long the control plane may hold a poll before answering 304.
    private let waitSeconds: Int
    private let retry: Backoff

    public init(
        runtime: AgentRuntime, client: ControlPlaneClient, source: PolicyBundleSource, logger: Logger,
        waitSeconds: Int = 25, retry: Backoff = Backoff(initial: .milliseconds(250), maximum: .seconds(15))
    ) {
        self.runtime = runtime
        self.client = client
        self.source = source
        self.logger = logger
        self.waitSeconds = waitSeconds
        self.retry = retry
    }

    public func run() async throws {
        guard let status = runtime.sync else { return }
        await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                // After a failure the next poll answers at once, so a control plane that
                // is back confirms the policy without waiting out a long-poll.
                let succeeded = await self.pollOnce(status: status, quick: failures > 0)
                if succeeded {
                    failures = 0
                    continue
                }
                failures += 1
                try? await Task.sleep(for: self.retry.delay(afterFailures: failures))
            }
        }
    }

    /// One long-poll. True when the control plane answered with a usable result.
    func pollOnce(status: SyncStatus, quick: Bool = false) async -> Bool {
        let current = status.version
        var headers: [(name: String, value: String)] = []
        if let current { headers.append(("if-none-match", "\"v\(current)\"")) }
        // The first answer after start comes at once: it confirms the cached policy and
        // tells the agent its id, which usage batches need.
        let wait = quick || current == nil || status.agentID == nil ? 0 : waitSeconds
        let response: ControlPlaneClient.Response
        do {
            response = try await client.get(
                "/v1/agent/policy?wait=\(wait)", headers: headers, timeout: .seconds(Int64(wait + 15)))
        } catch {
            if Task.isCancelled { return false }
            fail(status, "control plane unreachable: \(error.message)")
            return false
        }
        if let agentID = response.header("sluice-agent-id"), !agentID.isEmpty { status.learned(agentID: agentID) }
        let now = runtime.now()
        switch response.status {
        case 304:
            guard let current else {
                fail(status, "the control plane answered 304 to an agent that has no policy")
                return false
            }
            status.policyConfirmed(version: current, at: now)
            source.touch(at: now)
            return true
        case 200:
            return apply(response.body, above: current, status: status, now: now)
        default:
            let detail = String(decoding: response.body.prefix(300), as: UTF8.self)
            fail(status, "the control plane answered HTTP \(response.status): \(detail)")
            return false
        }
    }

    private func apply(_ bytes: [UInt8], above current: Int64?, status: SyncStatus, now: Int64) -> Bool {
        let accepted: PolicyBundleSource.Accepted
        do {
            accepted = try source.accept(bytes, above: current)
        } catch {
            runtime.metrics.policyRejected()
            fail(
                status,
                "bundle rejected, version \(current.map(String.init) ?? "none") stays in force: \(error.message)")
            return false
        }
        // The fallback is read by the engine the reload builds.
        runtime.leases?.setFallback(accepted.leaseFallback, activeAgents: accepted.activeAgents, now: runtime.now())
        do {
            try runtime.reload(accepted.configuration)
        } catch {
            runtime.metrics.policyRejected()
            fail(status, "bundle \(accepted.version) rejected by the engine: \(error.message)")
            return false
        }
        runtime.spool?.setFailureMode(accepted.spoolFailure, memoryCap: accepted.spoolMemoryCap)
        status.policyConfirmed(version: accepted.version, at: now)
        do {
            try source.store(accepted, confirmedAt: now)
        } catch {
            // The policy is in force; only a restart during an outage would miss it.
            logger.error("cannot cache the policy bundle", metadata: ["error": "\(error.message)"])
        }
        for warning in accepted.configuration.warnings {
            logger.warning("policy bundle: \(warning)")
        }
        logger.info(
            "policy in force",
            metadata: [
                "version": "\(accepted.version)", "from": "control plane",
                "keys": "\(accepted.configuration.policy.keys.count)",
            ])
        return true
    }

    private func fail(_ status: SyncStatus, _ message: String) {
        status.syncFailed(message, at: runtime.now())
        runtime.metrics.syncFailed()
        logger.warning("policy sync: \(message)")
    }
}

/// Exponential backoff with full jitter, so a fleet that lost its control plane does not
/// come back in lockstep.
public struct Backoff: Sendable {
    public var initial: Duration
    public var maximum: Duration

    public init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = maximum
    }

    /// A random delay in `[0, min(maximum, initial × 2^(failures − 1))]`.
    public func delay(afterFailures failures: Int) -> Duration {
        let exponent = min(max(failures - 1, 0), 20)
        let ceiling = min(maximum, initial * (1 << exponent))
        let nanoseconds = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        return .nanoseconds(Int64.random(in: (nanoseconds / 2)...max(nanoseconds / 2, nanoseconds)))
    }
}
