import Benchmark
import SluicePolicy

/// A realistic policy: 1,000 keys over 20 teams, allow and deny lists, limits on key, team,
/// service and model, and a daily budget. The allow path is what every admitted call pays.
private struct Setup {
    let engine: PolicyEngine
    let caller: Caller
    let alias: ModelAlias
    let presentedKey: String

    init() {
        let endpoint = Endpoint(scheme: .https, host: "api.example.com", port: 443, basePath: "/v1")
        let aliases = (0..<20).map { index in
            ModelAlias(name: "model-\(index)",
                       deployments: [Deployment(alias: "model-\(index)", dialect: .openAI, upstreamModel: "m\(index)", endpoint: endpoint, credential: Secret(""))],
                       price: Price(inputPicoUSDPerToken: 150_000, outputPicoUSDPerToken: 600_000), maxOutputTokens: 4096)
        }
        let pepper = Secret("benchmark-pepper-0123456789abcdef")
        let hasher = KeyHasher(pepper: pepper)
        let big = Limits(requestsPerMinute: 1_000_000_000, tokensPerMinute: 1_000_000_000, requestsPerDay: 1_000_000_000,
                         maxParallelRequests: 1_000_000, dailySpend: Cost(usd: 1_000_000), monthlySpend: Cost(usd: 5_000_000))
        let keys = (0..<1000).map { index in
            KeyPolicy(id: "key-\(index)", hash: hasher.hash("sk-sluice-benchmark-key-\(index)"), team: "team-\(index % 20)",
                      models: ModelRules(allowed: ["model-1", "model-2", "model-3"], denied: ["model-9"]), limits: big)
        }
        let teams = Dictionary(uniqueKeysWithValues: (0..<20).map { ("team-\($0)", TeamPolicy(name: "team-\($0)", models: ModelRules(denied: ["model-8"]), limits: big)) })
        let policy = Policy(version: "bench", catalog: Catalog(aliases), keys: keys, teams: teams,
                            services: ["shop/checkout": ServicePolicy(name: "shop/checkout", limits: big)],
                            onlyAllowModels: Set(aliases.map(\.name)), modelLimits: ["model-1": big], keyPepper: pepper)
        engine = try! PolicyEngine(policy: policy, serviceName: "shop/checkout", limiter: Limiter())
        presentedKey = "sk-sluice-benchmark-key-417"
        guard case .success(let caller) = engine.authenticate(presentedKey: presentedKey, now: 1_795_435_200_000_000_000),
              case .success(let alias) = engine.authorize(caller, model: "model-1") else { fatalError("setup") }
        self.caller = caller
        self.alias = alias
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
                                           maxDuration: .seconds(3), maxIterations: 1_000_000)
    let setup = Setup()
    var now: Int64 = 1_795_435_200_000_000_000

    // Rules and limits for an identified caller: authorize, reserve from key, team,
    // service and model, then settle. This is the engine's own decision cost.
    Benchmark("decision: authorize + reserve + settle (allow path)") { benchmark in
        for _ in benchmark.scaledIterations {
            now += 1000
            guard case .success(let alias) = setup.engine.authorize(setup.caller, model: "model-1"),
                  case .success(let admission) = setup.engine.admit(setup.caller, alias: alias, endUser: nil, promptTokens: 30,
                                                                   maxOutputTokens: 256, now: now) else { fatalError("denied") }
            setup.engine.settle(admission, promptTokens: 30, completionTokens: 100, now: now)
            blackHole(admission)
        }
    }

    // The same, plus identifying the caller from the presented key (HMAC-SHA256).
    Benchmark("decision: authenticate + authorize + reserve + settle (allow path)") { benchmark in
        for _ in benchmark.scaledIterations {
            now += 1000
            guard case .success(let caller) = setup.engine.authenticate(presentedKey: setup.presentedKey, now: now),
                  case .success(let alias) = setup.engine.authorize(caller, model: "model-1"),
                  case .success(let admission) = setup.engine.admit(caller, alias: alias, endUser: nil, promptTokens: 30,
                                                                   maxOutputTokens: 256, now: now) else { fatalError("denied") }
            setup.engine.settle(admission, promptTokens: 30, completionTokens: 100, now: now)
            blackHole(admission)
        }
    }

    // Prompt filters run only when one is configured; this is their cost on a short chat.
    let filtered = try! PolicyEngine(
        policy: Policy(version: "bench", catalog: setup.engine.policy.catalog,
                       services: ["shop/checkout": ServicePolicy(name: "shop/checkout", keylessAllowed: true)],
                       promptFilters: [try! PromptFilter(name: "us-ssn", pattern: #"\b\d{3}-\d{2}-\d{4}\b"#),
                                       try! PromptFilter(name: "codename", pattern: #"(?i)project\s+nightingale"#)]),
        serviceName: "shop/checkout", limiter: Limiter())
    let keyless = try! filtered.authenticate(presentedKey: nil, now: now).get()
    let texts = ["You are a helpful assistant.", "Say hello to the benchmark, and tell me a short joke about HTTP/2 flow control."]
    Benchmark("prompt filters: 2 patterns over a 2-message chat (no match)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(filtered.screen(keyless, texts: texts))
        }
    }

    Benchmark("authenticate: HMAC-SHA256 + constant-time lookup") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(setup.engine.authenticate(presentedKey: setup.presentedKey, now: now))
        }
    }
}
