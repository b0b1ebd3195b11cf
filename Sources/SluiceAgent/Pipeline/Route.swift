import SluiceHTTP2
import SluicePolicy
import Synchronization

/// Step 5 (route): the agent's one ``DeploymentBoard``, behind a lock. Every connection
/// chooses deployments from it and reports back how each attempt went, so in-flight
/// counts, latencies, cooldowns and `rpm`/`tpm` caps are this agent's, across all callers.
final class DeploymentRouter: Sendable {
    private let board = Mutex(DeploymentBoard())

    func choose(
        from alias: ModelAlias, settings: RouterSettings, tried: Set<DeploymentKey>, estimatedTokens: Int,
        now: Int64
    ) -> DeploymentBoard.Choice {
        // The random draw (a getrandom(2) call here) happens only when there is a tie to break.
        board.withLock {
            $0.choose(
                from: alias, strategy: settings.strategy, tried: tried, estimatedTokens: estimatedTokens, now: now,
                roll: Double.random(in: 0..<1))
        }
    }

    func finished(
        _ deployment: Deployment, timeToFirstByteSeconds: Double?, tokensUsed: Int?, estimatedTokens: Int,
        failure: AttemptFailure?, settings: RouterSettings, now: Int64
    ) {
        board.withLock {
            $0.finished(
                deployment, timeToFirstByteSeconds: timeToFirstByteSeconds, tokensUsed: tokensUsed,
                estimatedTokens: estimatedTokens, failure: failure, settings: settings, now: now)
        }
    }

    /// Every deployment's state, for the metrics page.
    var states: [DeploymentKey: DeploymentBoard.State] { board.withLock { $0.states } }

    static func origin(of deployment: Deployment) -> UpstreamOrigin {
        let endpoint = deployment.endpoint
        return UpstreamOrigin(
            scheme: endpoint.scheme == .https ? .https : .http, host: endpoint.host, port: endpoint.port,
            trustRoots: deployment.caFile.map { .caFile($0) } ?? .system)
    }
}
