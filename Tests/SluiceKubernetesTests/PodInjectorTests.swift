import Foundation
import SluiceAPI
import SluiceKubernetes
import SluiceTestSupport
import Testing

/// The injection webhook's decisions on AdmissionReview fixtures: the review is answered,
/// its JSON Patch applied to the pod as an API server would, and the resulting pod checked
/// for exactly the containers, volumes and variables expected, and (with
/// `SLUICE_K8S_VALIDATE`, which scripts/test.sh sets) validated against Kubernetes' schemas
/// with `kubernetes-validate --strict`.
@Suite("Sidecar injection")
struct PodInjectorTests {
    static let settings: InjectionSettings = {
        var settings = InjectionSettings(
            image: "ghcr.io/sluice/sluice-agent:0.9.0", controlPlaneURL: "https://sluice-control.sluice.svc:8443",
            policyPublicKey: "MCowBQYDK2VwAyEAbase64publickey=", controlPlaneNamespace: "sluice")
        settings.controlPlaneCA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        return settings
    }()

    /// A review of `pod` being created in `namespace`.
    static func review(_ pod: String, namespace: String = "shop", kind: String = "Pod") -> [UInt8] {
        Array(
            """
            {"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
             "uid":"705ab4f5-6393-11e8-b7cc-42010a800002",
             "kind":{"group":"","version":"v1","kind":"\(kind)"},
             "resource":{"group":"","version":"v1","resource":"pods"},
             "namespace":"\(namespace)","operation":"CREATE",
             "userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller"},
             "object":\(pod)}}
            """.utf8)
    }

    /// A Deployment's pod, as its ReplicaSet creates it: no name yet, one container that
    /// already sets OPENAI_BASE_URL itself.
    static let deploymentPod = """
        {"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"checkout-7d9f8b6c5-",
         "labels":{"app":"checkout","pod-template-hash":"7d9f8b6c5"},
         "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"checkout-7d9f8b6c5",
           "uid":"b1","controller":true,"blockOwnerDeletion":true}]},
         "spec":{"serviceAccountName":"checkout","containers":[{"name":"app","image":"shop/checkout:1.4",
           "env":[{"name":"OPENAI_BASE_URL","value":"http://proxy.internal/v1"},{"name":"LOG","value":"info"}],
           "ports":[{"containerPort":8080}]}]}}
        """

    static let barePod = """
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"batch-runner",
         "annotations":{"sluice.dev/inject":"true"}},
         "spec":{"containers":[{"name":"runner","image":"jobs/runner:2"}],"restartPolicy":"Never"}}
        """

    /// Init containers and a second container of its own, a volume, a container that opts
    /// out of the variables, and agent overrides (one of them malformed).
    static let busyPod = """
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"search-0","labels":{"app.kubernetes.io/name":"search"},
         "annotations":{"sluice.dev/skip-env-containers":"log-shipper","sluice.dev/agent-cpu-request":"50m",
           "sluice.dev/agent-memory-limit":"lots","sluice.dev/flush-interval-seconds":"2"}},
         "spec":{"initContainers":[{"name":"migrate","image":"search/migrate:3"}],
          "containers":[{"name":"search","image":"search/api:3"},{"name":"log-shipper","image":"fluent/bit:3"}],
          "volumes":[{"name":"data","emptyDir":{}}]}}
        """

