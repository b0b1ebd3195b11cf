import Crypto
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SluiceAPI
import SluiceHTTP2
import SluiceKubernetes
import SluicePolicy

/// Takes the control plane's secrets from the cluster at start, generating what is missing,
/// so the chart never renders a secret value: the admin token, bundle-signing key and key
/// pepper from one Secret; a self-signed serving certificate from another (made again when
/// it has less than 30 days left); and the webhook configuration's `caBundle`. Replicas
/// starting together race to create a Secret: the API server lets one win (409 for the
/// rest), and every replica then uses what it holds.
public struct ClusterBootstrap: Sendable {
    /// What the control plane starts with.
    public struct Outcome: Sendable {
        public var adminToken: Secret
        public var keyPepper: Secret
        /// The serving certificate chain and key, as files in the data directory.
        public var tls: (certificateFile: String, keyFile: String)?
        /// The certificate (PEM), for the webhook's `caBundle` and agents' trust.
        public var certificatePEM: String?
        /// The bundle-signing public key (base64 Ed25519), as agents are given it.
        public var policyPublicKey: String
    }

    public let settings: ClusterBootstrapSettings
    let api: KubernetesAPIClient
    let dataDirectory: String
    let logger: Logger
    let clock: @Sendable () -> Int64

    public init(
        settings: ClusterBootstrapSettings, api: KubernetesAPIClient, dataDirectory: String, logger: Logger,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) {
        self.settings = settings
        self.api = api
        self.dataDirectory = dataDirectory
        self.logger = logger
        self.clock = clock
    }

