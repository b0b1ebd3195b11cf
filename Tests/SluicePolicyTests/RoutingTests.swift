import SluicePolicy
import Testing

extension DeploymentBoard {
    /// An attempt on `deployment` failed with `failure` at `now`.
    mutating func failed(_ deployment: Deployment, _ failure: AttemptFailure, settings: RouterSettings, now: Int64) {
        finished(
            deployment, timeToFirstByteSeconds: nil, tokensUsed: nil, estimatedTokens: 0, failure: failure,
            settings: settings, now: now)
    }

    /// An attempt on `deployment` (one estimated token, one used) got its first byte after `timeToFirstByteSeconds`.
    mutating func succeeded(_ deployment: Deployment, timeToFirstByteSeconds: Double) {
        finished(
            deployment, timeToFirstByteSeconds: timeToFirstByteSeconds, tokensUsed: 1, estimatedTokens: 1, failure: nil,
            settings: RouterSettings(), now: 0)
    }
}

@Suite("Routing: choosing deployments, retries, fallbacks, cooldowns and caps")
struct RoutingTests {
    static let second: Int64 = 1_000_000_000

    static func deployment(_ name: String, weight: Int = 1, rpm: Int? = nil, tpm: Int? = nil, alias: String = "chat")
        -> Deployment
    {
        Deployment(
            alias: alias, dialect: .openAI, upstreamModel: name,
            endpoint: Endpoint(scheme: .https, host: "\(name).example", port: 443, basePath: "/v1"),
            credential: Secret(""),
            weight: weight, requestsPerMinute: rpm, tokensPerMinute: tpm)
    }

    static func alias(_ deployments: [Deployment], name: String = "chat") -> ModelAlias {
        ModelAlias(name: name, deployments: deployments, price: nil)
    }

    func chosen(_ choice: DeploymentBoard.Choice) -> String? {
        if case .chosen(let deployment) = choice { return deployment.upstreamModel }
        return nil
    }

    // MARK: - Strategies

