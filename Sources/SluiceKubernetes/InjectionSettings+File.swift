import SluiceAPI
import SluicePolicy

extension InjectionSettings {
    /// The injection configuration file as the chart renders it (JSON, snake_case), read
    /// strictly: an unknown field, a wrong type or a value out of range is an error naming
    /// the field. The policy public key is not in it (the control plane fills in its own);
    /// `control_plane_ca_file` is returned for the caller to read.
    public static func parse(_ bytes: [UInt8]) throws(KubernetesConfigError) -> (
        settings: InjectionSettings, caFile: String?
    ) {
        let root = try StrictFields.object(bytes, naming: "the injection configuration")
        let fields = try StrictFields(root, at: "", known: topLevelFields)
        guard let image = try fields.string("image"), !image.isEmpty else {
            throw KubernetesConfigError("image: missing field")
        }
        guard let url = try fields.string("control_plane_url"),
            url.hasPrefix("https://") || url.hasPrefix("http://")
        else {
            throw KubernetesConfigError("control_plane_url: missing, or not an http:// or https:// URL")
        }
        guard let namespace = try fields.string("namespace"), Identifier.isDNSLabel(namespace) else {
            throw KubernetesConfigError("namespace: missing, or not a DNS label (the control plane's own namespace)")
        }
        var settings = InjectionSettings(
            image: image, controlPlaneURL: url, policyPublicKey: "", controlPlaneNamespace: namespace)
        if let policy = try fields.string("image_pull_policy") {
            guard ["Always", "IfNotPresent", "Never"].contains(policy) else {
                throw KubernetesConfigError("image_pull_policy: must be Always, IfNotPresent or Never")
            }
            settings.imagePullPolicy = policy
        }
        settings.agentPort = try fields.int("agent_port", in: 1...65535) ?? settings.agentPort
        settings.adminPort = try fields.int("admin_port", in: 1...65535) ?? settings.adminPort
        guard settings.agentPort != settings.adminPort else {
            throw KubernetesConfigError("admin_port: must differ from agent_port")
        }
        settings.policyMaxAgeSeconds =
            try fields.int("policy_max_age_seconds", in: 60...2_592_000) ?? settings.policyMaxAgeSeconds
        settings.flushIntervalSeconds =
            try fields.int("flush_interval_seconds", in: 1...300) ?? settings.flushIntervalSeconds
        settings.nativeSidecar = try fields.bool("native_sidecar") ?? settings.nativeSidecar
        settings.tokenAudience = try fields.string("token_audience") ?? settings.tokenAudience
        settings.tokenExpirationSeconds =
            try fields.int("token_expiration_seconds", in: 600...86_400) ?? settings.tokenExpirationSeconds
        if let resources = fields.value("resources") {
            let limits = try StrictFields(resources, at: "resources.", known: resourceFields)
            for (name, keyPath) in [
                ("cpu_request", \AgentResources.cpuRequest), ("memory_request", \.memoryRequest),
                ("cpu_limit", \.cpuLimit), ("memory_limit", \.memoryLimit),
            ] {
                guard let value = limits.value(name) else { continue }
                if case .null = value {
                    settings.resources[keyPath: keyPath] = nil
                    continue
                }
                guard let text = value.stringValue, AgentResources.isQuantity(text) else {
                    throw KubernetesConfigError("resources.\(name): not a Kubernetes quantity (e.g. 50m, 64Mi)")
                }
                settings.resources[keyPath: keyPath] = text
            }
        }
        if fields.value("credentials_secret") != .null, let secret = try fields.string("credentials_secret") {
            guard ClusterBootstrapSettings.isObjectName(secret) else {
                throw KubernetesConfigError("credentials_secret: \(Identifier.quoted(secret)) is not a Secret name")
            }
            settings.credentialsSecret = secret
        }
        if let annotations = fields.value("pod_annotations") {
            guard let members = annotations.objectValue else {
                throw KubernetesConfigError("pod_annotations: not an object")
            }
            for (name, value) in members {
                guard let text = value.stringValue, Self.isAnnotationName(name), !text.isEmpty, text.utf8.count <= 1024
                else {
                    throw KubernetesConfigError(
                        "pod_annotations.\(Identifier.quoted(name)): expected a prefixed annotation name and a "
                            + "non-empty string value")
                }
                settings.podAnnotations[name] = text
            }
        }
        if let exports = fields.value("exports") {
            let destinations = try StrictFields(
                exports, at: "exports.", known: ["audit_webhook", "audit_otlp", "traces"])
            settings.auditWebhook = try export(destinations.value("audit_webhook"), at: "exports.audit_webhook.")
            settings.auditOTLP = try export(destinations.value("audit_otlp"), at: "exports.audit_otlp.")
            settings.traces = try export(destinations.value("traces"), at: "exports.traces.", traces: true)
            if let ratio = destinations.value("traces")?["sample_ratio"] {
                guard case .number(let text) = ratio, let number = Double(text), (0...1).contains(number) else {
                    throw KubernetesConfigError("exports.traces.sample_ratio: expected a number from 0 to 1")
                }
                settings.traceSampleRatio = number
            }
        }
        return (settings, try fields.string("control_plane_ca_file"))
    }

    /// One export destination: `url` (http or https, no query) and `headers` (`NAME=ENV_VAR`).
    private static func export(
        _ value: JSONValue?, at path: String, traces: Bool = false
    ) throws(KubernetesConfigError) -> AgentExport? {
        guard let value, value != .null else { return nil }
        let fields = try StrictFields(
            value, at: path, known: ["url", "headers"] + (traces ? ["sample_ratio"] : []))
        guard let url = try fields.string("url") else { throw KubernetesConfigError("\(path)url: missing field") }
        do {
            _ = try Endpoint(parsing: url, field: "\(path)url")
        } catch {
            throw KubernetesConfigError(error.message)
        }
        var headers: [String] = []
        if let list = fields.value("headers") {
            guard let items = list.arrayValue else { throw KubernetesConfigError("\(path)headers: not a list") }
            for item in items {
                let parts = item.stringValue?.split(separator: "=", maxSplits: 1) ?? []
                guard parts.count == 2, isHeaderName(parts[0]), isVariableName(parts[1]) else {
                    throw KubernetesConfigError(
                        "\(path)headers: each entry is NAME=ENV_VAR, the variable a key of credentials_secret")
                }
                headers.append(item.stringValue ?? "")
            }
        }
        return AgentExport(url: url, headers: headers)
    }

    private static func isHeaderName(_ name: Substring) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy {
                (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2D
            }
    }

    private static func isVariableName(_ name: Substring) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first), name.utf8.count <= 128 else { return false }
        return name.utf8.allSatisfy {
            (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x5F
        }
    }

    static let topLevelFields = [
        "image", "image_pull_policy", "control_plane_url", "control_plane_ca_file", "namespace", "agent_port",
        "admin_port", "policy_max_age_seconds", "flush_interval_seconds", "native_sidecar", "token_audience",
        "token_expiration_seconds", "resources", "pod_annotations", "credentials_secret", "exports",
    ]

    /// `prefix/name`: a DNS subdomain, then 1 to 63 of letters, digits, `-`, `_`, `.`.
    static func isAnnotationName(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, ClusterBootstrapSettings.isObjectName(String(parts[0])) else { return false }
        let name = parts[1].utf8
        return (1...63).contains(name.count)
            && name.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
            }
    }
    static let resourceFields = ["cpu_request", "memory_request", "cpu_limit", "memory_limit"]

}
