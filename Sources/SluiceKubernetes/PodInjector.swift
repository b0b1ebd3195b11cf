import Foundation
import SluiceAPI
import SluicePolicy

/// What the injector decided for one pod.
public struct Injection: Sendable, Equatable {
    /// The changes to make; empty when the pod is admitted unchanged.
    public var patch: [JSONPatchOperation]
    /// Shown to whoever created the pod (`kubectl` prints them) and logged.
    public var warnings: [String]
    /// Why the pod is left unchanged; nil when it is injected.
    public var skipped: String?
    /// The service the agent serves, when injected.
    public var service: String?
}

/// Decides whether a pod gets the agent and builds the patch that adds it. Pure: the pod
/// as JSON and the settings in, a JSON Patch and warnings out.
///
/// A pod that asked for the agent but cannot have it is never refused: it is admitted
/// unchanged with a warning saying why, so a mistake in an annotation (or here) costs the
/// pod its agent, never its start.
public enum PodInjector {
    /// The injected container's name; a pod that has one is already injected.
    public static let containerName = "sluice-agent"
    static let stateVolume = "sluice-state"
    static let tokenVolume = "sluice-token"
    static let stateMount = "/var/lib/sluice"
    static let tokenMount = "/var/run/secrets/sluice"
    /// The agent's user and group: a fixed unprivileged id, as distroless images use.
    static let agentUser = 65532