    @Test("simple-shuffle picks by weight")
    func shuffleByWeight() {
        var board = DeploymentBoard()
        let alias = Self.alias([Self.deployment("a", weight: 1), Self.deployment("b", weight: 3)])
        #expect(
            chosen(board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 10, now: 0, roll: 0.2)) == "a")
        #expect(
            chosen(board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 10, now: 0, roll: 0.3)) == "b")
        #expect(
            chosen(board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 10, now: 0, roll: 0.99)) == "b")
    }

    @Test("a deployment's key follows its alias, provider, address and model, and nothing else")
    func deploymentKey() {
        let a = Self.deployment("a")
        var moved = a
        #expect(moved.key == a.key && moved.key.hashValue == a.key.hashValue)
        moved.weight = 7
        moved.credential = Secret("sk-other")
        #expect(moved.key == a.key)  // health and load carry over a change of weight or key
        let changes: [(inout Deployment) -> Void] = [
            { $0.alias = "other" }, { $0.dialect = .anthropic }, { $0.upstreamModel = "b" },
            { $0.endpoint = Endpoint(scheme: .https, host: "a.example", port: 8443, basePath: "/v1") },
        ]
        for change in changes.indices {
            var changed = a
            changes[change](&changed)
            #expect(changed.key != a.key)
            // The same fields set afresh make the same key as the one kept in step.
            let fresh = Deployment(
                alias: changed.alias, dialect: changed.dialect, upstreamModel: changed.upstreamModel,
                endpoint: changed.endpoint, credential: Secret(""))
            #expect(fresh.key == changed.key && fresh.key.hashValue == changed.key.hashValue)
        }
        var board = DeploymentBoard()
        _ = board.choose(from: Self.alias([a]), strategy: .simpleShuffle, estimatedTokens: 1, now: 0, roll: 0)
        #expect(board.states[moved.key]?.inFlight == 1)
    }

    @Test("least-busy picks the deployment with the fewest calls in flight")
    func leastBusy() {
        var board = DeploymentBoard()
        let a = Self.deployment("a")
        let b = Self.deployment("b")
        let alias = Self.alias([a, b])
        // Two calls start on a (roll picks a among the tied), so b is least busy next.
        #expect(chosen(board.choose(from: alias, strategy: .leastBusy, estimatedTokens: 1, now: 0, roll: 0)) == "a")
        #expect(chosen(board.choose(from: alias, strategy: .leastBusy, estimatedTokens: 1, now: 0, roll: 0)) == "b")
        #expect(chosen(board.choose(from: alias, strategy: .leastBusy, estimatedTokens: 1, now: 0, roll: 0.9)) == "b")
        #expect(board.states[b.key]?.inFlight == 2)
        board.succeeded(b, timeToFirstByteSeconds: 0.1)
        board.succeeded(b, timeToFirstByteSeconds: 0.1)
        #expect(chosen(board.choose(from: alias, strategy: .leastBusy, estimatedTokens: 1, now: 0, roll: 0.9)) == "b")
    }

    @Test("latency-based measures every deployment first, then prefers the fastest; a failure counts as slow")
    func latencyBased() {
        var board = DeploymentBoard()
        let a = Self.deployment("a")
        let b = Self.deployment("b")
        let alias = Self.alias([a, b])
        let settings = RouterSettings()
        #expect(chosen(board.choose(from: alias, strategy: .latencyBased, estimatedTokens: 1, now: 0, roll: 0)) == "a")
        board.succeeded(a, timeToFirstByteSeconds: 0.5)
        // b is not yet measured, so it goes next even though a has a figure.
        #expect(chosen(board.choose(from: alias, strategy: .latencyBased, estimatedTokens: 1, now: 0, roll: 0)) == "b")
        board.succeeded(b, timeToFirstByteSeconds: 0.1)
        for _ in 0..<5 {
            #expect(
                chosen(board.choose(from: alias, strategy: .latencyBased, estimatedTokens: 1, now: 0, roll: 0)) == "b")
            board.succeeded(b, timeToFirstByteSeconds: 0.1)
        }
        board.failed(b, .timeout, settings: settings, now: 0)
        #expect(chosen(board.choose(from: alias, strategy: .latencyBased, estimatedTokens: 1, now: 0, roll: 0)) == "a")
    }

    // MARK: - Cooldowns

    @Test("more than allowed_fails failures within a minute cool a deployment down for cooldown_time")
    func cooldown() {
        var board = DeploymentBoard()
        let a = Self.deployment("a")
        let b = Self.deployment("b")
        let alias = Self.alias([a, b])
        let settings = RouterSettings(allowedFails: 2, cooldownSeconds: 30)
        for _ in 0..<2 { board.failed(a, .serverError(status: 500), settings: settings, now: 0) }
        #expect(!board.isCoolingDown(a, now: 0))
        board.failed(a, .connect, settings: settings, now: Self.second)
        #expect(board.isCoolingDown(a, now: Self.second))
        for _ in 0..<10 {
            #expect(
                chosen(
                    board.choose(
                        from: alias, strategy: .simpleShuffle, estimatedTokens: 1, now: 2 * Self.second, roll: 0))
                    == "b")
        }
        #expect(!board.isCoolingDown(a, now: 31 * Self.second))
        #expect(
            chosen(
                board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 1, now: 31 * Self.second, roll: 0))
                == "a")
    }

    @Test("failures spread beyond a minute do not add up; a request's own fault never counts")
    func failuresAge() {
        var board = DeploymentBoard()
        let a = Self.deployment("a")
        let settings = RouterSettings(allowedFails: 1, cooldownSeconds: 30)
        board.failed(a, .serverError(status: 502), settings: settings, now: 0)
        board.failed(a, .serverError(status: 502), settings: settings, now: 61 * Self.second)
        #expect(!board.isCoolingDown(a, now: 61 * Self.second))
        for _ in 0..<5 { board.failed(a, .rejected(status: 400), settings: settings, now: 62 * Self.second) }
        board.failed(a, .contextWindowExceeded, settings: settings, now: 62 * Self.second)
        #expect(!board.isCoolingDown(a, now: 62 * Self.second))
    }

    @Test("a 429 cools the deployment at once; the only deployment of an alias is never left out")
    func rateLimitCoolsAtOnce() {
        var board = DeploymentBoard()
        let a = Self.deployment("a")
        let b = Self.deployment("b")
        let settings = RouterSettings(allowedFails: 5, cooldownSeconds: 10)
        board.failed(a, .rateLimited(retryAfterSeconds: nil), settings: settings, now: 0)
        #expect(board.isCoolingDown(a, now: 0))
        #expect(
            chosen(
                board.choose(from: Self.alias([a, b]), strategy: .simpleShuffle, estimatedTokens: 1, now: 0, roll: 0))
                == "b")
        #expect(
            chosen(board.choose(from: Self.alias([a]), strategy: .simpleShuffle, estimatedTokens: 1, now: 0, roll: 0))
                == "a")
    }

    @Test("all deployments cooling: unavailable, with the time until the first returns")
    func allCooling() {
        var board = DeploymentBoard()
        let a = Self.deployment("a")
        let b = Self.deployment("b")
        let settings = RouterSettings(allowedFails: 0, cooldownSeconds: 10)
        board.failed(a, .connect, settings: settings, now: 0)
        board.failed(b, .connect, settings: settings, now: 4 * Self.second)
        let choice = board.choose(
            from: Self.alias([a, b]), strategy: .simpleShuffle, estimatedTokens: 1, now: 5 * Self.second, roll: 0)
        #expect(choice == .unavailable(.init(coolingDown: 2, atCap: 0, retryAfterSeconds: 5)))
    }

    // MARK: - Caps

    @Test("a deployment's rpm cap is enforced, refilling over the minute; the next deployment takes the overflow")
    func rpmCap() {
        var board = DeploymentBoard()
        let a = Self.deployment("a", rpm: 2)
        let b = Self.deployment("b", rpm: 1)
        let alias = Self.alias([a, b])
        #expect(chosen(board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 1, now: 0, roll: 0)) == "a")
        #expect(chosen(board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 1, now: 0, roll: 0)) == "a")
        #expect(chosen(board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 1, now: 0, roll: 0)) == "b")
        // Both full: a has one request back after 30 s.
        #expect(
            board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 1, now: 0, roll: 0)
                == .unavailable(.init(coolingDown: 0, atCap: 2, retryAfterSeconds: 30)))
        #expect(
            chosen(
                board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 1, now: 30 * Self.second, roll: 0))
                == "a")
    }

    @Test("a deployment's tpm cap counts the estimate at the start and the real tokens at the end")
    func tpmCap() {
        var board = DeploymentBoard()
        let a = Self.deployment("a", tpm: 1000)
        let alias = Self.alias([a])
        let settings = RouterSettings()
        #expect(
            chosen(board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 100, now: 0, roll: 0)) == "a")
        // The call really used 950 tokens: 50 left, short of the next call's 100.
        board.finished(
            a, timeToFirstByteSeconds: 0.1, tokensUsed: 950, estimatedTokens: 100, failure: nil, settings: settings,
            now: 0)
        #expect(
            board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 100, now: 0, roll: 0)
                == .unavailable(.init(coolingDown: 0, atCap: 1, retryAfterSeconds: 3)))
        #expect(
            chosen(
                board.choose(from: alias, strategy: .simpleShuffle, estimatedTokens: 100, now: 3 * Self.second, roll: 0)
            ) == "a")
        // A call bigger than the whole cap waits for a full bucket rather than never running.
        #expect(
            chosen(
                board.choose(
                    from: alias, strategy: .simpleShuffle, estimatedTokens: 5000, now: 66 * Self.second, roll: 0))
                == "a")
    }

    @Test("a retry goes to a deployment not yet tried when there is one")
    func retryAvoidsTried() {
        var board = DeploymentBoard()
        let a = Self.deployment("a", weight: 100)
        let b = Self.deployment("b")
        let alias = Self.alias([a, b])
        #expect(
            chosen(
                board.choose(
                    from: alias, strategy: .simpleShuffle, tried: [a.key], estimatedTokens: 1, now: 0,
                    roll: 0)) == "b")
        #expect(
            chosen(
                board.choose(
                    from: Self.alias([a]), strategy: .simpleShuffle, tried: [a.key], estimatedTokens: 1,
                    now: 0, roll: 0)) == "a")
    }

    // MARK: - Plans

    @Test("retryable failures use num_retries with exponential backoff and jitter, then the fallbacks in order")
    func retriesThenFallbacks() {
        let settings = RouterSettings(
            numRetries: 2, retryBackoffSeconds: 0.5, maxBackoffSeconds: 8,
            fallbacks: ["gpt": ["claude", "gemini"]])
        var plan = RoutePlan(alias: "gpt", settings: settings)
        #expect(plan.next(after: .serverError(status: 503), roll: 0) == .retry(alias: "gpt", delaySeconds: 0.25))
        #expect(plan.next(after: .connect, roll: 1) == .retry(alias: "gpt", delaySeconds: 1.0))
        #expect(plan.next(after: .timeout, roll: 0) == .fallback(alias: "claude"))
        #expect(plan.next(after: .serverError(status: 529), roll: 0.5) == .retry(alias: "claude", delaySeconds: 0.375))
        #expect(plan.next(after: .serverError(status: 529), roll: 0) == .retry(alias: "claude", delaySeconds: 0.5))
        #expect(plan.next(after: .serverError(status: 529), roll: 0) == .fallback(alias: "gemini"))
        #expect(plan.next(after: .rejected(status: 400), roll: 0) == .giveUp)
        #expect(plan.visited == ["gpt", "claude", "gemini"])
    }

    @Test("the backoff is capped, and waits out a provider's Retry-After when that is within the cap")
    func backoffBounds() {
        var plan = RoutePlan(
            alias: "gpt", settings: RouterSettings(numRetries: 10, retryBackoffSeconds: 1, maxBackoffSeconds: 4))
        #expect(plan.next(after: .rateLimited(retryAfterSeconds: 3), roll: 0) == .retry(alias: "gpt", delaySeconds: 3))
        #expect(plan.next(after: .rateLimited(retryAfterSeconds: 60), roll: 0) == .retry(alias: "gpt", delaySeconds: 4))
        for _ in 0..<6 {
            guard case .retry(_, let delay) = plan.next(after: .serverError(status: 500), roll: 1) else {
                Issue.record("no retry")
                return
            }
            #expect(delay <= 4)
        }
    }

    @Test(
        "caller faults are never retried or rerouted; context-window and content-policy refusals have own fallbacks"
    )
    func categories() {
        let settings = RouterSettings(
            numRetries: 3, fallbacks: ["gpt": ["claude"]], contextWindowFallbacks: ["gpt": ["gpt-long"]],
            contentPolicyFallbacks: ["gpt": ["local"]])
        var plan = RoutePlan(alias: "gpt", settings: settings)
        #expect(plan.next(after: .rejected(status: 422), roll: 0) == .giveUp)
        plan = RoutePlan(alias: "gpt", settings: settings)
        #expect(plan.next(after: .contextWindowExceeded, roll: 0) == .fallback(alias: "gpt-long"))
        plan = RoutePlan(alias: "gpt", settings: settings)
        #expect(plan.next(after: .contentPolicy, roll: 0) == .fallback(alias: "local"))
        plan = RoutePlan(alias: "gpt", settings: settings)
        #expect(plan.next(after: .deploymentRefused(status: 401), roll: 0) == .fallback(alias: "claude"))
        #expect(plan.next(after: .deploymentRefused(status: 401), roll: 0) == .giveUp)
        // Without a configured fallback, a retryable failure ends once retries are spent.
        plan = RoutePlan(alias: "other", settings: settings)
        for _ in 0..<3 { _ = plan.next(after: .connect, roll: 0) }
        #expect(plan.next(after: .connect, roll: 0) == .giveUp)
        // An alias with nothing available goes to its fallbacks at once.
        plan = RoutePlan(alias: "gpt", settings: settings)
        #expect(plan.nextWhenUnavailable() == .fallback(alias: "claude"))
        #expect(plan.nextWhenUnavailable() == .giveUp)
    }

    @Test("router settings refuse unknown aliases, self-fallbacks and out-of-range numbers")
    func validation() throws {
        let catalog = Catalog([
            Self.alias([Self.deployment("a")], name: "gpt"),
            Self.alias([Self.deployment("b", alias: "claude")], name: "claude"),
        ])
        try RouterSettings(fallbacks: ["gpt": ["claude"]]).validate(against: catalog)
        #expect(throws: CatalogError.self) {
            try RouterSettings(fallbacks: ["gpt": ["nope"]]).validate(against: catalog)
        }
        #expect(throws: CatalogError.self) {
            try RouterSettings(fallbacks: ["gpt": ["gpt"]]).validate(against: catalog)
        }
        #expect(throws: CatalogError.self) {
            try RouterSettings(contextWindowFallbacks: ["nope": ["gpt"]]).validate(against: catalog)
        }
        #expect(throws: CatalogError.self) { try RouterSettings(numRetries: 11).validate(against: catalog) }
        #expect(throws: CatalogError.self) { try RouterSettings(cooldownSeconds: -1).validate(against: catalog) }
        #expect(RoutingStrategy(configName: "latency-based-routing") == .latencyBased)
        #expect(RoutingStrategy(configName: "usage-based-routing") == nil)
    }
}
