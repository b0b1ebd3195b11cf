import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SluiceAPI
import SluiceHTTP2
import SluiceKubernetes
import SluiceTestSupport
import Synchronization

@testable import SluiceControl

/// The parts of a Kubernetes API server the control plane calls, over TLS on 127.0.0.1:
/// TokenReview (checking real signatures with a test issuer's keys, as the API server
/// would), Deployment lookups, and the service-account issuer's JWKS. It counts each call
/// and can be told to fail, to rotate its keys, or that a pod was deleted.
final class FakeKubernetesAPI: ScopedHarness, @unchecked Sendable {
    /// The bearer token the control plane must present (its own service-account token).
    static let callerToken = "control-plane-service-account-token"

    struct State {
        var issuer: TestTokenIssuer
        var deployments: Set<String> = []
        var deletedPods: Set<String> = []
        var failing = false
        var reviews = 0
        var deploymentLookups = 0
        var keySetFetches = 0
        var unauthorizedCalls = 0
        /// Secrets by `namespace/name`, as stored (base64 data and all).
        var secrets: [String: JSONValue] = [:]
        var secretWrites = 0
        /// MutatingWebhookConfigurations by name.
        var webhookConfigurations: [String: JSONValue] = [:]
        var webhookPatches = 0
        /// ConfigMaps by `namespace/name`, as stored.
        var configMaps: [String: JSONValue] = [:]
        var configMapWrites = 0
    }

    let state: Mutex<State>
    let certificate: TestCertificate
    let directory: TemporaryDirectory
    private(set) var port = 0
    private var serviceGroup: ServiceGroup?
    private var task: Task<Void, any Error>?

