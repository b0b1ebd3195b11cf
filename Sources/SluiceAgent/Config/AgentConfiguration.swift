import SluicePolicy

/// Everything the agent reads from its YAML file.
public struct AgentConfiguration: Sendable {
    public var catalog: Catalog
    public var settings: AgentSettings
    /// Things in the file the agent ignored, to be logged once at start.
    public var warnings: [String]

    public init(catalog: Catalog, settings: AgentSettings = AgentSettings(), warnings: [String] = []) {
        self.catalog = catalog
        self.settings = settings
        self.warnings = warnings
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

    /// Reads `SLUICE_SERVICE`, `SLUICE_NAMESPACE`, `POD_NAME` and `SLUICE_SERVICE_ACCOUNT`.
    public static func fromEnvironment(_ environment: [String: String]) -> ServiceIdentity {
        ServiceIdentity(
            service: environment["SLUICE_SERVICE"] ?? "unknown",
            namespace: environment["SLUICE_NAMESPACE"] ?? "default",
            pod: environment["POD_NAME"] ?? environment["HOSTNAME"] ?? "local",
            serviceAccount: environment["SLUICE_SERVICE_ACCOUNT"] ?? "")
    }
}