    /// Reads or creates the Secrets and writes the signing key (and certificate) where the
    /// control plane reads them. Throws ``ControlStartError`` naming the Secret and the
    /// API server's answer; no secret value is ever in a message or the log.
    public func run() async throws -> Outcome {
        try FileManager.default.createDirectory(
            atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let keys = try await secret(settings.keysSecret, purpose: "keys") { () throws -> [String: String] in
            var generator = SystemRandomNumberGenerator()
            func random() -> String {
                (0..<4).map { _ in String(UInt64.random(in: .min ... .max, using: &generator), radix: 36) }.joined()
            }
            return [
                "admin-token": "sluice-admin-" + random(),
                "signing-key": Curve25519.Signing.PrivateKey().rawRepresentation.base64EncodedString(),
                "key-pepper": random(),
            ]
        } isCurrent: { _ in
            true
        }
        guard let token = keys["admin-token"], token.utf8.count >= 16, let pepper = keys["key-pepper"],
            pepper.utf8.count >= 16, let signing = keys["signing-key"],
            let raw = Data(base64Encoded: signing), let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else {
            throw ControlStartError(
                "Secret \(settings.namespace)/\(settings.keysSecret) must hold admin-token and key-pepper (16 "
                    + "characters or more) and signing-key (a base64 Ed25519 private key)")
        }
        try write(signing + "\n", to: "\(dataDirectory)/signing-key", secret: true)
        let publicKey = key.publicKey.rawRepresentation.base64EncodedString()
        try write(publicKey + "\n", to: "\(dataDirectory)/signing-key.pub", secret: false)
        var outcome = Outcome(adminToken: Secret(token), keyPepper: Secret(pepper), policyPublicKey: publicKey)
        guard let tlsSecret = settings.tlsSecret else { return outcome }
        let now = clock()
        let tls = try await secret(tlsSecret, purpose: "tls") { () throws -> [String: String] in
            try generateCertificate(now: now)
        } isCurrent: { data in
            // A certificate with less than 30 days left is made again (replicas may each do
            // it; the last write wins and the others pick it up at their next start).
            (data["not-after"].flatMap { Int64($0) } ?? 0) > now + 30 * 86_400
        }
        guard let certificate = tls["tls.crt"], let privateKey = tls["tls.key"] else {
            throw ControlStartError("Secret \(settings.namespace)/\(tlsSecret) must hold tls.crt and tls.key")
        }
        let certificateFile = "\(dataDirectory)/tls.crt"
        let keyFile = "\(dataDirectory)/tls.key"
        try write(certificate, to: certificateFile, secret: false)
        try write(privateKey, to: keyFile, secret: true)
        outcome.tls = (certificateFile, keyFile)
        outcome.certificatePEM = certificate
        return outcome
    }

    /// Sets `caBundle` on every webhook of the configuration that does not already hold
    /// `certificatePEM`, with one JSON Patch. True when the configuration holds it now.
    @discardableResult
    public func patchWebhookConfiguration(certificatePEM: String) async -> Bool {
        guard let name = settings.webhookConfiguration else { return true }
        let path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/\(name)"
        let bundle = Data(certificatePEM.utf8).base64EncodedString()
        do {
            let current = try await api.call("GET", path)
            guard current.status == 200, let document = try? JSONValue.parseObject(current.body),
                let webhooks = document["webhooks"]?.arrayValue
            else {
                logger.error(
                    "cannot read the webhook configuration to set its caBundle",
                    metadata: ["configuration": "\(name)", "status": "\(current.status)"])
                return false
            }
            let operations: [JSONValue] = webhooks.indices.compactMap { index in
                guard webhooks[index]["clientConfig"]?["caBundle"]?.stringValue != bundle else { return nil }
                return .object([
                    ("op", .string("add")), ("path", .string("/webhooks/\(index)/clientConfig/caBundle")),
                    ("value", .string(bundle)),
                ])
            }
            guard !operations.isEmpty else { return true }
            let patched = try await api.call(
                "PATCH", path, body: .array(operations), contentType: "application/json-patch+json")
            guard patched.status == 200 else {
                logger.error(
                    "cannot set the webhook configuration's caBundle",
                    metadata: ["configuration": "\(name)", "status": "\(patched.status)"])
                return false
            }
            logger.info(
                "webhook caBundle set", metadata: ["configuration": "\(name)", "webhooks": "\(operations.count)"])
            return true
        } catch {
            logger.error(
                "cannot reach the API server to set the webhook's caBundle",
                metadata: ["configuration": "\(name)", "error": "\(error.message)"])
            return false
        }
    }

    /// The ConfigMap's keys, as ``publishTrust(publicKey:certificateAuthorityPEM:)`` writes them.
    public static let trustPublicKeyEntry = ClusterBootstrapSettings.trustPublicKeyEntry
    public static let trustCAEntry = ClusterBootstrapSettings.trustCAEntry

    /// Makes the trust ConfigMap hold `publicKey` and the CA (both public), creating it or
    /// replacing what differs; nothing is written when it already holds them. True when the
    /// ConfigMap holds them now. Pods read it through `configMapKeyRef`, so a pod created
    /// before the first publish waits for it rather than starting without trust.
    @discardableResult
    public func publishTrust(publicKey: String, certificateAuthorityPEM: String?) async -> Bool {
        guard let name = settings.trustConfigMap else { return true }
        let collection = "/api/v1/namespaces/\(settings.namespace)/configmaps"
        var data: [(String, JSONValue)] = [(Self.trustPublicKeyEntry, .string(publicKey))]
        if let certificateAuthorityPEM { data.append((Self.trustCAEntry, .string(certificateAuthorityPEM))) }
        let document: JSONValue = .object([
            ("apiVersion", .string("v1")), ("kind", .string("ConfigMap")),
            (
                "metadata",
                .object([
                    ("name", .string(name)), ("namespace", .string(settings.namespace)),
                    ("labels", .object([("app.kubernetes.io/managed-by", .string("sluice-control"))])),
                ])
            ),
            ("data", .object(data)),
        ])
        do {
            let current = try await api.call("GET", "\(collection)/\(name)")
            let written: FetchedResponse
            switch current.status {
            case 200:
                let held = (try? JSONValue.parseObject(current.body))?["data"]
                if held == .object(data) { return true }
                written = try await api.call("PUT", "\(collection)/\(name)", body: document)
            case 404:
                // Another replica may create it first (409): the next round compares again.
                written = try await api.call("POST", collection, body: document)
            default:
                logger.error(
                    "cannot read the trust ConfigMap",
                    metadata: ["configmap": "\(settings.namespace)/\(name)", "status": "\(current.status)"])
                return false
            }
            guard written.status == 200 || written.status == 201 else {
                logger.error(
                    "cannot write the trust ConfigMap",
                    metadata: ["configmap": "\(settings.namespace)/\(name)", "status": "\(written.status)"])
                return false
            }
            logger.info(
                "trust ConfigMap published",
                metadata: [
                    "configmap": "\(settings.namespace)/\(name)", "ca": "\(certificateAuthorityPEM != nil)",
                ])
            return true
        } catch {
            logger.error(
                "cannot reach the API server to publish the trust ConfigMap",
                metadata: ["configmap": "\(settings.namespace)/\(name)", "error": "\(error.message)"])
            return false
        }
    }

    /// The Secret's string data: read, or (when absent or not `isCurrent`) generated and
    /// stored. A create that loses a race (409) reads the winner's.
    private func secret(
        _ name: String, purpose: String, generate: () throws -> [String: String],
        isCurrent: ([String: String]) -> Bool
    ) async throws -> [String: String] {
        let path = "/api/v1/namespaces/\(settings.namespace)/secrets"
        let existing = try await read("\(path)/\(name)")
        if let existing, isCurrent(existing) { return existing }
        let data = try generate()
        let document: JSONValue = .object([
            ("apiVersion", .string("v1")), ("kind", .string("Secret")),
            (
                "metadata",
                .object([
                    ("name", .string(name)), ("namespace", .string(settings.namespace)),
                    (
                        "labels",
                        .object([
                            ("app.kubernetes.io/managed-by", .string("sluice-control")),
                            ("sluice.dev/secret", .string(purpose)),
                        ])
                    ),
                ])
            ),
            ("type", .string("Opaque")),
            (
                "data",
                .object(
                    data.sorted { $0.key < $1.key }.map { ($0.key, .string(Data($0.value.utf8).base64EncodedString())) }
                )
            ),
        ])
        let answer: FetchedResponse
        do {
            answer =
                existing == nil
                ? try await api.call("POST", path, body: document)
                : try await api.call("PUT", "\(path)/\(name)", body: document)
        } catch {
            throw ControlStartError("Secret \(settings.namespace)/\(name): \(error.message)")
        }
        switch answer.status {
        case 200, 201:
            logger.notice(
                existing == nil ? "generated a Secret" : "renewed a Secret",
                metadata: ["secret": "\(settings.namespace)/\(name)", "holds": "\(data.keys.sorted())"])
            return data
        case 409:
            if let winner = try await read("\(path)/\(name)") { return winner }
            throw ControlStartError("Secret \(settings.namespace)/\(name) vanished after a conflicting create")
        default:
            throw ControlStartError(
                "cannot create Secret \(settings.namespace)/\(name): the API server answered HTTP \(answer.status)")
        }
    }

    /// A Secret's data decoded, or nil when it does not exist.
    private func read(_ path: String) async throws -> [String: String]? {
        let answer: FetchedResponse
        do {
            answer = try await api.call("GET", path)
        } catch {
            throw ControlStartError("cannot read \(path): \(error.message)")
        }
        if answer.status == 404 { return nil }
        guard answer.status == 200, let document = try? JSONValue.parseObject(answer.body) else {
            throw ControlStartError("cannot read \(path): the API server answered HTTP \(answer.status)")
        }
        var data: [String: String] = [:]
        for (key, value) in document["data"]?.objectValue ?? [] {
            guard let encoded = value.stringValue, let bytes = Data(base64Encoded: encoded),
                let text = String(data: bytes, encoding: .utf8)
            else {
                throw ControlStartError("\(path): data.\(key) is not base64 UTF-8")
            }
            data[key] = text
        }
        return data
    }

    private func generateCertificate(now: Int64) throws -> [String: String] {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-tls-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(
            atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        do throws(TLSError) {
            try SelfSignedCertificate.generate(
                certificatePath: "\(scratch)/tls.crt", privateKeyPath: "\(scratch)/tls.key",
                commonName: settings.dnsNames[0],
                subjectAltNames: settings.dnsNames.map { "DNS:\($0)" }.joined(separator: ","))
        } catch {
            throw ControlStartError("cannot generate the serving certificate: \(error.message)")
        }
        return [
            "tls.crt": try String(contentsOfFile: "\(scratch)/tls.crt", encoding: .utf8),
            "tls.key": try String(contentsOfFile: "\(scratch)/tls.key", encoding: .utf8),
            // SelfSignedCertificate makes certificates valid for 365 days.
            "not-after": String(now + 365 * 86_400),
        ]
    }

    private func write(_ text: String, to file: String, secret: Bool) throws {
        try? FileManager.default.removeItem(atPath: file)
        guard
            FileManager.default.createFile(
                atPath: file, contents: Data(text.utf8), attributes: [.posixPermissions: secret ? 0o600 : 0o644])
        else {
            throw ControlStartError("cannot write \(file)")
        }
    }
}

extension ClusterBootstrap {
    /// The bootstrap a `--kubernetes-bootstrap FILE` asks for: the file read strictly and
    /// an API client for the cluster it names.
    public static func load(
        file: String, dataDirectory: String, logger: Logger, upstream: UpstreamClient, group: any EventLoopGroup
    ) throws -> ClusterBootstrap {
        guard let bytes = FileManager.default.contents(atPath: file) else {
            throw ControlStartError("cannot read --kubernetes-bootstrap \(file)")
        }
        let settings: ClusterBootstrapSettings
        do {
            settings = try ClusterBootstrapSettings.parse(Array(bytes))
        } catch {
            throw ControlStartError("--kubernetes-bootstrap \(file): \(error.message)")
        }
        let api = try KubernetesAPIClient(
            server: settings.apiServer, tokenFile: settings.apiTokenFile, caFile: settings.apiCAFile,
            upstream: upstream, group: group)
        var bootstrapLogger = logger
        bootstrapLogger[metadataKey: "component"] = "bootstrap"
        return ClusterBootstrap(settings: settings, api: api, dataDirectory: dataDirectory, logger: bootstrapLogger)
    }
}

/// Keeps the webhook configuration's `caBundle` equal to the generated certificate: set at
/// start, then checked every `interval`, so a configuration created after the control plane
/// (or reset by `helm upgrade`) is mended without a restart.
public struct WebhookBundleKeeper: Service {
    let bootstrap: ClusterBootstrap
    let certificatePEM: String
    let interval: Duration

    public init(bootstrap: ClusterBootstrap, certificatePEM: String, interval: Duration = .seconds(30)) {
        self.bootstrap = bootstrap
        self.certificatePEM = certificatePEM
        self.interval = interval
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await bootstrap.patchWebhookConfiguration(certificatePEM: certificatePEM)
                try? await Task.sleep(for: interval)
            }
        }
    }
}

/// Keeps the trust ConfigMap equal to the bundle-signing public key and the CA file's
/// current contents: published at start, then compared every `interval`, so a renewed
/// certificate (cert-manager rotates it in place) or a ConfigMap deleted by hand is mended.
public struct TrustConfigMapKeeper: Service {
    let bootstrap: ClusterBootstrap
    let publicKey: String
    let interval: Duration

    public init(bootstrap: ClusterBootstrap, publicKey: String, interval: Duration = .seconds(30)) {
        self.bootstrap = bootstrap
        self.publicKey = publicKey
        self.interval = interval
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await publishOnce()
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One round: the CA file read now (a missing or unreadable file publishes nothing, so
    /// agents never get a ConfigMap without the CA they need).
    @discardableResult
    public func publishOnce() async -> Bool {
        var certificateAuthority: String?
        if let file = bootstrap.settings.trustCAFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8), text.contains("BEGIN CERTIFICATE")
            else {
                bootstrap.logger.error(
                    "cannot read the CA to publish in the trust ConfigMap", metadata: ["file": "\(file)"])
                return false
            }
            certificateAuthority = text
        }
        return await bootstrap.publishTrust(publicKey: publicKey, certificateAuthorityPEM: certificateAuthority)
    }
}
