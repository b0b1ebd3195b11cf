import SluicePolicy

/// Builders for engine tests: a catalog of three priced aliases and keys with known plaintext.
enum Fixture {
    static let pepper = Secret("test-pepper-0123456789abcdef")
    static let hasher = KeyHasher(pepper: pepper)
    static let service = "shop/checkout"
    /// 2026-11-23T12:00:00Z in nanoseconds.
    static let noon: Int64 = 1_795_435_200 * 1_000_000_000

    static func catalog(unpriced: [String] = []) -> Catalog {
        let endpoint = Endpoint(scheme: .https, host: "api.example.com", port: 443, basePath: "/v1")
        return Catalog(
            (["a", "b", "c"] + unpriced).map { name in
                ModelAlias(
                    name: name,
                    deployments: [
                        Deployment(
                            alias: name, dialect: .openAI, upstreamModel: name, endpoint: endpoint,
                            credential: Secret(""))
                    ],
                    price: unpriced.contains(name)
                        ? nil : Price(inputPicoUSDPerToken: 1_000_000, outputPicoUSDPerToken: 2_000_000),
                    maxOutputTokens: 1000)
            })
    }

    static func key(
        _ id: String, team: String = "ml", project: String? = nil, models: ModelRules = .any, limits: Limits = .none,
        expiresAt: Int64? = nil, revoked: Bool = false
    ) -> KeyPolicy {
        KeyPolicy(
            id: id, hash: hasher.hash(plaintext(id)), team: team, project: project, expiresAt: expiresAt,
            revoked: revoked,
            models: models, limits: limits)
    }

    static func plaintext(_ id: String) -> String { "sk-sluice-test-\(id)-000000000000000000" }

    static func policy(
        keys: [KeyPolicy] = [key("k1")], teams: [TeamPolicy] = [TeamPolicy(name: "ml")],
        projects: [ProjectPolicy] = [], service: ServicePolicy = ServicePolicy(name: service),
        configure: (inout Policy) -> Void = { _ in }
    ) -> Policy {
        var policy = Policy(
            version: "test", catalog: catalog(), keys: keys,
            teams: Dictionary(uniqueKeysWithValues: teams.map { ($0.name, $0) }),
            projects: Dictionary(uniqueKeysWithValues: projects.map { ($0.name, $0) }),
            services: [service.name: service], keyPepper: pepper)
        configure(&policy)
        return policy
    }

    static func engine(_ policy: Policy, limiter: Limiter = Limiter()) throws -> PolicyEngine {
        try PolicyEngine(policy: policy, serviceName: service, limiter: limiter)
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }

    var successValue: Success? {
        if case .success(let success) = self { return success }
        return nil
    }
}
