import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import SluiceAPI
import SluiceHTTP2
import SluiceKubernetes
import SluiceTestSupport
import Testing

@testable import SluiceControl

/// The control plane's secrets taken from, or generated into, the cluster at start, against
/// the fake API server: keys, a serving certificate, and the webhook's caBundle.
@Suite("Cluster bootstrap")
struct ClusterBootstrapTests {
    static func bootstrap(
        _ api: FakeKubernetesAPI, directory: TemporaryDirectory, replica: String = "a",
        tls: Bool = true, trustCAFile: String? = nil,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) throws -> ClusterBootstrap {
        var settings = ClusterBootstrapSettings(
            namespace: "sluice", keysSecret: "sluice-control-keys", tlsSecret: tls ? "sluice-control-tls" : nil,
            dnsNames: ["sluice-control.sluice.svc", "sluice-control.sluice.svc.cluster.local"],
            webhookConfiguration: "sluice-injector", apiServer: api.url, apiTokenFile: api.tokenFile,
            apiCAFile: api.certificate.certificatePath)
        settings.keysSecret = "sluice-control-keys"
        settings.trustConfigMap = "sluice-trust"
        settings.trustCAFile = trustCAFile
        let group = MultiThreadedEventLoopGroup.singleton
        let client = try KubernetesAPIClient(
            server: settings.apiServer, tokenFile: settings.apiTokenFile, caFile: settings.apiCAFile,
            upstream: UpstreamClient(group: group), group: group)
        return ClusterBootstrap(
            settings: settings, api: client, dataDirectory: directory.file("data-\(replica)"),
            logger: Logger(label: "test"), clock: clock)
    }

    @Test("two replicas starting together generate the Secrets once and both use what the cluster holds")
    func generatedOnce() async throws {
        try await FakeKubernetesAPI.with(issuer: try TestTokenIssuer(), deployments: []) { api in
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            async let first = Self.bootstrap(api, directory: directory, replica: "a").run()
            async let second = Self.bootstrap(api, directory: directory, replica: "b").run()
            let (a, b) = try await (first, second)
            #expect(a.adminToken.reveal() == b.adminToken.reveal())
            #expect(a.keyPepper.reveal() == b.keyPepper.reveal())
            #expect(a.certificatePEM == b.certificatePEM)
            #expect(api.state.withLock { $0.secretWrites } == 2, "one keys Secret and one TLS Secret")
            let keys = api.secretData("sluice/sluice-control-keys")
            #expect(keys["admin-token"] == a.adminToken.reveal())
            #expect(keys["admin-token"]?.hasPrefix("sluice-admin-") == true)
            // The signing key lands where the control plane reads it; both replicas sign alike.
            let keyA = try String(contentsOfFile: directory.file("data-a/signing-key"), encoding: .utf8)
            let keyB = try String(contentsOfFile: directory.file("data-b/signing-key"), encoding: .utf8)
            #expect(keyA == keyB && keyA.trimmingCharacters(in: .whitespacesAndNewlines) == keys["signing-key"])
            let mode =
                try FileManager.default.attributesOfItem(atPath: directory.file("data-a/signing-key"))[
                    .posixPermissions] as? Int
            #expect(mode == 0o600)
            // The certificate is for the Service's names and serves TLS.
            let tls = try #require(a.tls)
            #expect(a.certificatePEM?.contains("BEGIN CERTIFICATE") == true)
            _ = try TLSServerContext(
                configuration: TLSServerConfiguration(
                    certificateChainFile: tls.certificateFile, privateKeyFile: tls.keyFile))
        }
    }