    /// - Parameters:
    ///   - pod: the Pod object from the AdmissionReview.
    ///   - namespace: the request's namespace (a pod being created may not carry one yet).
    ///   - namespaceOptedIn: the namespace is labelled `sluice.dev/inject: "true"` (the
    ///     webhook entry that matched says so).
    public static func inject(
        pod: JSONValue, namespace: String, namespaceOptedIn: Bool, settings: InjectionSettings
    ) -> Injection {
        let metadata = pod["metadata"]
        let annotations = Self.strings(metadata?["annotations"])
        let spec = pod["spec"]
        let containers = spec?["containers"]?.arrayValue ?? []
        let initContainers = spec?["initContainers"]?.arrayValue ?? []
        let asked = annotations[PodAnnotation.inject]

        func skip(_ why: String, warn: Bool) -> Injection {
            Injection(patch: [], warnings: warn ? ["sluice: agent not injected: \(why)"] : [], skipped: why)
        }
        if annotations[PodAnnotation.status] == "injected"
            || (containers + initContainers).contains(where: { $0["name"]?.stringValue == containerName })
        {
            return skip("already injected", warn: false)
        }
        let wanted = asked == "true" || (namespaceOptedIn && asked != "false")
        if namespace == "kube-system" || namespace == settings.controlPlaneNamespace {
            return skip("pods in namespace \(namespace) are never injected", warn: wanted)
        }
        var warnings: [String] = []
        if let asked, asked != "true", asked != "false" {
            // Only "true" and "false" mean something; anything else is a typo worth naming.
            let problem = "\(PodAnnotation.inject) is \"\(asked)\"; use \"true\" or \"false\""
            guard namespaceOptedIn else { return skip(problem, warn: true) }
            warnings.append("sluice: \(problem) (injected: the namespace asks for it)")
        }
        guard wanted else { return skip("not asked for", warn: false) }
        if spec?["hostNetwork"]?.boolValue == true {
            return skip(
                "the pod uses the host's network, where the agent's loopback port would be shared with the node",
                warn: true)
        }
        let volumes = spec?["volumes"]?.arrayValue ?? []
        for name in [stateVolume, tokenVolume] where volumes.contains(where: { $0["name"]?.stringValue == name }) {
            return skip("the pod already has a volume named \(name)", warn: true)
        }
        let service: String
        switch serviceName(pod: pod, annotations: annotations) {
        case .success(let name): service = name
        case .failure(let problem): return skip(problem.message, warn: true)
        }

        let overrides = Overrides(annotations: annotations, settings: settings, warnings: &warnings)
        var patch: [JSONPatchOperation] = []
        let agent = agentContainer(service: service, settings: settings, overrides: overrides)
        if settings.nativeSidecar {
            patch.append(
                initContainers.isEmpty && spec?["initContainers"] == nil
                    ? JSONPatchOperation(path: "/spec/initContainers", value: .array([agent]))
                    : JSONPatchOperation(path: "/spec/initContainers/0", value: agent))
        } else {
            patch.append(JSONPatchOperation(path: "/spec/containers/-", value: agent))
        }
        let newVolumes = agentVolumes(settings: settings)
        if spec?["volumes"] == nil {
            patch.append(JSONPatchOperation(path: "/spec/volumes", value: .array(newVolumes)))
        } else {
            patch += newVolumes.map { JSONPatchOperation(path: "/spec/volumes/-", value: $0) }
        }
        let skipped = Set(
            (annotations[PodAnnotation.skipEnvContainers] ?? "").split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces)
            })
        for (index, container) in containers.enumerated() {
            guard let name = container["name"]?.stringValue, !skipped.contains(name) else { continue }
            patch += environmentPatch(for: container, at: index, settings: settings)
        }
        var added: [(String, String)] = [(PodAnnotation.status, "injected")]
        for (name, value) in settings.podAnnotations.sorted(by: { $0.key < $1.key }) {
            let merged = Self.mergedList(existing: annotations[name], adding: value)
            if merged != annotations[name] { added.append((name, merged)) }
        }
        if metadata?["annotations"] == nil {
            patch.append(
                JSONPatchOperation(
                    path: "/metadata/annotations", value: .object(added.map { ($0.0, .string($0.1)) })))
        } else {
            // `add` on an existing member replaces it (RFC 6902), which is what a merge needs.
            patch += added.map { name, value in
                JSONPatchOperation(
                    path: "/metadata/annotations/" + JSONPatchOperation.escape(name), value: .string(value))
            }
        }
        return Injection(patch: patch, warnings: warnings, skipped: nil, service: service)
    }

    /// `existing`'s comma-separated entries, then those of `adding` it lacks.
    public static func mergedList(existing: String?, adding: String) -> String {
        func entries(_ text: String) -> [String] {
            text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var list = entries(existing ?? "")
        for entry in entries(adding) where !list.contains(entry) { list.append(entry) }
        return list.joined(separator: ",")
    }

    // MARK: - The service

    struct Problem: Error {
        var message: String
    }

    /// The `sluice.dev/service` annotation, else the `app.kubernetes.io/name` label, else
    /// the controlling owner's name (a ReplicaSet's without its pod-template hash, which is
    /// the Deployment's), else the pod's own name or name prefix.
    static func serviceName(pod: JSONValue, annotations: [String: String]) -> Result<String, Problem> {
        let metadata = pod["metadata"]
        let labels = strings(metadata?["labels"])
        let chosen: (name: String, source: String)
        if let name = annotations[PodAnnotation.service] {
            chosen = (name, "the \(PodAnnotation.service) annotation")
        } else if let name = labels["app.kubernetes.io/name"] {
            chosen = (name, "the app.kubernetes.io/name label")
        } else if let owner = metadata?["ownerReferences"]?.arrayValue?.first(where: {
            $0["controller"]?.boolValue == true
        }), var name = owner["name"]?.stringValue {
            if owner["kind"]?.stringValue == "ReplicaSet", let hash = labels["pod-template-hash"],
                name.hasSuffix("-" + hash)
            {
                name.removeLast(hash.count + 1)
            }
            chosen = (name, "the pod's owner")
        } else if let name = metadata?["generateName"]?.stringValue, !name.isEmpty {
            chosen = (String(name.reversed().drop { $0 == "-" }.reversed()), "the pod's generateName")
        } else if let name = metadata?["name"]?.stringValue {
            chosen = (name, "the pod's name")
        } else {
            return .failure(Problem(message: "no service name: set the \(PodAnnotation.service) annotation"))
        }
        guard Identifier.isDNSLabel(chosen.name) else {
            return .failure(
                Problem(
                    message: "the service name \"\(chosen.name)\" from \(chosen.source) is not a DNS label"
                        + " (lower-case letters, digits and -, at most 63); set \(PodAnnotation.service)"))
        }
        return .success(chosen.name)
    }

    // MARK: - What is added

    /// Agent settings after the pod's annotations; a bad annotation is ignored with a warning.
    struct Overrides {
        var resources: AgentResources
        var policyMaxAgeSeconds: Int
        var flushIntervalSeconds: Int

        init(annotations: [String: String], settings: InjectionSettings, warnings: inout [String]) {
            resources = settings.resources
            policyMaxAgeSeconds = settings.policyMaxAgeSeconds
            flushIntervalSeconds = settings.flushIntervalSeconds
            func quantity(_ annotation: String) -> String?? {
                guard let value = annotations[annotation] else { return nil }
                guard AgentResources.isQuantity(value) else {
                    warnings.append("sluice: \(annotation) \"\(value)\" is not a quantity; the default applies")
                    return nil
                }
                return .some(value)
            }
            func seconds(_ annotation: String, in range: ClosedRange<Int>) -> Int? {
                guard let value = annotations[annotation] else { return nil }
                guard let number = Int(value), range.contains(number) else {
                    warnings.append(
                        "sluice: \(annotation) \"\(value)\" is not a whole number of seconds in"
                            + " \(range.lowerBound)...\(range.upperBound); the default applies")
                    return nil
                }
                return number
            }
            if let value = quantity(PodAnnotation.cpuRequest) { resources.cpuRequest = value }
            if let value = quantity(PodAnnotation.memoryRequest) { resources.memoryRequest = value }
            if let value = quantity(PodAnnotation.cpuLimit) { resources.cpuLimit = value }
            if let value = quantity(PodAnnotation.memoryLimit) { resources.memoryLimit = value }
            if let value = seconds(PodAnnotation.policyMaxAge, in: 60...2_592_000) { policyMaxAgeSeconds = value }
            if let value = seconds(PodAnnotation.flushInterval, in: 1...300) { flushIntervalSeconds = value }
        }
    }

    static func agentContainer(service: String, settings: InjectionSettings, overrides: Overrides) -> JSONValue {
        func field(_ path: String) -> JSONValue {
            .object([("valueFrom", .object([("fieldRef", .object([("fieldPath", .string(path))]))]))])
        }
        func env(_ name: String, _ value: JSONValue) -> JSONValue {
            if case .object(let members) = value { return .object([("name", .string(name))] + members) }
            return .object([("name", .string(name)), ("value", value)])
        }
        var environment: [JSONValue] = [
            env("SLUICE_SERVICE", .string(service)),
            env("SLUICE_NAMESPACE", field("metadata.namespace")),
            env("POD_NAME", field("metadata.name")),
            env("SLUICE_SERVICE_ACCOUNT", field("spec.serviceAccountName")),
            env("SLUICE_POLICY_PUBLIC_KEY", .string(settings.policyPublicKey)),
        ]
        if let ca = settings.controlPlaneCA { environment.append(env("SLUICE_CONTROL_PLANE_CA", .string(ca))) }
        var arguments = [
            "serve", "--control-plane", settings.controlPlaneURL,
            "--agent-token-file", tokenMount + "/token",
            "--state-dir", stateMount + "/state",
            "--listen", "127.0.0.1:\(settings.agentPort)",
            "--metrics-listen", "0.0.0.0:\(settings.adminPort)", "--allow-non-loopback-admin",
            "--policy-max-age-seconds", String(overrides.policyMaxAgeSeconds),
            "--flush-interval-seconds", String(overrides.flushIntervalSeconds),
        ]
        for (flag, export) in [
            ("--export-audit-webhook", settings.auditWebhook), ("--export-audit-otlp", settings.auditOTLP),
            ("--otlp-traces", settings.traces),
        ] {
            guard let export else { continue }
            arguments += [flag, export.url]
            for header in export.headers { arguments += ["\(flag)-header", header] }
        }
        if settings.traces != nil, let ratio = settings.traceSampleRatio {
            arguments += ["--trace-sample-ratio", String(ratio)]
        }
        func probe(_ path: String, period: Int, failures: Int) -> JSONValue {
            .object([
                (
                    "httpGet",
                    .object([("path", .string(path)), ("port", .string("sluice-admin"))])
                ),
                ("periodSeconds", .int(period)), ("failureThreshold", .int(failures)),
            ])
        }
        var members: [(key: String, value: JSONValue)] = [
            ("name", .string(containerName)),
            ("image", .string(settings.image)),
            ("imagePullPolicy", .string(settings.imagePullPolicy)),
        ]
        if settings.nativeSidecar { members.append(("restartPolicy", .string("Always"))) }
        members += [
            ("args", .array(arguments.map { .string($0) })),
            ("env", .array(environment)),
        ]
        if let secret = settings.credentialsSecret {
            // Provider keys for the agent alone: the app's containers never see them. Optional,
            // so a namespace without the Secret still runs (aliases needing a key answer 503).
            members.append(
                (
                    "envFrom",
                    .array([.object([("secretRef", .object([("name", .string(secret)), ("optional", .bool(true))]))])])
                ))
        }
        members += [
            (
                "ports",
                .array([
                    .object([
                        ("name", .string("sluice-admin")), ("containerPort", .int(settings.adminPort)),
                        ("protocol", .string("TCP")),
                    ])
                ])
            ),
            ("startupProbe", probe("/healthz", period: 1, failures: 60)),
            ("readinessProbe", probe("/readyz", period: 5, failures: 2)),
            ("livenessProbe", probe("/healthz", period: 10, failures: 3)),
            ("resources", resources(overrides.resources)),
            (
                "securityContext",
                .object([
                    ("runAsNonRoot", .bool(true)), ("runAsUser", .int(agentUser)), ("runAsGroup", .int(agentUser)),
                    ("readOnlyRootFilesystem", .bool(true)), ("allowPrivilegeEscalation", .bool(false)),
                    ("capabilities", .object([("drop", .array([.string("ALL")]))])),
                    ("seccompProfile", .object([("type", .string("RuntimeDefault"))])),
                ])
            ),
            (
                "volumeMounts",
                .array([
                    .object([("name", .string(stateVolume)), ("mountPath", .string(stateMount))]),
                    .object([
                        ("name", .string(tokenVolume)), ("mountPath", .string(tokenMount)), ("readOnly", .bool(true)),
                    ]),
                ])
            ),
        ]
        return .object(members)
    }

    static func resources(_ resources: AgentResources) -> JSONValue {
        func pairs(cpu: String?, memory: String?) -> [(key: String, value: JSONValue)] {
            [("cpu", cpu), ("memory", memory)].compactMap { name, value in value.map { (name, .string($0)) } }
        }
        var members: [(key: String, value: JSONValue)] = []
        let requests = pairs(cpu: resources.cpuRequest, memory: resources.memoryRequest)
        let limits = pairs(cpu: resources.cpuLimit, memory: resources.memoryLimit)
        if !requests.isEmpty { members.append(("requests", .object(requests))) }
        if !limits.isEmpty { members.append(("limits", .object(limits))) }
        return .object(members)
    }

    static func agentVolumes(settings: InjectionSettings) -> [JSONValue] {
        let token = JSONValue.object([
            ("audience", .string(settings.tokenAudience)),
            ("expirationSeconds", .int(settings.tokenExpirationSeconds)),
            ("path", .string("token")),
        ])
        return [
            .object([("name", .string(stateVolume)), ("emptyDir", .object([("sizeLimit", .string("256Mi"))]))]),
            .object([
                ("name", .string(tokenVolume)),
                (
                    "projected",
                    .object([
                        ("sources", .array([.object([("serviceAccountToken", token)])])),
                        // Readable by the agent's user whatever user the app runs as; mounted
                        // into the agent's container only.
                        ("defaultMode", .int(0o444)),
                    ])
                ),
            ]),
        ]
    }

    /// The variables that point an app's SDKs at the agent.
    public static func baseURLs(port: Int) -> [(name: String, value: String)] {
        [
            ("OPENAI_BASE_URL", "http://127.0.0.1:\(port)/v1"),
            ("OPENAI_API_BASE", "http://127.0.0.1:\(port)/v1"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:\(port)"),
        ]
    }

    /// Adds the base URLs to one app container; a variable it sets itself is left as it is.
    static func environmentPatch(for container: JSONValue, at index: Int, settings: InjectionSettings)
        -> [JSONPatchOperation]
    {
        let existing = container["env"]?.arrayValue
        let defined = Set((existing ?? []).compactMap { $0["name"]?.stringValue })
        let added = baseURLs(port: settings.agentPort).filter { !defined.contains($0.name) }.map {
            JSONValue.object([("name", .string($0.name)), ("value", .string($0.value))])
        }
        guard !added.isEmpty else { return [] }
        if existing == nil {
            return [JSONPatchOperation(path: "/spec/containers/\(index)/env", value: .array(added))]
        }
        return added.map { JSONPatchOperation(path: "/spec/containers/\(index)/env/-", value: $0) }
    }

    static func strings(_ value: JSONValue?) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in value?.objectValue ?? [] { if let text = value.stringValue { result[key] = text } }
        return result
    }
}
