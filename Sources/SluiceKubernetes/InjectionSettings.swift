/// What the injector puts into a pod: the agent's image, where its control plane is, its
/// defaults, and the names the webhook must leave alone. Set from the chart's values (the
/// control plane's flags); the per-pod annotations in ``PodAnnotation`` override some.
public struct InjectionSettings: Sendable, Equatable {
    /// The agent's image, `registry/name:tag` or pinned by digest.
    public var image: String
    /// `Always`, `IfNotPresent` or `Never`.
    public var imagePullPolicy = "IfNotPresent"
    /// The control plane as agents reach it, e.g. `https://sluice-control.sluice.svc:8443`.
    public var controlPlaneURL: String
    /// The control plane's Ed25519 policy-signing public key, base64: agents verify every
    /// bundle with it. Public, so it travels in the pod spec (a Secret or ConfigMap in the
    /// control plane's namespace cannot be mounted into pods of other namespaces).
    public var policyPublicKey: String
    /// PEM of the CA that signed the control plane's serving certificate; nil when it chains
    /// to the system roots.
    public var controlPlaneCA: String?
    /// The agent's loopback port the app calls.
    public var agentPort = 4000
    /// The agent's admin port on the pod IP: `/healthz`, `/readyz` (kubelet probes) and
    /// `/metrics` (Prometheus).
    public var adminPort = 9464
    /// The agent's `--policy-max-age-seconds`: how long it enforces a policy the control plane
    /// has not confirmed before it answers 503.
    public var policyMaxAgeSeconds = 86_400
    /// The agent's `--flush-interval-seconds`: how often usage goes to the control plane.
    public var flushIntervalSeconds = 5
    /// The agent container's requests and limits.
    public var resources = AgentResources()
    /// Inject as a native sidecar (an init container with `restartPolicy: Always`, Kubernetes
    /// 1.29 and later): ready before the app starts, stopped after it. False appends a
    /// regular container for older clusters, which has neither guarantee.
    public var nativeSidecar = true
    /// The audience of the projected service-account token the agent presents.
    public var tokenAudience = "sluice"
    /// The projected token's lifetime; the kubelet rotates it before it ends.
    public var tokenExpirationSeconds = 3600
    /// The control plane's own namespace: never injected into.
    public var controlPlaneNamespace: String
    /// Annotations every injected pod gets (a service mesh's port exclusions). Values are
    /// comma-separated lists: a pod that already has the annotation keeps its entries and
    /// gets the missing ones appended.
    public var podAnnotations: [String: String] = [:]
    /// A Secret in the pod's namespace whose keys become the agent's environment (provider
    /// credentials such as `OPENAI_API_KEY`, named by deployments' `credential_ref`); nil
    /// gives the agent none.
    public var credentialsSecret: String?
    /// Where injected agents export audit lines and send spans: each becomes the agent's
    /// `--export-audit-webhook`, `--export-audit-otlp` or `--otlp-traces` flag, with its
    /// headers (`NAME=ENV_VAR`, the variable a key of ``credentialsSecret``).
    public var auditWebhook: AgentExport?
    public var auditOTLP: AgentExport?
    public var traces: AgentExport?
    /// The share of calls traced when a caller sends no `traceparent`.
    public var traceSampleRatio: Double?

    /// Settings with the defaults above for everything but what has none.
    public init(image: String, controlPlaneURL: String, policyPublicKey: String, controlPlaneNamespace: String) {
        self.image = image
        self.controlPlaneURL = controlPlaneURL
        self.policyPublicKey = policyPublicKey
        self.controlPlaneNamespace = controlPlaneNamespace
    }
}

/// The agent container's requests and limits, as Kubernetes quantities; nil leaves one unset.
public struct AgentResources: Sendable, Equatable {
    /// CPU requested for the agent.
    public var cpuRequest: String? = "20m"
    /// Memory requested for the agent.
    public var memoryRequest: String? = "24Mi"
    /// CPU limit; unset by default, so a busy agent is not throttled.
    public var cpuLimit: String?
    /// Memory limit.
    public var memoryLimit: String? = "96Mi"

    /// The defaults.
    public init() {}

    /// Whether `text` is a Kubernetes quantity (`250m`, `0.5`, `64Mi`, `1G`).
    public static func isQuantity(_ text: String) -> Bool {
        let suffixes = ["", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
        let number = text.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        guard !number.isEmpty, number.count <= 18, number.filter({ $0 == "." }).count <= 1,
            number.first != ".", number.last != "."
        else { return false }
        return suffixes.contains(String(text.dropFirst(number.count)))
    }
}

/// The annotations the injector reads on a pod.
public enum PodAnnotation {
    /// `"true"` asks for the agent; `"false"` opts a pod out of a labelled namespace.
    public static let inject = "sluice.dev/inject"
    /// The service the agent serves; else the `app.kubernetes.io/name` label, else the owner's name.
    public static let service = "sluice.dev/service"
    /// Comma-separated container names that do not get the `*_BASE_URL` variables.
    public static let skipEnvContainers = "sluice.dev/skip-env-containers"
    /// Set by the injector on the pods it injected: a second pass leaves them unchanged.
    public static let status = "sluice.dev/status"
    /// Overrides ``AgentResources/cpuRequest`` for the pod (a Kubernetes quantity).
    public static let cpuRequest = "sluice.dev/agent-cpu-request"
    /// Overrides ``AgentResources/memoryRequest`` for the pod.
    public static let memoryRequest = "sluice.dev/agent-memory-request"
    /// Overrides ``AgentResources/cpuLimit`` for the pod.
    public static let cpuLimit = "sluice.dev/agent-cpu-limit"
    /// Overrides ``AgentResources/memoryLimit`` for the pod.
    public static let memoryLimit = "sluice.dev/agent-memory-limit"
    /// Overrides ``InjectionSettings/policyMaxAgeSeconds`` (60 to 2,592,000).
    public static let policyMaxAge = "sluice.dev/policy-max-age-seconds"
    /// Overrides ``InjectionSettings/flushIntervalSeconds`` (1 to 300).
    public static let flushInterval = "sluice.dev/flush-interval-seconds"
}

/// One export destination of injected agents: a URL and headers as `NAME=ENV_VAR`.
public struct AgentExport: Sendable, Equatable {
    public var url: String
    public var headers: [String]

    public init(url: String, headers: [String] = []) {
        self.url = url
        self.headers = headers
    }
}