    @Test("an existing Secret is used as it is; a malformed one stops the start, naming it")
    func existingSecrets() async throws {
        try await FakeKubernetesAPI.with(issuer: try TestTokenIssuer(), deployments: []) { api in
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let given = Data("given-admin-token-0123456789".utf8).base64EncodedString()
            let pepper = Data("given-pepper-0123456789".utf8).base64EncodedString()
            let signing = Data(Data(repeating: 7, count: 32).base64EncodedString().utf8).base64EncodedString()
            api.state.withLock {
                $0.secrets["sluice/sluice-control-keys"] = try! JSONValue.parseObject(
                    Array(
                        #"{"data":{"admin-token":"\#(given)","key-pepper":"\#(pepper)","signing-key":"\#(signing)"}}"#
                            .utf8))
            }
            let outcome = try await Self.bootstrap(api, directory: directory, tls: false).run()
            #expect(outcome.adminToken.reveal() == "given-admin-token-0123456789")
            #expect(outcome.tls == nil)
            #expect(api.state.withLock { $0.secretWrites } == 0)
            api.state.withLock {
                $0.secrets["sluice/sluice-control-keys"] = try! JSONValue.parseObject(
                    Array(#"{"data":{"admin-token":"\#(given)"}}"#.utf8))
            }
            let refusal = await #expect(throws: ControlStartError.self) {
                _ = try await Self.bootstrap(api, directory: directory, tls: false).run()
            }
            #expect(refusal?.message.contains("sluice/sluice-control-keys must hold") == true)
            #expect(refusal?.message.contains("given-admin-token") == false)
        }
    }

    @Test("a certificate with under 30 days left is made again; the webhook's caBundle follows it")
    func renewalAndCABundle() async throws {
        try await FakeKubernetesAPI.with(issuer: try TestTokenIssuer(), deployments: []) { api in
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let now = Int64(Date().timeIntervalSince1970)
            let first = try await Self.bootstrap(api, directory: directory).run()
            let firstPEM = try #require(first.certificatePEM)
            // The configuration does not exist yet: nothing to patch, and it says so.
            let bootstrap = try Self.bootstrap(api, directory: directory)
            #expect(await bootstrap.patchWebhookConfiguration(certificatePEM: firstPEM) == false)
            api.state.withLock {
                $0.webhookConfigurations["sluice-injector"] = try! JSONValue.parseObject(
                    Array(
                        """
                        {"webhooks":[{"name":"pods.sluice.dev","clientConfig":{"service":{"name":"sluice-control"}}},
                                     {"name":"ns.sluice.dev","clientConfig":{"service":{"name":"sluice-control"}}}]}
                        """.utf8))
            }
            #expect(await bootstrap.patchWebhookConfiguration(certificatePEM: firstPEM))
            let bundle = Data(firstPEM.utf8).base64EncodedString()
            let stored = try #require(api.state.withLock { $0.webhookConfigurations["sluice-injector"] })
            #expect(
                stored["webhooks"]?.arrayValue?.map { $0["clientConfig"]?["caBundle"]?.stringValue } == [
                    bundle, bundle,
                ])
            // Already current: no second patch.
            #expect(await bootstrap.patchWebhookConfiguration(certificatePEM: firstPEM))
            #expect(api.state.withLock { $0.webhookPatches } == 1)

            // 340 days later the certificate has 25 days left: a new one replaces it.
            let later = try Self.bootstrap(api, directory: directory, clock: { now + 340 * 86_400 })
            let renewed = try await later.run()
            #expect(renewed.certificatePEM != firstPEM)
            #expect(api.secretData("sluice/sluice-control-tls")["tls.crt"] == renewed.certificatePEM)
            #expect(renewed.adminToken.reveal() == first.adminToken.reveal(), "the keys are not touched")
        }
    }

