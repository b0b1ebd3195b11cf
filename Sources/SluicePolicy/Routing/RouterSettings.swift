/// How an alias's deployments are chosen among.
public enum RoutingStrategy: String, Sendable, Hashable, CaseIterable {
    /// At random, in proportion to each deployment's weight.
    case simpleShuffle = "simple-shuffle"
    /// The deployment with the fewest calls in flight from this agent (ties by weight).
    case leastBusy = "least-busy"
    /// The deployment with the lowest recent time to first byte; any deployment not yet
    /// measured is tried first, so a new or recovered one gets measured.
    case latencyBased = "latency-based"

    /// Reads a strategy name as LiteLLM's `router_settings.routing_strategy` writes it.
    public init?(configName: String) {
        switch configName {
        case "simple-shuffle": self = .simpleShuffle
        case "least-busy": self = .leastBusy
        case "latency-based", "latency-based-routing": self = .latencyBased
        default: return nil
        }
    }
}

/// Retries, fallbacks and cooldowns for every alias (LiteLLM's `router_settings`).
public struct RouterSettings: Sendable, Equatable {
    public var strategy: RoutingStrategy
    /// Further attempts on the same alias after a retryable failure (429, 5xx, connect
    /// errors, timeouts), each after a backoff, before its fallbacks are tried.
    public var numRetries: Int
    /// The first backoff; each later one doubles, up to ``maxBackoffSeconds``. Each wait is
    /// drawn between half and all of that ("equal jitter"), so retries from many callers
    /// do not arrive together.
    public var retryBackoffSeconds: Double
    public var maxBackoffSeconds: Double
    /// Failures a deployment may have within a minute before it is cooled down.
    public var allowedFails: Int
    /// How long a cooled-down deployment is left out of routing.
    public var cooldownSeconds: Double
    /// Aliases tried, in order, once an alias has failed retryably and its retries are spent.
    public var fallbacks: [String: [String]]
    /// Aliases tried when the provider says the prompt does not fit the model's context.
    public var contextWindowFallbacks: [String: [String]]
    /// Aliases tried when the provider refuses the prompt under its content policy.
    public var contentPolicyFallbacks: [String: [String]]

    public init(
        strategy: RoutingStrategy = .simpleShuffle, numRetries: Int = 0, retryBackoffSeconds: Double = 0.25,
        maxBackoffSeconds: Double = 8, allowedFails: Int = 3, cooldownSeconds: Double = 5,
        fallbacks: [String: [String]] = [:], contextWindowFallbacks: [String: [String]] = [:],
        contentPolicyFallbacks: [String: [String]] = [:]
    ) {
        self.strategy = strategy
        self.numRetries = numRetries
        self.retryBackoffSeconds = retryBackoffSeconds
        self.maxBackoffSeconds = maxBackoffSeconds
        self.allowedFails = allowedFails
        self.cooldownSeconds = cooldownSeconds
        self.fallbacks = fallbacks
        self.contextWindowFallbacks = contextWindowFallbacks
        self.contentPolicyFallbacks = contentPolicyFallbacks
    }

    /// Checks the numbers, and that every fallback names an alias of `catalog` other than
    /// the one it stands in for.
    public func validate(against catalog: Catalog, at path: String = "router_settings") throws(CatalogError) {
        guard (0...10).contains(numRetries) else { throw CatalogError("\(path).num_retries must be 0 to 10") }
        guard retryBackoffSeconds >= 0, retryBackoffSeconds.isFinite, maxBackoffSeconds >= retryBackoffSeconds,
            maxBackoffSeconds <= 60
        else {
            throw CatalogError("\(path).retry_after must be 0 to 60 seconds, and no more than max_retry_backoff")
        }
        guard allowedFails >= 0 else { throw CatalogError("\(path).allowed_fails must be 0 or more") }
        guard cooldownSeconds >= 0, cooldownSeconds <= 3600 else {
            throw CatalogError("\(path).cooldown_time must be 0 to 3600 seconds")
        }
        for (name, table) in [
            ("fallbacks", fallbacks), ("context_window_fallbacks", contextWindowFallbacks),
            ("content_policy_fallbacks", contentPolicyFallbacks),
        ] {
            for (alias, targets) in table.sorted(by: { $0.key < $1.key }) {
                guard catalog.alias(named: alias) != nil else {
                    throw CatalogError("\(path).\(name): \(alias) is not a model in model_list")
                }
                for target in targets {
                    guard catalog.alias(named: target) != nil else {
                        throw CatalogError(
                            "\(path).\(name): \(alias) falls back to \(target), which is not a model in model_list")
                    }
                    guard target != alias else { throw CatalogError("\(path).\(name): \(alias) falls back to itself") }
                }
            }
        }
    }
}
