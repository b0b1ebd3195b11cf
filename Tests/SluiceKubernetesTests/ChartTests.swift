import Foundation
import SluiceAPI
import SluiceKubernetes
import SluiceTestSupport
import Testing
import Yams

/// The Helm chart and the kustomize manifests, rendered by the real tools (`SLUICE_HELM`,
/// `SLUICE_KUBECTL`; scripts/test.sh installs helm), validated with `kubernetes-validate
/// --strict`, and their configuration files read by the same strict parsers the control
/// plane uses at start, so the chart cannot render a file the binary refuses.
@Suite("Helm chart and kustomize manifests")
struct ChartTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let chart = root + "/helm/sluice"

    static func tool(_ variable: String, fallback: String) throws -> String {
        if let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty { return path }
        let local = root + "/.state/tools/bin/" + fallback
        guard FileManager.default.isExecutableFile(atPath: local) else {
            throw KubernetesValidate.Failure(output: "\(fallback) not found: run scripts/test.sh, or set \(variable)")
        }
        return local
    }

    /// Runs helm with its state in a scratch directory.
    static func helm(_ arguments: [String]) async throws -> ExternalScript.Outcome {
        let scratch = try TemporaryDirectory(prefix: "sluice-helm")
        defer { scratch.remove() }
        var environment = ProcessInfo.processInfo.environment
        for name in ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"] { environment[name] = scratch.path }
        return try await ExternalScript.run(
            try tool("SLUICE_HELM", fallback: "helm"), arguments: arguments, outputDirectory: scratch,
            environment: environment)
    }

    /// The chart rendered with `values` (a file under helm/sluice/ci, or none), validated,
    /// as JSON documents.
    static func render(_ values: String?, set: [String] = []) async throws -> [JSONValue] {
        let output = try TemporaryDirectory(prefix: "sluice-render")
        defer { output.remove() }
        var arguments = ["template", "sluice", chart, "--namespace", "sluice", "--output-dir", output.path]
        if let values { arguments += ["--values", "\(chart)/ci/\(values)"] }
        for value in set { arguments += ["--set", value] }
        let rendered = try await helm(arguments)
        guard rendered.status == 0 else { throw KubernetesValidate.Failure(output: rendered.output) }
        let files = try FileManager.default.subpathsOfDirectory(atPath: output.path).filter { $0.hasSuffix(".yaml") }
            .map { output.path + "/" + $0 }
        try await KubernetesValidate.check(files: files)
        return try files.flatMap { try documents(yaml: String(contentsOfFile: $0, encoding: .utf8)) }
    }

    static func documents(yaml: String) throws -> [JSONValue] {
        try Yams.load_all(yaml: yaml).compactMap { document -> JSONValue? in
            guard document is [String: Any] else { return nil }
            let data = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
            return try JSONValue.parseObject(Array(data))
        }
    }

    static func object(_ documents: [JSONValue], kind: String) -> JSONValue? {
        documents.first { $0["kind"]?.stringValue == kind }
    }

    /// The three files of the control plane's ConfigMap, read as the control plane reads them.
    static func configuration(_ documents: [JSONValue]) throws -> (
        injection: InjectionSettings, caFile: String?, identity: AgentIdentitySettings,
        bootstrap: ClusterBootstrapSettings
    ) {
        let data = try #require(object(documents, kind: "ConfigMap")?["data"])
        func file(_ name: String) throws -> [UInt8] { Array(try #require(data[name]?.stringValue).utf8) }
        let (injection, caFile) = try InjectionSettings.parse(try file("injection.json"))
        return (
            injection, caFile, try AgentIdentitySettings.parse(try file("identity.json")),
            try ClusterBootstrapSettings.parse(try file("bootstrap.json"))
        )
    }

    static func arguments(_ documents: [JSONValue]) -> [String] {
        let container = object(documents, kind: "Deployment")?["spec"]?["template"]?["spec"]?["containers"]?
            .arrayValue?.first
        return (container?["args"]?.arrayValue ?? []).compactMap(\.stringValue)
    }

    @Test("helm lint passes with the defaults and every values set")
    func lint() async throws {
        for values in [
            nil, "sqlite-values.yaml", "postgres-ha-values.yaml", "cert-manager-values.yaml",
            "agent-defaults-values.yaml", "gateway-values.yaml",
        ] as [String?] {
            let arguments =
                ["lint", "--strict", Self.chart] + (values.map { ["--values", "\(Self.chart)/ci/\($0)"] } ?? [])
            let outcome = try await Self.helm(arguments)
            #expect(outcome.status == 0, "helm lint \(values ?? "defaults"): \(outcome.output)")
        }
    }

    @Test("SQLite: one replica on a claim, generated TLS, no Secret rendered, files the binary accepts")
    func sqlite() async throws {
        let documents = try await Self.render("sqlite-values.yaml")
        #expect(!documents.contains { $0["kind"]?.stringValue == "Secret" }, "no secret value is ever rendered")
        #expect(Self.object(documents, kind: "PodDisruptionBudget") == nil)
        let claim = try #require(Self.object(documents, kind: "PersistentVolumeClaim"))
        #expect(claim["spec"]?["resources"]?["requests"]?["storage"]?.stringValue == "5Gi")
        #expect(claim["spec"]?["storageClassName"]?.stringValue == "standard-rwo")
        let deployment = try #require(Self.object(documents, kind: "Deployment"))
        #expect(deployment["spec"]?["replicas"]?.intValue == 1)
        #expect(deployment["spec"]?["strategy"]?["type"]?.stringValue == "Recreate")
        let arguments = Self.arguments(documents)
        #expect(
            arguments.contains("sqlite:/var/lib/sluice/data/sluice.db") && !arguments.contains("--tls-cert")
                && !arguments.contains("--alert-webhooks"))
        // Usage retention reaches the binary as its own flags, each followed by its days.
        for (flag, days) in [
            ("--hourly-usage-retention-days", "40"), ("--daily-usage-retention-days", "800"),
            ("--usage-mark-retention-days", "30"),
        ] {
            let position = try #require(arguments.firstIndex(of: flag), "\(flag) missing")
            #expect(arguments[position + 1] == days, "\(flag)")
        }
        let container = deployment["spec"]?["template"]?["spec"]?["containers"]?.arrayValue?.first
        #expect(container?["readinessProbe"]?["httpGet"]?["path"]?.stringValue == "/readyz")
        #expect(container?["securityContext"]?["readOnlyRootFilesystem"]?.boolValue == true)
        let config = try Self.configuration(documents)
        #expect(config.bootstrap.tlsSecret == "sluice-control-tls")
        #expect(config.bootstrap.webhookConfiguration == "sluice-injector")
        #expect(config.bootstrap.dnsNames.contains("sluice-control.sluice.svc"))
        #expect(config.caFile == "/var/lib/sluice/data/tls.crt")
        #expect(config.injection.controlPlaneURL == "https://sluice-control.sluice.svc:8443")
        #expect(config.injection.credentialsSecret == "sluice-provider-credentials")
        #expect(config.identity.verification == .tokenReview && config.identity.claims.rules == ["*": .deployment])
        let webhook = try #require(Self.object(documents, kind: "MutatingWebhookConfiguration"))
        let entries = webhook["webhooks"]?.arrayValue ?? []
        #expect(entries.map { $0["failurePolicy"]?.stringValue } == ["Ignore", "Ignore"])
        #expect(
            entries.map { $0["clientConfig"]?["service"]?["path"]?.stringValue } == ["/mutate/namespace", "/mutate"])
        #expect(entries.allSatisfy { $0["clientConfig"]?["caBundle"] == nil }, "filled by the control plane")
        let roles = documents.filter { $0["kind"]?.stringValue == "ClusterRole" }
        let resources = roles.flatMap { $0["rules"]?.arrayValue ?? [] }.flatMap {
            $0["resources"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }
        #expect(Set(resources) == ["tokenreviews", "deployments", "mutatingwebhookconfigurations"])
    }

    @Test("PostgreSQL HA: three replicas, the URL from a Secret, a disruption budget, the API server allowed in")
    func postgres() async throws {
        let documents = try await Self.render("postgres-ha-values.yaml")
        let deployment = try #require(Self.object(documents, kind: "Deployment"))
        #expect(deployment["spec"]?["replicas"]?.intValue == 3)
        #expect(deployment["spec"]?["strategy"] == nil)
        let arguments = Self.arguments(documents)
        #expect(arguments.contains("$(SLUICE_DATABASE_URL)"))
        // Alert webhooks: the operator's Secret, mounted read-only, its file passed by path.
        let alerts = try #require(arguments.firstIndex(of: "--alert-webhooks"))
        #expect(arguments[alerts + 1] == "/etc/sluice/alerts/alerts.json")
        let pod = deployment["spec"]?["template"]?["spec"]
        let volume = pod?["volumes"]?.arrayValue?.first { $0["name"]?.stringValue == "alerts" }
        #expect(volume?["secret"]?["secretName"]?.stringValue == "sluice-alerts")
        let mount = pod?["containers"]?.arrayValue?.first?["volumeMounts"]?.arrayValue?.first {
            $0["name"]?.stringValue == "alerts"
        }
        #expect(mount?["mountPath"]?.stringValue == "/etc/sluice/alerts" && mount?["readOnly"]?.boolValue == true)
        // Usage export: the URL as a flag, each header's value from its Secret by name only.
        let otlp = try #require(arguments.firstIndex(of: "--export-usage-otlp"))
        #expect(arguments[otlp + 1] == "http://otel-collector.observability:4318/v1/logs")
        let header = try #require(arguments.firstIndex(of: "--export-usage-otlp-header"))
        #expect(arguments[header + 1] == "Authorization=SLUICE_USAGE_OTLP_HEADER_0")
        #expect(!arguments.contains("--export-usage-webhook"))
        let environment = deployment["spec"]?["template"]?["spec"]?["containers"]?.arrayValue?.first?["env"]
        let headerVariable = environment?.arrayValue?.first {
            $0["name"]?.stringValue == "SLUICE_USAGE_OTLP_HEADER_0"
        }
        #expect(headerVariable?["valueFrom"]?["secretKeyRef"]?["name"]?.stringValue == "sluice-usage-export")
        // The dashboard's viewer token: from the operator's Secret, by name only.
        let viewer = environment?.arrayValue?.first { $0["name"]?.stringValue == "SLUICE_VIEWER_TOKEN" }
        #expect(viewer?["valueFrom"]?["secretKeyRef"]?["name"]?.stringValue == "sluice-dashboard")
        #expect(viewer?["valueFrom"]?["secretKeyRef"]?["key"]?.stringValue == "viewer-token")
        #expect(
            environment?.arrayValue?.first?["valueFrom"]?["secretKeyRef"]?["name"]?.stringValue == "sluice-database")
        #expect(Self.object(documents, kind: "PersistentVolumeClaim") == nil)
        #expect(Self.object(documents, kind: "PodDisruptionBudget")?["spec"]?["minAvailable"]?.intValue == 2)
        let ingress = Self.object(documents, kind: "NetworkPolicy")?["spec"]?["ingress"]?.arrayValue?.first
        #expect(ingress?["from"]?.arrayValue?.last?["ipBlock"]?["cidr"]?.stringValue == "10.0.0.0/28")
        _ = try Self.configuration(documents)
    }

    @Test("cert-manager: a Certificate for the Service's names, CA injection, files mounted, Istio exclusions")
    func certManager() async throws {
        let documents = try await Self.render("cert-manager-values.yaml")
        let certificate = try #require(Self.object(documents, kind: "Certificate"))
        #expect(certificate["spec"]?["secretName"]?.stringValue == "sluice-control-tls")
        #expect(certificate["spec"]?["issuerRef"]?["kind"]?.stringValue == "ClusterIssuer")
        #expect(certificate["spec"]?["dnsNames"]?.arrayValue?.contains(.string("sluice-control.sluice.svc")) == true)
        #expect(Self.object(documents, kind: "Issuer") == nil, "an issuer was given")
        let webhook = try #require(Self.object(documents, kind: "MutatingWebhookConfiguration"))
        #expect(
            webhook["metadata"]?["annotations"]?["cert-manager.io/inject-ca-from"]?.stringValue
                == "sluice/sluice-control")
        let arguments = Self.arguments(documents)
        #expect(arguments.contains("/etc/sluice/tls/tls.crt") && arguments.contains("/etc/sluice/tls/tls.key"))
        let config = try Self.configuration(documents)
        #expect(config.bootstrap.tlsSecret == nil && config.bootstrap.webhookConfiguration == nil)
        #expect(config.caFile == "/etc/sluice/tls/ca.crt")
        #expect(
            config.injection.podAnnotations == [
                "traffic.sidecar.istio.io/excludeOutboundPorts": "443,8443",
                "traffic.sidecar.istio.io/excludeInboundPorts": "9464",
            ])
        let clusterRule = documents.filter { $0["kind"]?.stringValue == "ClusterRole" }.flatMap {
            $0["rules"]?.arrayValue ?? []
        }
        #expect(
            !clusterRule.contains {
                $0["resources"]?.arrayValue?.contains(.string("mutatingwebhookconfigurations")) == true
            })
        // Without an issuer the chart brings a self-signed one.
        let selfSigned = try await Self.render("cert-manager-values.yaml", set: ["tls.certManager.issuerRef.name="])
        #expect(Self.object(selfSigned, kind: "Issuer")?["spec"]?["selfSigned"] != nil)
    }

    @Test("custom agent defaults reach the injector; offline identity; Fail; Linkerd exclusions")
    func agentDefaults() async throws {
        let documents = try await Self.render("agent-defaults-values.yaml")
        let config = try Self.configuration(documents)
        let injection = config.injection
        #expect(injection.image == "registry.example.com/platform/sluice-agent:0.1.0-custom")
        #expect(injection.imagePullPolicy == "Always")
        #expect(injection.agentPort == 4100 && injection.adminPort == 9500)
        #expect(injection.policyMaxAgeSeconds == 3600 && injection.flushIntervalSeconds == 2)
        #expect(!injection.nativeSidecar && injection.tokenAudience == "sluice-prod")
        #expect(injection.credentialsSecret == "llm-keys")
        let collector = "http://otel-collector.observability:4318"
        #expect(injection.auditOTLP == AgentExport(url: collector + "/v1/logs", headers: ["DD-API-KEY=DD_API_KEY"]))
        #expect(injection.traces?.url == collector + "/v1/traces")
        #expect(injection.traceSampleRatio == 0.1 && injection.auditWebhook == nil)
        #expect(injection.resources.cpuLimit == "500m" && injection.resources.memoryLimit == "128Mi")
        #expect(
            injection.podAnnotations == [
                "config.linkerd.io/skip-outbound-ports": "443,8443", "config.linkerd.io/skip-inbound-ports": "9500",
            ])
        #expect(
            config.identity.verification == .keySetURL("https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE/keys"))
        #expect(config.identity.audience == "sluice-prod")
        #expect(
            config.identity.claims.rules == [
                "payments": .serviceAccounts(["payments-api": ["payments", "payments-worker"]]),
                "*": .serviceAccountName,
            ])
        let webhook = try #require(Self.object(documents, kind: "MutatingWebhookConfiguration"))
        let entries = webhook["webhooks"]?.arrayValue ?? []
        #expect(
            entries.allSatisfy { $0["failurePolicy"]?.stringValue == "Fail" && $0["timeoutSeconds"]?.intValue == 3 })
        let excluded = entries.first?["namespaceSelector"]?["matchExpressions"]?.arrayValue?.first?["values"]
        #expect(excluded == .array([.string("kube-system"), .string("sluice"), .string("monitoring")]))
    }

    @Test("the shared gateway: the agent in gateway mode, trust from the ConfigMap the control plane keeps")
    func gateway() async throws {
        let documents = try await Self.render("gateway-values.yaml")
        func named(_ kind: String, _ name: String) -> JSONValue? {
            documents.first { $0["kind"]?.stringValue == kind && $0["metadata"]?["name"]?.stringValue == name }
        }
        let config = try Self.configuration(documents)
        let trust = try #require(config.bootstrap.trustConfigMap)
        #expect(trust == "sluice-trust" && config.bootstrap.trustCAFile == config.caFile)
        let deployment = try #require(named("Deployment", "sluice-gateway"))
        #expect(deployment["spec"]?["replicas"]?.intValue == 3)
        let pod = try #require(deployment["spec"]?["template"]?["spec"])
        #expect(pod["serviceAccountName"]?.stringValue == "sluice-gateway")
        #expect(pod["automountServiceAccountToken"]?.boolValue == false, "only the audience-bound token")
        let container = try #require(pod["containers"]?.arrayValue?.first)
        let arguments = (container["args"]?.arrayValue ?? []).compactMap(\.stringValue)
        func value(after flag: String) -> String? {
            arguments.firstIndex(of: flag).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
        }
        #expect(arguments.first == "serve" && arguments.contains("--gateway"))
        #expect(value(after: "--listen") == "0.0.0.0:4443")
        #expect(value(after: "--control-plane") == config.injection.controlPlaneURL)
        #expect(value(after: "--tls-cert") == "/etc/sluice/gateway-tls/tls.crt")
        #expect(value(after: "--tls-key") == "/etc/sluice/gateway-tls/tls.key")
        // The service it claims is its Deployment's name, which the default claim rule accepts.
        var environment: [String: JSONValue] = [:]
        for entry in container["env"]?.arrayValue ?? [] {
            if let name = entry["name"]?.stringValue { environment[name] = entry["value"] ?? entry["valueFrom"] }
        }
        #expect(environment["SLUICE_SERVICE"]?.stringValue == "sluice-gateway")
        #expect(config.identity.claims.rules["*"] == .deployment)
        for (variable, key) in [
            ("SLUICE_POLICY_PUBLIC_KEY", ClusterBootstrapSettings.trustPublicKeyEntry),
            ("SLUICE_CONTROL_PLANE_CA", ClusterBootstrapSettings.trustCAEntry),
        ] {
            let reference = environment[variable]?["configMapKeyRef"]
            #expect(reference?["name"]?.stringValue == trust && reference?["key"]?.stringValue == key, "\(variable)")
        }
        let pepper = environment["SLUICE_KEY_PEPPER"]?["secretKeyRef"]
        #expect(pepper?["name"]?.stringValue == config.bootstrap.keysSecret)
        #expect(pepper?["key"]?.stringValue == "key-pepper")
        #expect(container["readinessProbe"]?["httpGet"]?["path"]?.stringValue == "/readyz")
        #expect(container["securityContext"]?["readOnlyRootFilesystem"]?.boolValue == true)
        // Mounts: the TLS Secret given, and a token for the identity's audience.
        let volumes = pod["volumes"]?.arrayValue ?? []
        #expect(volumes.contains { $0["secret"]?["secretName"]?.stringValue == "llm-gateway-tls" })
        let token = volumes.compactMap { $0["projected"]?["sources"]?.arrayValue?.first?["serviceAccountToken"] }.first
        #expect(token?["audience"]?.stringValue == config.identity.audience)
        #expect(named("Service", "sluice-gateway")?["spec"]?["type"]?.stringValue == "LoadBalancer")
        #expect(named("PodDisruptionBudget", "sluice-gateway")?["spec"]?["minAvailable"]?.intValue == 1)
        let callers = named("NetworkPolicy", "sluice-gateway")?["spec"]?["ingress"]?.arrayValue?.first
        #expect(callers?["from"]?.arrayValue?.count == 1)
        #expect(callers?["ports"]?.arrayValue?.first?["port"]?.intValue == 4443)
        // The control plane lets the gateway in although its namespace is not labelled.
        let controlPeers = named("NetworkPolicy", "sluice-control")?["spec"]?["ingress"]?.arrayValue?.first?["from"]
        #expect(
            controlPeers?.arrayValue?.contains { $0["podSelector"]?["matchLabels"]?["app.kubernetes.io/component"]
                == .string("gateway") } == true)
        // The control plane may keep the trust ConfigMap and nothing else of its kind.
        let role = try #require(named("Role", "sluice-control"))
        let configMapRules = (role["rules"]?.arrayValue ?? []).filter {
            $0["resources"]?.arrayValue?.contains(.string("configmaps")) == true
        }
        #expect(configMapRules.flatMap { $0["resourceNames"]?.arrayValue ?? [] } == [.string(trust)])

        // With cert-manager and no Secret named, the chart asks for the gateway's certificate.
        let managed = try await Self.render("cert-manager-values.yaml", set: ["gateway.enabled=true"])
        let certificate = managed.first {
            $0["kind"]?.stringValue == "Certificate" && $0["metadata"]?["name"]?.stringValue == "sluice-gateway"
        }
        #expect(certificate?["spec"]?["secretName"]?.stringValue == "sluice-gateway-tls")
        #expect(certificate?["spec"]?["dnsNames"]?.arrayValue?.contains(.string("sluice-gateway.sluice.svc")) == true)
        #expect(certificate?["spec"]?["issuerRef"]?["name"]?.stringValue == "internal-ca")
        // Off by default: nothing of the gateway is rendered.
        let plain = try await Self.render(nil)
        #expect(!plain.contains { $0["metadata"]?["name"]?.stringValue == "sluice-gateway" })
    }

    @Test("values that cannot work fail the render, naming the value")
    func badValues() async throws {
        for (setting, message) in [
            ("controlPlane.replicas=3", "controlPlane.replicas: more than 1 needs"),
            ("controlPlane.database.mode=postgres", "controlPlane.database.postgres.existingSecret: required"),
            ("webhook.failurePolicy=Maybe", "webhook.failurePolicy"),
            ("mesh.type=consul", "mesh.type"),
            ("agentIdentity.verify=key_set", "agentIdentity.issuer and agentIdentity.keySetURL"),
            ("controlPlane.usageRetention.hourlyDays=7", "controlPlane.usageRetention.hourlyDays: 7 is not 32"),
            ("controlPlane.usageRetention.dailyDays=35", "controlPlane.usageRetention.dailyDays: 35"),
            ("controlPlane.usageRetention.markDays=0", "controlPlane.usageRetention.markDays: 0"),
            (
                "controlPlane.usageExport.otlp.url=http://c:4318/v1/logs,"
                    + "controlPlane.usageExport.otlp.headers[0].name=Bad Header",
                "controlPlane.usageExport.otlp.headers[0].name"
            ),
            ("gateway.enabled=true", "gateway.tls.secretName: required"),
        ] {
            let outcome = try await Self.helm(
                ["template", "sluice", Self.chart, "--namespace", "sluice", "--set", setting])
            #expect(outcome.status != 0, "\(setting) rendered")
            #expect(outcome.output.contains(message), "\(setting): \(outcome.output)")
        }
    }

    @Test("kustomize: the base is the chart's default render, and every overlay builds and validates")
    func kustomize() async throws {
        let base = try String(contentsOfFile: Self.root + "/deploy/base/sluice.yaml", encoding: .utf8)
        let scratch = try TemporaryDirectory(prefix: "sluice-kustomize")
        defer { scratch.remove() }
        let rendered = try await Self.helm(["template", "sluice", Self.chart, "--namespace", "sluice"])
        #expect(rendered.status == 0)
        #expect(rendered.output == base, "deploy/base/sluice.yaml is stale: run deploy/render-base.sh")
        let kubectl = try Self.tool("SLUICE_KUBECTL", fallback: "kubectl")
        let overlays = try FileManager.default.contentsOfDirectory(atPath: Self.root + "/deploy/overlays").sorted()
        #expect(overlays == ["postgres-ha", "single"])
        for overlay in overlays {
            let output = try TemporaryDirectory(prefix: "sluice-overlay")
            defer { output.remove() }
            let built = try await ExternalScript.run(
                kubectl, arguments: ["kustomize", Self.root + "/deploy/overlays/" + overlay], outputDirectory: output)
            #expect(built.status == 0, "\(overlay): \(built.output)")
            let file = output.file("\(overlay).yaml")
            try built.output.write(toFile: file, atomically: true, encoding: .utf8)
            try await KubernetesValidate.check(files: [file])
            let documents = try Self.documents(yaml: built.output)
            let deployment = try #require(Self.object(documents, kind: "Deployment"))
            _ = try Self.configuration(documents)
            if overlay == "postgres-ha" {
                #expect(deployment["spec"]?["replicas"]?.intValue == 3)
                #expect(Self.arguments(documents).contains("$(SLUICE_DATABASE_URL)"))
                #expect(Self.object(documents, kind: "PersistentVolumeClaim") == nil)
                #expect(Self.object(documents, kind: "PodDisruptionBudget") != nil)
            } else {
                #expect(
                    Self.object(documents, kind: "PersistentVolumeClaim")?["spec"]?["resources"]?["requests"]?[
                        "storage"]?.stringValue == "10Gi")
            }
        }
    }
}
