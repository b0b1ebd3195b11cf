import SluicePolicy

/// Everything the agent reads from its YAML file.
public struct AgentConfiguration: Sendable {
    /// Catalog, keys, rules and limits (an open policy when the file has no `sluice_policy`).
    public var policy: Policy
    public var settings: AgentSettings
    /// Identity fields from `sluice_identity`, used where the environment gives none.
    public var identity: IdentityOverrides
    /// Things in the file the agent ignored, to be logged once at start.
    public var warnings: [String]

    public var catalog: Catalog { policy.catalog }

    public init(
        policy: Policy, settings: AgentSettings = AgentSettings(), identity: IdentityOverrides = IdentityOverrides(),
        warnings: [String] = []
    ) {
        self.policy = policy
        self.settings = settings
        self.identity = identity
        self.warnings = warnings
    }
}

/// Identity fields a configuration file may set.
public struct IdentityOverrides: Sendable, Equatable {
    public var service: String?
    public var namespace: String?
    public var serviceAccount: String?

    public init(service: String? = nil, namespace: String? = nil, serviceAccount: String? = nil) {
        self.service = service
        self.namespace = namespace
        self.serviceAccount = serviceAccount
    }
}

/// The agent's own knobs (the `sluice_settings` section).
public struct AgentSettings: Sendable, Equatable {
    /// Request bodies above this get 413 without being read further.
    public var maxRequestBodyBytes = 10 * 1024 * 1024
    /// JSON nested deeper than this gets 400.
    public var maxJSONDepth = 64
    public var connectTimeoutSeconds = 10.0
    /// Longest wait for a provider's first byte.
    public var firstByteTimeoutSeconds = 120.0
    /// Longest silence between two chunks of a provider's answer.
    public var idleTimeoutSeconds = 120.0
    /// How long SIGTERM waits for in-flight calls before closing them.
    public var drainTimeoutSeconds = 30.0
    /// Longest time a caller connection may take to deliver a whole request, counted from
    /// accept or from the end of the previous response. Bounds slowloris-style trickling
    /// and idle keep-alive connections alike.
    public var requestReadTimeoutSeconds = 30.0
    /// Caller connections served at once; more are closed on accept.
    public var maxConnections = 4096
    /// Request headers a caller's key is read from, lower-case, first found wins:
    /// `authorization` as `Bearer <key>`, any other as the bare key (a `Bearer ` prefix is
    /// taken off too). Azure's SDKs send `api-key`, Anthropic's `x-api-key`.
    public var keyHeaders = ["authorization", "x-api-key"]
    /// Identity a mesh or gateway in front of the agent vouches for; nil: none is believed.
    public var trustedIdentity: TrustedIdentitySettings?
    /// Shared gateway mode (set by `--gateway`, not the file): no caller is served keyless,
    /// whatever the policy says of the service.
    public var refusesKeyless = false

    public init() {}
}

/// Who this agent serves, from the Kubernetes Downward API convention.
public struct ServiceIdentity: Sendable, Equatable {
    public var service: String
    public var namespace: String
    public var pod: String
    public var serviceAccount: String

    public init(service: String, namespace: String, pod: String, serviceAccount: String = "") {
        self.service = service
        self.namespace = namespace
        self.pod = pod
        self.serviceAccount = serviceAccount
    }

    /// `namespace/service`: how policy names this workload.
    public var qualifiedName: String { "\(namespace)/\(service)" }

    /// Reads `SLUICE_SERVICE`, `SLUICE_NAMESPACE`, `POD_NAME` and `SLUICE_SERVICE_ACCOUNT`
    /// (the Downward API convention); the file's `sluice_identity` fills what they leave unset.
    public static func fromEnvironment(
        _ environment: [String: String], overrides: IdentityOverrides = IdentityOverrides()
    ) -> ServiceIdentity {
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        return ServiceIdentity(
            service: value("SLUICE_SERVICE") ?? overrides.service ?? "unknown",
            namespace: value("SLUICE_NAMESPACE") ?? overrides.namespace ?? "default",
            pod: value("POD_NAME") ?? value("HOSTNAME") ?? "local",
            serviceAccount: value("SLUICE_SERVICE_ACCOUNT") ?? overrides.serviceAccount ?? "")
    }
}
