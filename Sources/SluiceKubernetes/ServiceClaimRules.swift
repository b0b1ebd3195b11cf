import SluicePolicy

/// Which services an agent authenticated as a service account may claim. The namespace is
/// always the token's, so a pod can never claim a service of another namespace; these rules
/// decide which names inside its own namespace it may take. A namespace without a rule (and
/// no `*` rule) claims nothing.
public struct ServiceClaimRules: Sendable, Equatable {
    public enum Rule: Sendable, Equatable {
        /// The claimed name must be a Deployment in the token's namespace (asked of the API
        /// server): the name the injector derives for a Deployment's pods.
        case deployment
        /// The claimed name must equal the service account's name: one account per workload.
        case serviceAccountName
        /// Each service account may claim the listed names (`*`: any name).
        case serviceAccounts([String: [String]])
    }

    /// Rule per namespace; `*` applies to every namespace not listed.
    public var rules: [String: Rule]

    public init(rules: [String: Rule]) { self.rules = rules }

    /// What must hold for `identity` to serve `service`.
    public enum Decision: Sendable, Equatable {
        case allowed
        /// Allowed if a Deployment of this name exists in this namespace.
        case needsDeployment(namespace: String, name: String)
        case refused(TokenRefusal)
    }

    /// Decides a claim: `service` is the bare name the agent sent in `Sluice-Service`.
    public func decide(service: String?, for identity: ServiceAccountIdentity) -> Decision {
        guard let service, !service.isEmpty else {
            return .refused(
                TokenRefusal("no_service_claimed", "a service-account agent must send Sluice-Service: <service name>"))
        }
        guard Identifier.isDNSLabel(service) else {
            return .refused(TokenRefusal("invalid_service", "the claimed service is not a DNS label"))
        }
        guard let rule = rules[identity.namespace] ?? rules["*"] else {
            return .refused(
                TokenRefusal(
                    "no_claim_rule", "no service-claim rule covers namespace \(identity.namespace)"))
        }
        let refusal = Decision.refused(
            TokenRefusal(
                "service_not_allowed",
                "service account \(identity.namespace)/\(identity.serviceAccount) may not claim service \(service)"))
        switch rule {
        case .deployment:
            return .needsDeployment(namespace: identity.namespace, name: service)
        case .serviceAccountName:
            return service == identity.serviceAccount ? .allowed : refusal
        case .serviceAccounts(let allowed):
            let names = allowed[identity.serviceAccount] ?? []
            return names.contains("*") || names.contains(service) ? .allowed : refusal
        }
    }
}