    @Test("the trust ConfigMap is written once, follows the CA file, and is never written without the CA")
    func trustConfigMap() async throws {
        try await FakeKubernetesAPI.with(issuer: try TestTokenIssuer(), deployments: []) { api in
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let caFile = directory.file("ca.crt")
            let bootstrap = try Self.bootstrap(api, directory: directory, trustCAFile: caFile)
            let outcome = try await bootstrap.run()
            let keeper = TrustConfigMapKeeper(bootstrap: bootstrap, publicKey: outcome.policyPublicKey)
            // No CA file yet: nothing is published (agents would otherwise start trusting nothing).
            #expect(await keeper.publishOnce() == false)
            #expect(api.state.withLock { $0.configMaps.isEmpty })

            let firstCA = try #require(outcome.certificatePEM)
            try firstCA.write(toFile: caFile, atomically: true, encoding: .utf8)
            #expect(await keeper.publishOnce())
            let published = api.configMapData("sluice/sluice-trust")
            #expect(published[ClusterBootstrap.trustPublicKeyEntry] == outcome.policyPublicKey)
            #expect(published[ClusterBootstrap.trustCAEntry] == firstCA)
            // The public key is the one bundles verify with: the pair of the stored signing key.
            let signing = try #require(
                Data(base64Encoded: api.secretData("sluice/sluice-control-keys")["signing-key"] ?? ""))
            let privateKey = try Curve25519.Signing.PrivateKey(rawRepresentation: signing)
            #expect(privateKey.publicKey.rawRepresentation.base64EncodedString() == outcome.policyPublicKey)
            // Unchanged: compared, not written again.
            #expect(await keeper.publishOnce())
            #expect(api.state.withLock { $0.configMapWrites } == 1)

            // A renewed CA (cert-manager rotates the file in place) replaces the old one.
            let renewed = try TestCertificate()
            defer { renewed.directory.remove() }
            let secondCA = try String(contentsOfFile: renewed.certificatePath, encoding: .utf8)
            try secondCA.write(toFile: caFile, atomically: true, encoding: .utf8)
            #expect(await keeper.publishOnce())
            #expect(api.configMapData("sluice/sluice-trust")[ClusterBootstrap.trustCAEntry] == secondCA)
            #expect(api.state.withLock { $0.configMapWrites } == 2)

            // Deleted by hand: made again. An API server that fails: false, nothing lost.
            api.state.withLock { $0.configMaps = [:] }
            #expect(await keeper.publishOnce())
            #expect(api.configMapData("sluice/sluice-trust")[ClusterBootstrap.trustCAEntry] == secondCA)
            api.state.withLock { $0.failing = true }
            #expect(await keeper.publishOnce() == false)
        }
    }

    @Test("sluice-control --kubernetes-bootstrap: cluster secrets, caBundle set, agents trust it, a gateway too")
    func binaryInCluster() async throws {
        let issuer = try TestTokenIssuer()
        try await FakeKubernetesAPI.with(issuer: issuer, deployments: ["shop/worker", "sluice/sluice-gateway"]) { api in
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            api.state.withLock {
                $0.webhookConfigurations["sluice-injector"] = try! JSONValue.parseObject(
                    Array(#"{"webhooks":[{"name":"pod.inject.sluice.dev","clientConfig":{}}]}"#.utf8))
            }
            let data = directory.file("data")
            let files = [
                "bootstrap.json": """
                {"namespace":"sluice","keys_secret":"sluice-control-keys","tls_secret":"sluice-control-tls",
                 "dns_names":["localhost","sluice-control.sluice.svc"],"webhook_configuration":"sluice-injector",
                 "api_server":"\(api.url)","api_token_file":"\(api.tokenFile)",
                 "api_ca_file":"\(api.certificate.certificatePath)","trust_config_map":"sluice-trust",
                 "trust_ca_file":"\(data)/tls.crt"}
                """,
                "injection.json": """
                {"image":"registry.local/sluice-agent:1.0","control_plane_url":"https://sluice-control.sluice.svc:8443",
                 "control_plane_ca_file":"\(data)/tls.crt","namespace":"sluice"}
                """,
                "identity.json": """
                {"api_server":"\(api.url)","api_token_file":"\(api.tokenFile)",
                 "api_ca_file":"\(api.certificate.certificatePath)"}
                """,
            ]
            for (name, text) in files {
                try text.write(toFile: directory.file(name), atomically: true, encoding: .utf8)
            }
            let group = MultiThreadedEventLoopGroup.singleton
            let port = try await ExternalProcess.freePort(group: group)
            let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
                .appendingPathComponent("sluice-control").path
            // No admin token in the environment: it comes from the cluster.
            let process = try await ExternalProcess(
                executable: binary,
                arguments: [
                    "--listen", "127.0.0.1:\(port)", "--data-dir", data, "--kubernetes-bootstrap",
                    directory.file("bootstrap.json"), "--injection-config", directory.file("injection.json"),
                    "--agent-identity-config", directory.file("identity.json"),
                ],
                port: port, group: group, environment: ["PATH": "/usr/bin:/bin"],
                stderrPath: directory.file("stderr.txt"))
            let keys = api.secretData("sluice/sluice-control-keys")
            let certificate = try #require(api.secretData("sluice/sluice-control-tls")["tls.crt"])
            let adminToken = try #require(keys["admin-token"])
            // It serves TLS with the generated certificate, which is the CA a client trusts.
            let upstream = UpstreamClient(group: group)
            defer { upstream.shutdown() }
            try certificate.write(toFile: directory.file("ca.pem"), atomically: true, encoding: .utf8)
            let origin = UpstreamOrigin(
                scheme: .https, host: "localhost", port: port, trustRoots: .caFile(directory.file("ca.pem")))
            func call(_ method: String, _ path: String, token: String?, body: String = "") async throws
                -> FetchedResponse
            {
                var headers: [(name: String, value: String)] = [("content-type", "application/json")]
                if let token { headers.append(("authorization", "Bearer " + token)) }
                return try await upstream.fetch(
                    UpstreamRequest(
                        method: method, path: path, headers: headers, body: ByteBuffer(string: body),
                        firstByteTimeout: .seconds(10), idleTimeout: .seconds(10)),
                    to: origin, on: group.next(), limit: 1 << 20, subject: "sluice-control")
            }
            #expect(try await call("GET", "/readyz", token: nil).status == 200)
            #expect(try await call("GET", "/v1/admin/teams", token: adminToken).status == 200)
            #expect(try await call("GET", "/v1/admin/teams", token: "wrong-token-0123456789").status == 401)
            // Agents injected from here are given the generated certificate to trust.
            let review = try await call("POST", "/mutate", token: nil, body: WebhookTests.review(annotated: true))
            let answer = try JSONValue.parseObject(review.body)
            let patch = try #require(answer["response"]?["patch"]?.stringValue.flatMap { Data(base64Encoded: $0) })
            let patchText = String(decoding: patch, as: UTF8.self)
            #expect(patchText.contains("SLUICE_CONTROL_PLANE_CA"))
            #expect(patchText.contains("BEGIN CERTIFICATE"))
            // The webhook configuration gets the certificate as its caBundle (set at start).
            let bundle = Data(certificate.utf8).base64EncodedString()
            let deadline = ContinuousClock.now + .seconds(10)
            var stored: String?
            while ContinuousClock.now < deadline {
                stored = api.state.withLock {
                    $0.webhookConfigurations["sluice-injector"]?["webhooks"]?.arrayValue?.first?["clientConfig"]?[
                        "caBundle"]?.stringValue
                }
                if stored != nil { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(stored == bundle)

            // The trust ConfigMap (published at start) is all a gateway in this namespace
            // needs besides its token and the pepper: given its two entries, it syncs over TLS.
            var trust: [String: String] = [:]
            while ContinuousClock.now < deadline + .seconds(10), trust.isEmpty {
                trust = api.configMapData("sluice/sluice-trust")
                if trust.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(trust[ClusterBootstrap.trustCAEntry] == certificate)
            let publicKey = try #require(trust[ClusterBootstrap.trustPublicKeyEntry])
            #expect(
                try String(contentsOfFile: "\(data)/signing-key.pub", encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines) == publicKey)
            let gatewayCertificate = try TestCertificate()
            defer { gatewayCertificate.directory.remove() }
            let tokenFile = directory.file("gateway.token")
            try issuer.token(namespace: "sluice", serviceAccount: "sluice-gateway", pod: "sluice-gateway-7d9f-x1")
                .write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let gatewayPort = try await ExternalProcess.freePort(group: group)
            let adminPort = try await ExternalProcess.freePort(group: group)
            let gateway = try await ExternalProcess(
                executable: URL(fileURLWithPath: binary).deletingLastPathComponent()
                    .appendingPathComponent("sluice-agent").path,
                arguments: [
                    "serve", "--gateway", "--listen", "127.0.0.1:\(gatewayPort)", "--tls-cert",
                    gatewayCertificate.certificatePath, "--tls-key", gatewayCertificate.privateKeyPath,
                    "--control-plane", "https://localhost:\(port)", "--agent-token-file", tokenFile, "--state-dir",
                    directory.file("gateway-state"), "--metrics-listen", "127.0.0.1:\(adminPort)",
                ],
                port: gatewayPort, group: group,
                environment: [
                    "PATH": "/usr/bin:/bin", "SLUICE_SERVICE": "sluice-gateway", "SLUICE_NAMESPACE": "sluice",
                    "POD_NAME": "sluice-gateway-7d9f-x1", "SLUICE_POLICY_PUBLIC_KEY": publicKey,
                    "SLUICE_CONTROL_PLANE_CA": trust[ClusterBootstrap.trustCAEntry] ?? "",
                    "SLUICE_KEY_PEPPER": keys["key-pepper"] ?? "",
                ],
                stderrPath: directory.file("gateway.stderr"))
            // Ready means a bundle arrived over TLS and verified with the published key.
            var ready = 0
            let readyDeadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < readyDeadline, ready != 200 {
                ready = (try? await TestHTTPClient.get("/readyz", port: adminPort, group: group))?.status ?? 0
                if ready != 200 { try await Task.sleep(for: .milliseconds(50)) }
            }
            let gatewayLog = { (try? String(contentsOfFile: directory.file("gateway.stderr"), encoding: .utf8)) ?? "" }
            #expect(ready == 200, "gateway never ready: \(gatewayLog())")
            // A keyless call over TLS (Python's client: no code shared with the agent) gets 401.
            let probe = try await ExternalScript.run(
                "/usr/bin/python3",
                arguments: [
                    "-c",
                    """
                    import http.client, ssl, sys
                    context = ssl.create_default_context(cafile=sys.argv[2])
                    connection = http.client.HTTPSConnection("localhost", int(sys.argv[1]), context=context)
                    connection.request("POST", "/v1/chat/completions", body='{"model":"m","messages":[]}',
                                       headers={"content-type": "application/json"})
                    print(connection.getresponse().status)
                    """, "\(gatewayPort)", gatewayCertificate.certificatePath,
                ], outputDirectory: directory)
            #expect(probe.output.trimmingCharacters(in: .whitespacesAndNewlines) == "401", "\(probe.output)")
            gateway.send(signal: SIGTERM)
            #expect(await gateway.waitForExit() == 0)
            #expect(!gatewayLog().contains(keys["key-pepper"] ?? "-"))
            process.send(signal: SIGTERM)
            #expect(await process.waitForExit() == 0)
            let log = try String(contentsOfFile: directory.file("stderr.txt"), encoding: .utf8)
            #expect(!log.contains(adminToken) && !log.contains(keys["key-pepper"] ?? "-"), "no secret in the log")
        }
    }

    @Test("the bootstrap file is strict and names the field")
    func file() throws {
        let settings = try ClusterBootstrapSettings.parse(
            Array(
                """
                {"namespace":"sluice","keys_secret":"sluice-control-keys","tls_secret":"sluice-control-tls",
                 "dns_names":["sluice-control.sluice.svc"],"webhook_configuration":"sluice-injector"}
                """.utf8))
        #expect(settings.apiServer == "https://kubernetes.default.svc")
        #expect(settings.dnsNames == ["sluice-control.sluice.svc"])
        func error(_ json: String) -> String? {
            do throws(KubernetesConfigError) {
                _ = try ClusterBootstrapSettings.parse(Array(json.utf8))
                return nil
            } catch {
                return error.message
            }
        }
        #expect(error(#"{"namespace":"sluice"}"#) == "keys_secret: missing field")
        #expect(
            error(#"{"namespace":"sluice","keys_secret":"k","tls_secret":"t"}"#)?.hasPrefix("dns_names: required")
                == true)
        #expect(
            error(#"{"namespace":"sluice","keys_secret":"Bad_Name"}"#)
                == #"keys_secret: "Bad_Name" is not a Kubernetes object name"#)
        #expect(
            error(#"{"namespace":"sluice","keys_secret":"k","trust_ca_file":"/ca.crt"}"#)
                == "trust_ca_file: given without trust_config_map (where it is published)")
        #expect(
            error(#"{"namespace":"sluice","keys_secret":"k","trust_config_map":"t","trust_ca_file":"ca.crt"}"#)
                == "trust_ca_file: expected an absolute path")
        #expect(
            error(#"{"namespace":"sluice","keys_secret":"k","webhook_configuraton":"x"}"#)
                == #""webhook_configuraton": unknown field (did you mean webhook_configuration?)"#)
    }
}