    init(issuer: TestTokenIssuer, deployments: Set<String>) async throws {
        state = Mutex(State(issuer: issuer, deployments: deployments))
        certificate = try TestCertificate()
        directory = try TemporaryDirectory(prefix: "sluice-k8s")
        try Self.callerToken.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        var configuration = certificate.serverConfiguration
        configuration.applicationProtocols = ["http/1.1"]
        let tls = try TLSServerContext(configuration: configuration)
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            router: router(), server: .http1(tls: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "fake-kube-apiserver"),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
            logger: Logger(label: "fake-kube-apiserver"))
        let serviceGroup = ServiceGroup(
            configuration: .init(services: [application], logger: Logger(label: "fake-kube-apiserver")))
        self.serviceGroup = serviceGroup
        task = Task { try await serviceGroup.run() }
        for await bound in stream {
            port = bound
            break
        }
    }

    /// Runs `body` with a started server, stopped afterwards even when `body` throws.
    static func with(
        issuer: TestTokenIssuer, deployments: Set<String>, _ body: (FakeKubernetesAPI) async throws -> Void
    ) async throws {
        try await with(starting: { try await FakeKubernetesAPI(issuer: issuer, deployments: deployments) }, body)
    }

    /// The file holding ``callerToken``, as a pod's mounted service-account token.
    var tokenFile: String { directory.file("token") }
    var url: String { "https://127.0.0.1:\(port)" }

    /// Settings pointing the control plane at this server.
    func settings(
        _ verification: AgentIdentitySettings.Verification = .tokenReview, claims: ServiceClaimRules
    ) -> AgentIdentitySettings {
        AgentIdentitySettings(
            verification: verification, audience: "sluice", issuer: state.withLock { $0.issuer.issuer },
            apiServer: url, apiTokenFile: tokenFile, apiCAFile: certificate.certificatePath, claims: claims)
    }

    private func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/apis/authentication.k8s.io/v1/tokenreviews") { request, context in
            guard let refusal = self.admit(request) else {
                let body = try await request.body.collect(upTo: 1 << 20)
                return try self.review(Data(buffer: body))
            }
            return refusal
        }
        router.get("/apis/apps/v1/namespaces/:namespace/deployments/:name") { request, context in
            if let refusal = self.admit(request) { return refusal }
            let key = "\(try context.parameters.require("namespace"))/\(try context.parameters.require("name"))"
            let exists = self.state.withLock { state in
                state.deploymentLookups += 1
                return state.deployments.contains(key)
            }
            return Self.json(exists ? #"{"kind":"Deployment"}"# : #"{"kind":"Status","code":404}"#, exists ? 200 : 404)
        }
        router.get("/openid/v1/jwks") { request, _ in
            if let refusal = self.admit(request) { return refusal }
            let keys = self.state.withLock { state in
                state.keySetFetches += 1
                return state.issuer.keySetJSON
            }
            return Self.json(keys, 200)
        }
        router.get("/api/v1/namespaces/:namespace/secrets/:name") { request, context in
            if let refusal = self.admit(request) { return refusal }
            let key = "\(try context.parameters.require("namespace"))/\(try context.parameters.require("name"))"
            guard let secret = self.state.withLock({ $0.secrets[key] }) else {
                return Self.json(#"{"kind":"Status","code":404}"#, 404)
            }
            return Self.json(String(decoding: secret.bytes, as: UTF8.self), 200)
        }
        router.post("/api/v1/namespaces/:namespace/secrets") { request, context in
            if let refusal = self.admit(request) { return refusal }
            let namespace = try context.parameters.require("namespace")
            let document = try JSONValue.parseObject(Array(buffer: try await request.body.collect(upTo: 1 << 20)))
            let key = "\(namespace)/\(document["metadata"]?["name"]?.stringValue ?? "")"
            let created = self.state.withLock { state in
                guard state.secrets[key] == nil else { return false }
                state.secrets[key] = document
                state.secretWrites += 1
                return true
            }
            return created
                ? Self.json(String(decoding: document.bytes, as: UTF8.self), 201)
                : Self.json(#"{"kind":"Status","reason":"AlreadyExists","code":409}"#, 409)
        }
        router.put("/api/v1/namespaces/:namespace/secrets/:name") { request, context in
            if let refusal = self.admit(request) { return refusal }
            let key = "\(try context.parameters.require("namespace"))/\(try context.parameters.require("name"))"
            let document = try JSONValue.parseObject(Array(buffer: try await request.body.collect(upTo: 1 << 20)))
            self.state.withLock { state in
                state.secrets[key] = document
                state.secretWrites += 1
            }
            return Self.json(String(decoding: document.bytes, as: UTF8.self), 200)
        }
        router.get("/api/v1/namespaces/:namespace/configmaps/:name") { request, context in
            if let refusal = self.admit(request) { return refusal }
            let key = "\(try context.parameters.require("namespace"))/\(try context.parameters.require("name"))"
            guard let configMap = self.state.withLock({ $0.configMaps[key] }) else {
                return Self.json(#"{"kind":"Status","code":404}"#, 404)
            }
            return Self.json(String(decoding: configMap.bytes, as: UTF8.self), 200)
        }
        router.post("/api/v1/namespaces/:namespace/configmaps") { request, context in
            if let refusal = self.admit(request) { return refusal }
            let namespace = try context.parameters.require("namespace")
            let document = try JSONValue.parseObject(Array(buffer: try await request.body.collect(upTo: 1 << 20)))
            let key = "\(namespace)/\(document["metadata"]?["name"]?.stringValue ?? "")"
            let created = self.state.withLock { state in
                guard state.configMaps[key] == nil else { return false }
                state.configMaps[key] = document
                state.configMapWrites += 1
                return true
            }
            return created
                ? Self.json(String(decoding: document.bytes, as: UTF8.self), 201)
                : Self.json(#"{"kind":"Status","reason":"AlreadyExists","code":409}"#, 409)
        }
        router.put("/api/v1/namespaces/:namespace/configmaps/:name") { request, context in
            if let refusal = self.admit(request) { return refusal }
            let key = "\(try context.parameters.require("namespace"))/\(try context.parameters.require("name"))"
            let document = try JSONValue.parseObject(Array(buffer: try await request.body.collect(upTo: 1 << 20)))
            let replaced = self.state.withLock { state in
                guard state.configMaps[key] != nil else { return false }
                state.configMaps[key] = document
                state.configMapWrites += 1
                return true
            }
            return replaced
                ? Self.json(String(decoding: document.bytes, as: UTF8.self), 200)
                : Self.json(#"{"kind":"Status","code":404}"#, 404)
        }
        let webhooks = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/:name"
        router.get(RouterPath(webhooks)) { request, context in
            if let refusal = self.admit(request) { return refusal }
            let name = try context.parameters.require("name")
            guard let configuration = self.state.withLock({ $0.webhookConfigurations[name] }) else {
                return Self.json(#"{"kind":"Status","code":404}"#, 404)
            }
            return Self.json(String(decoding: configuration.bytes, as: UTF8.self), 200)
        }
        router.patch(RouterPath(webhooks)) { request, context in
            if let refusal = self.admit(request) { return refusal }
            guard request.headers[.contentType] == "application/json-patch+json" else {
                return Self.json(#"{"kind":"Status","code":415}"#, 415)
            }
            let name = try context.parameters.require("name")
            let body = try await request.body.collect(upTo: 1 << 20)
            guard let patch = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [[String: Any]] else {
                return Self.json(#"{"kind":"Status","code":400}"#, 400)
            }
            return self.state.withLock { state in
                guard let configuration = state.webhookConfigurations[name] else {
                    return Self.json(#"{"kind":"Status","code":404}"#, 404)
                }
                let operations = patch.map { operation in
                    JSONPatchOperation(
                        path: operation["path"] as? String ?? "", value: .string(operation["value"] as? String ?? ""))
                }
                guard let patched = try? configuration.applying(operations) else {
                    return Self.json(#"{"kind":"Status","code":422}"#, 422)
                }
                state.webhookConfigurations[name] = patched
                state.webhookPatches += 1
                return Self.json(String(decoding: patched.bytes, as: UTF8.self), 200)
            }
        }
        return router
    }

    /// A stored Secret's data, decoded.
    func secretData(_ key: String) -> [String: String] {
        let secret = state.withLock { $0.secrets[key] }
        var data: [String: String] = [:]
        for (name, value) in secret?["data"]?.objectValue ?? [] {
            data[name] = value.stringValue.flatMap { Data(base64Encoded: $0) }.map {
                String(decoding: $0, as: UTF8.self)
            }
        }
        return data
    }

    /// A stored ConfigMap's data.
    func configMapData(_ key: String) -> [String: String] {
        let configMap = state.withLock { $0.configMaps[key] }
        var data: [String: String] = [:]
        for (name, value) in configMap?["data"]?.objectValue ?? [] { data[name] = value.stringValue }
        return data
    }

    /// Nil when the call may go on; otherwise the answer (401 without the caller's token, 500
    /// while failing).
    private func admit(_ request: Request) -> Response? {
        state.withLock { state in
            if state.failing { return Self.json(#"{"kind":"Status","code":500}"#, 500) }
            guard request.headers[.authorization] == "Bearer \(Self.callerToken)" else {
                state.unauthorizedCalls += 1
                return Self.json(#"{"kind":"Status","code":401}"#, 401)
            }
            return nil
        }
    }

    private func review(_ body: Data) throws -> Response {
        let object = try JSONSerialization.jsonObject(with: body) as? [String: Any]
        let spec = object?["spec"] as? [String: Any]
        let token = spec?["token"] as? String ?? ""
        let audience = (spec?["audiences"] as? [String])?.first ?? ""
        let (issuer, deleted) = state.withLock { state in
            state.reviews += 1
            return (state.issuer, state.deletedPods)
        }
        let status: String
        do {
            let keys = try JSONWebKeySet.parse(Array(issuer.keySetJSON.utf8))
            let identity = try ServiceAccountTokenVerifier(issuer: issuer.issuer, audience: audience, keys: keys)
                .verify(token, now: Int64(Date().timeIntervalSince1970))
            guard !deleted.contains("\(identity.namespace)/\(identity.podName ?? "")") else {
                throw TokenRefusal("pod_deleted", "the pod this token is bound to no longer exists")
            }
            status = """
                {"authenticated":true,"user":{"username":"\(identity.userName)","uid":"1111",\
                "extra":{"authentication.kubernetes.io/pod-name":["\(identity.podName ?? "")"]}},\
                "audiences":["\(audience)"]}
                """
        } catch {
            status = #"{"authenticated":false,"error":"invalid bearer token, \#(error)"}"#
        }
        return Self.json(
            #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":\#(status)}"#, 201)
    }

    private static func json(_ text: String, _ status: Int) -> Response {
        Response(
            status: .init(code: status), headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func shutdown() async throws {
        await serviceGroup?.triggerGracefulShutdown()
        serviceGroup = nil
        try await task?.value
        task = nil
        certificate.directory.remove()
        directory.remove()
    }
}
