import SluiceAPI
import SluicePolicy

/// The policy in force and what is derived from it. Replaced whole on reload, so a request
/// sees one consistent policy from admission to settlement.
public final class ActivePolicy: Sendable {
    public let configuration: AgentConfiguration
    public let engine: PolicyEngine
    /// Every provider credential, for scrubbing provider answers.
    let scrubber: CredentialScrubber
    /// Wall-clock nanoseconds when it was loaded.
    public let loadedAt: Int64

    /// Compiles `configuration`'s policy for `identity`, sharing `limiter` with the policy it
    /// replaces so that a reload never refills a bucket.
    /// `localLimits` gives this agent's share of fleet-wide limits (control-plane mode).
    public init(
        configuration: AgentConfiguration, identity: ServiceIdentity, limiter: Limiter, loadedAt: Int64,
        localLimits: (Scope, Limits) -> Limits = { $1 }
    ) throws(PolicyError) {
        self.configuration = configuration
        engine = try PolicyEngine(
            policy: configuration.policy, serviceName: identity.qualifiedName, limiter: limiter,
            localLimits: localLimits)
        let catalog = configuration.catalog
        scrubber = CredentialScrubber(
            secrets: catalog.names.flatMap { name in
                catalog.alias(named: name)!.deployments.map { $0.credential.reveal() }
            } + [configuration.policy.keyPepper?.reveal()].compactMap { $0 })
        self.loadedAt = loadedAt
    }

    public var version: String { configuration.policy.version }
}