    func apply(_ answer: [UInt8], to pod: String) throws -> JSONValue {
        let review = try JSONValue.parseObject(answer)
        let response = try #require(review["response"])
        #expect(response["allowed"]?.boolValue == true)
        #expect(response["uid"]?.stringValue == "705ab4f5-6393-11e8-b7cc-42010a800002")
        let original = try JSONValue.parseObject(Array(pod.utf8))
        guard let encoded = response["patch"]?.stringValue else { return original }
        #expect(response["patchType"]?.stringValue == "JSONPatch")
        let patchBytes = try #require(Data(base64Encoded: encoded))
        let operations = try #require(
            try JSONValue.parseObject(Array(#"{"p":"#.utf8) + Array(patchBytes) + [UInt8(ascii: "}")])["p"]?
                .arrayValue)
        let patch = try operations.map { operation in
            #expect(operation["op"]?.stringValue == "add")
            return JSONPatchOperation(
                path: try #require(operation["path"]?.stringValue), value: try #require(operation["value"]))
        }
        return try original.applying(patch)
    }

    func names(_ list: JSONValue?) -> [String] {
        (list?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
    }

    func env(_ container: JSONValue?) -> [String: String] {
        var values: [String: String] = [:]
        for variable in container?["env"]?.arrayValue ?? [] {
            if let name = variable["name"]?.stringValue {
                values[name] =
                    variable["value"]?.stringValue
                    ?? variable["valueFrom"].map { String(decoding: $0.bytes, as: UTF8.self) }
            }
        }
        return values
    }

    func webhook(_ pod: String, namespace: String = "shop", optedIn: Bool, settings: InjectionSettings = settings)
        throws -> (pod: JSONValue, injection: Injection)
    {
        let request = try AdmissionRequest(review: Self.review(pod, namespace: namespace))
        let (answer, injection) = AdmissionWebhook.review(request, namespaceOptedIn: optedIn, settings: settings)
        return (try apply(answer, to: pod), injection)
    }

    @Test("a Deployment's pod gets the agent as a native sidecar serving the Deployment's name")
    func deploymentPod() async throws {
        let (pod, injection) = try webhook(Self.deploymentPod, optedIn: true)
        #expect(injection.service == "checkout" && injection.warnings.isEmpty)
        let spec = try #require(pod["spec"])
        #expect(names(spec["initContainers"]) == ["sluice-agent"] && names(spec["containers"]) == ["app"])
        #expect(names(spec["volumes"]) == ["sluice-state", "sluice-token"])
        let agent = try #require(spec["initContainers"]?.arrayValue?.first)
        #expect(agent["restartPolicy"]?.stringValue == "Always")
        #expect(agent["image"]?.stringValue == "ghcr.io/sluice/sluice-agent:0.9.0")
        let agentEnv = env(agent)
        #expect(agentEnv["SLUICE_SERVICE"] == "checkout")
        #expect(agentEnv["SLUICE_NAMESPACE"]?.contains("metadata.namespace") == true)
        #expect(agentEnv["POD_NAME"]?.contains("metadata.name") == true)
        #expect(agentEnv["SLUICE_SERVICE_ACCOUNT"]?.contains("spec.serviceAccountName") == true)
        #expect(agentEnv["SLUICE_POLICY_PUBLIC_KEY"] == Self.settings.policyPublicKey)
        #expect(agentEnv["SLUICE_CONTROL_PLANE_CA"] == Self.settings.controlPlaneCA)
        let args = (agent["args"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: " ")
        #expect(args.contains("--control-plane https://sluice-control.sluice.svc:8443"))
        #expect(args.contains("--agent-token-file /var/run/secrets/sluice/token"))
        #expect(args.contains("--listen 127.0.0.1:4000") && args.contains("--metrics-listen 0.0.0.0:9464"))
        #expect(agent["readinessProbe"]?["httpGet"]?["path"]?.stringValue == "/readyz")
        #expect(agent["securityContext"]?["readOnlyRootFilesystem"]?.boolValue == true)
        let token = spec["volumes"]?.arrayValue?.last?["projected"]?["sources"]?.arrayValue?.first?[
            "serviceAccountToken"]
        #expect(token?["audience"]?.stringValue == "sluice" && token?["path"]?.stringValue == "token")
        // The app's own OPENAI_BASE_URL stands; the others are added after its variables.
        let appEnv = spec["containers"]?.arrayValue?.first?["env"]?.arrayValue ?? []
        #expect(names(.array(appEnv)) == ["OPENAI_BASE_URL", "LOG", "OPENAI_API_BASE", "ANTHROPIC_BASE_URL"])
        #expect(env(spec["containers"]?.arrayValue?.first)["OPENAI_BASE_URL"] == "http://proxy.internal/v1")
        #expect(env(spec["containers"]?.arrayValue?.first)["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4000")
        #expect(pod["metadata"]?["annotations"]?["sluice.dev/status"]?.stringValue == "injected")
        try await validate(pod)
    }

    @Test("an annotated bare pod in a namespace that did not opt in is injected, named after itself")
    func barePod() async throws {
        let (pod, injection) = try webhook(Self.barePod, optedIn: false)
        #expect(injection.service == "batch-runner")
        let container = pod["spec"]?["containers"]?.arrayValue?.first
        #expect(env(container)["OPENAI_BASE_URL"] == "http://127.0.0.1:4000/v1")
        #expect(names(container?["env"]) == ["OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_BASE_URL"])
        try await validate(pod)
    }

    @Test("a pod with its own init containers, sidecar and volume: the agent goes first, the opt-out holds")
    func busyPod() async throws {
        let (pod, injection) = try webhook(Self.busyPod, optedIn: true)
        #expect(injection.service == "search")
        let spec = try #require(pod["spec"])
        #expect(names(spec["initContainers"]) == ["sluice-agent", "migrate"])
        #expect(names(spec["containers"]) == ["search", "log-shipper"])
        #expect(names(spec["volumes"]) == ["data", "sluice-state", "sluice-token"])
        #expect(env(spec["containers"]?.arrayValue?.first)["OPENAI_BASE_URL"] != nil)
        #expect(spec["containers"]?.arrayValue?.last?["env"] == nil)
        let agent = try #require(spec["initContainers"]?.arrayValue?.first)
        #expect(agent["resources"]?["requests"]?["cpu"]?.stringValue == "50m")
        // The malformed limit is ignored with a warning; the default stands.
        #expect(agent["resources"]?["limits"]?["memory"]?.stringValue == "96Mi")
        #expect(injection.warnings.count == 1 && injection.warnings[0].contains("sluice.dev/agent-memory-limit"))
        let args = (agent["args"]?.arrayValue ?? []).compactMap(\.stringValue)
        #expect(args.firstIndex(of: "--flush-interval-seconds").map { args[$0 + 1] } == "2")
        try await validate(pod)
    }

    /// A pod of an Istio-injected namespace whose owner already excludes a port from the
    /// mesh, and a Linkerd-meshed pod: the chart's mesh settings add their exclusions.
    static let istioPod = """
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-0","labels":{"app.kubernetes.io/name":"orders"},
         "annotations":{"traffic.sidecar.istio.io/excludeOutboundPorts":"5432"}},
         "spec":{"containers":[{"name":"orders","image":"shop/orders:7"}]}}
        """
    static let linkerdPod = """
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"ledger-0","labels":{"app.kubernetes.io/name":"ledger"},
         "annotations":{"linkerd.io/inject":"enabled"}},
         "spec":{"containers":[{"name":"ledger","image":"shop/ledger:2"}]}}
        """

    @Test("meshes: Istio's and Linkerd's port exclusions are added, merged with the pod's own")
    func meshes() async throws {
        var istio = Self.settings
        istio.podAnnotations = [
            "traffic.sidecar.istio.io/excludeOutboundPorts": "443,8443",
            "traffic.sidecar.istio.io/excludeInboundPorts": "9464",
        ]
        let (istioPod, _) = try webhook(Self.istioPod, optedIn: true, settings: istio)
        let istioAnnotations = istioPod["metadata"]?["annotations"]
        #expect(istioAnnotations?["traffic.sidecar.istio.io/excludeOutboundPorts"]?.stringValue == "5432,443,8443")
        #expect(istioAnnotations?["traffic.sidecar.istio.io/excludeInboundPorts"]?.stringValue == "9464")
        #expect(istioAnnotations?["sluice.dev/status"]?.stringValue == "injected")
        try await validate(istioPod)

        var linkerd = Self.settings
        linkerd.podAnnotations = [
            "config.linkerd.io/skip-outbound-ports": "443,8443", "config.linkerd.io/skip-inbound-ports": "9464",
        ]
        let (linkerdPod, _) = try webhook(Self.linkerdPod, optedIn: true, settings: linkerd)
        let linkerdAnnotations = linkerdPod["metadata"]?["annotations"]
        #expect(linkerdAnnotations?["config.linkerd.io/skip-outbound-ports"]?.stringValue == "443,8443")
        #expect(linkerdAnnotations?["config.linkerd.io/skip-inbound-ports"]?.stringValue == "9464")
        #expect(linkerdAnnotations?["linkerd.io/inject"]?.stringValue == "enabled")
        try await validate(linkerdPod)
        // A pod without annotations gets them in one object.
        let (bare, _) = try webhook(Self.deploymentPod, optedIn: true, settings: linkerd)
        #expect(bare["metadata"]?["annotations"]?.objectValue?.count == 3)
        #expect(PodInjector.mergedList(existing: " 443, 80", adding: "443,8443") == "443,80,8443")
    }

    @Test("provider credentials reach the agent from an optional Secret, never the app's containers")
    func credentialsSecret() async throws {
        var settings = Self.settings
        settings.credentialsSecret = "sluice-provider-credentials"
        let (pod, _) = try webhook(Self.deploymentPod, optedIn: true, settings: settings)
        let agent = pod["spec"]?["initContainers"]?.arrayValue?.first
        let reference = agent?["envFrom"]?.arrayValue?.first?["secretRef"]
        #expect(reference?["name"]?.stringValue == "sluice-provider-credentials")
        #expect(reference?["optional"]?.boolValue == true)
        #expect(pod["spec"]?["containers"]?.arrayValue?.allSatisfy { $0["envFrom"] == nil } == true)
        try await validate(pod)
        // Without the setting the agent gets no Secret at all.
        let (plain, _) = try webhook(Self.deploymentPod, optedIn: true)
        #expect(plain["spec"]?["initContainers"]?.arrayValue?.first?["envFrom"] == nil)
    }

    @Test("exports: the injection file's destinations become the agent's flags; each mistake names its field")
    func exports() async throws {
        func file(_ exports: String) -> [UInt8] {
            Array(
                #"{"image":"sluice-agent:1","control_plane_url":"https://sluice-control.sluice.svc:8443","#
                    .utf8) + Array(#""namespace":"sluice","exports":\#(exports)}"#.utf8)
        }
        var (settings, _) = try InjectionSettings.parse(
            file(
                #"{"audit_otlp":{"url":"http://otel.observability:4318/v1/logs","headers":["DD-API-KEY=DD_API_KEY"]},"#
                    + #""traces":{"url":"http://otel.observability:4318/v1/traces","sample_ratio":0.25}}"#))
        settings.policyPublicKey = Self.settings.policyPublicKey
        let (pod, _) = try webhook(Self.deploymentPod, optedIn: true, settings: settings)
        let agent = pod["spec"]?["initContainers"]?.arrayValue?.first
        let arguments = agent?["args"]?.arrayValue?.compactMap(\.stringValue)
        let expected = [
            "--export-audit-otlp", "http://otel.observability:4318/v1/logs", "--export-audit-otlp-header",
            "DD-API-KEY=DD_API_KEY", "--otlp-traces", "http://otel.observability:4318/v1/traces",
            "--trace-sample-ratio", "0.25",
        ]
        #expect(Array((arguments ?? []).suffix(expected.count)) == expected, "\(arguments ?? [])")
        #expect(arguments?.contains("--export-audit-webhook") == false)
        try await validate(pod)
        for (exports, says) in [
            (#"{"audit_webhok":{"url":"https://h.example/a"}}"#, "exports.\"audit_webhok\": unknown field"),
            (#"{"audit_webhook":{"url":"ftp://h.example/a"}}"#, "exports.audit_webhook.url"),
            (#"{"audit_webhook":{"url":"https://h.example/a?token=1"}}"#, "exports.audit_webhook.url"),
            (#"{"audit_webhook":{"url":"https://h.example/a","headers":["Authorization"]}}"#, "NAME=ENV_VAR"),
            (#"{"audit_webhook":{"url":"https://h.example/a","sample_ratio":1}}"#, "sample_ratio"),
            (#"{"traces":{"url":"https://h.example/v1/traces","sample_ratio":2}}"#, "from 0 to 1"),
            (#"{"traces":{"headers":[]}}"#, "exports.traces.url: missing field"),
        ] {
            #expect(throws: KubernetesConfigError.self, "\(exports)") { try InjectionSettings.parse(file(exports)) }
            do {
                _ = try InjectionSettings.parse(file(exports))
            } catch {
                #expect(error.message.contains(says), "\(exports): \(error.message)")
            }
        }
    }

    @Test("pods left alone: opted out, already injected, not asked, another kind, a kube-system pod")
    func leftAlone() throws {
        let optOut = Self.deploymentPod.replacingOccurrences(
            of: #""labels":"#, with: #""annotations":{"sluice.dev/inject":"false"},"labels":"#)
        let (_, outOpt) = try webhook(optOut, optedIn: true)
        #expect(outOpt.patch.isEmpty && outOpt.warnings.isEmpty && outOpt.skipped == "not asked for")

        let (injectedPod, _) = try webhook(Self.barePod, optedIn: false)
        let again = try webhook(String(decoding: injectedPod.bytes, as: UTF8.self), optedIn: true)
        #expect(again.injection.patch.isEmpty && again.injection.skipped == "already injected")
        #expect(again.pod == injectedPod)

        let (_, notAsked) = try webhook(Self.deploymentPod, optedIn: false)
        #expect(notAsked.patch.isEmpty && notAsked.warnings.isEmpty)

        let system = try webhook(Self.barePod, namespace: "kube-system", optedIn: true).injection
        #expect(system.patch.isEmpty && system.warnings.first?.contains("never injected") == true)
        let own = try webhook(Self.barePod, namespace: "sluice", optedIn: false).injection
        #expect(own.patch.isEmpty && own.warnings.count == 1)

        let deployment = try AdmissionRequest(review: Self.review(Self.barePod, kind: "Deployment"))
        let (answer, other) = AdmissionWebhook.review(deployment, namespaceOptedIn: true, settings: Self.settings)
        let otherReview = try JSONValue.parseObject(answer)
        #expect(other.patch.isEmpty && otherReview["response"]?["patch"] == nil)
    }

    @Test("a pod that asked but cannot be injected is admitted unchanged, with a warning saying why")
    func admittedWithWarning() throws {
        let hostNetwork = Self.barePod.replacingOccurrences(of: #""spec":{"#, with: #""spec":{"hostNetwork":true,"#)
        let host = try webhook(hostNetwork, optedIn: false)
        #expect(host.injection.patch.isEmpty && host.injection.warnings.first?.contains("host's network") == true)

        let badName = Self.barePod.replacingOccurrences(
            of: #""sluice.dev/inject":"true""#, with: #""sluice.dev/inject":"true","sluice.dev/service":"Check_Out""#)
        let named = try webhook(badName, optedIn: false).injection
        #expect(named.patch.isEmpty && named.warnings.first?.contains("\"Check_Out\"") == true)

        let typo = Self.barePod.replacingOccurrences(
            of: #""sluice.dev/inject":"true""#, with: #""sluice.dev/inject":"yes""#)
        let typoed = try webhook(typo, optedIn: false).injection
        #expect(typoed.patch.isEmpty && typoed.warnings.first?.contains("use \"true\" or \"false\"") == true)

        let clash = Self.barePod.replacingOccurrences(
            of: #""restartPolicy":"Never""#,
            with: #""restartPolicy":"Never","volumes":[{"name":"sluice-state","emptyDir":{}}]"#)
        #expect(try webhook(clash, optedIn: false).injection.warnings.first?.contains("sluice-state") == true)
    }

    @Test("on clusters without native sidecars the agent is appended as a regular container")
    func regularContainer() async throws {
        var settings = Self.settings
        settings.nativeSidecar = false
        let (pod, _) = try webhook(Self.barePod, optedIn: false, settings: settings)
        #expect(names(pod["spec"]?["containers"]) == ["runner", "sluice-agent"])
        #expect(pod["spec"]?["initContainers"] == nil)
        #expect(pod["spec"]?["containers"]?.arrayValue?.last?["restartPolicy"] == nil)
        try await validate(pod)
    }

    @Test("a review that cannot be read is an error naming what is wrong")
    func malformedReview() {
        #expect(throws: AdmissionError.self) { try AdmissionRequest(review: Array("not json".utf8)) }
        let noUID = Array(#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#.utf8)
        #expect { try AdmissionRequest(review: noUID) } throws: {
            ($0 as? AdmissionError)?.message.contains("uid") == true
        }
        let v1beta1 = Array(#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#.utf8)
        #expect(throws: AdmissionError.self) { try AdmissionRequest(review: v1beta1) }
    }

    @Test("quantities")
    func quantities() {
        for good in ["250m", "0.5", "64Mi", "1G", "2", "1.5Gi"] { #expect(AgentResources.isQuantity(good), "\(good)") }
        for bad in ["", "lots", "1.2.3", ".5", "5.", "64MB", "-1", "1e3x"] {
            #expect(!AgentResources.isQuantity(bad), "\(bad)")
        }
    }

    /// Validates `pod` with kubernetes-validate --strict when the test script provides it.
    func validate(_ pod: JSONValue) async throws {
        try await KubernetesValidate.check([pod])
    }
}
