import SluiceAPI
import SluicePolicy

/// What `sluice-control --kubernetes-bootstrap FILE` takes from, and keeps in, the cluster at
/// start: its admin token, bundle-signing key and key pepper from one Secret (generated into
/// it when absent, so no value ever passes through `helm template` output), optionally a
/// self-signed serving certificate from another Secret, and the webhook configuration whose
/// `caBundle` it fills with that certificate; and optionally a ConfigMap publishing what agents
/// must trust (the bundle-signing public key, the control plane's CA), for agents in the
/// control plane's namespace that the webhook does not inject, such as the shared gateway.
public struct ClusterBootstrapSettings: Sendable, Equatable {
    /// The control plane's own namespace, where its Secrets live.
    public var namespace: String
    /// The Secret holding `admin-token`, `signing-key` and `key-pepper`.
    public var keysSecret: String
    /// The Secret holding a generated serving certificate (`tls.crt`, `tls.key`); nil when the
    /// certificate comes from elsewhere (cert-manager, `--tls-cert`).
    public var tlsSecret: String?
    /// The names the generated certificate is for (the Service's DNS names).
    public var dnsNames: [String]
    /// The MutatingWebhookConfiguration whose webhooks get the certificate as `caBundle`.
    public var webhookConfiguration: String?
    /// The ConfigMap the control plane keeps holding `policy-public-key` and, with
    /// ``trustCAFile``, `control-plane-ca.crt`; nil publishes nothing.
    public var trustConfigMap: String?
    /// The PEM file of the CA agents trust for the control plane (read again every round, so
    /// a renewed certificate reaches the ConfigMap).
    public var trustCAFile: String?

    /// The trust ConfigMap's keys: the public key (base64 Ed25519) and the CA (PEM), as pods
    /// name them in `configMapKeyRef`.
    public static let trustPublicKeyEntry = "policy-public-key"
    public static let trustCAEntry = "control-plane-ca.crt"
    public var apiServer: String
    public var apiTokenFile: String
    public var apiCAFile: String?

    public init(
        namespace: String, keysSecret: String, tlsSecret: String? = nil, dnsNames: [String] = [],
        webhookConfiguration: String? = nil, apiServer: String = "https://kubernetes.default.svc",
        apiTokenFile: String = "/var/run/secrets/kubernetes.io/serviceaccount/token",
        apiCAFile: String? = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    ) {
        self.namespace = namespace
        self.keysSecret = keysSecret
        self.tlsSecret = tlsSecret
        self.dnsNames = dnsNames
        self.webhookConfiguration = webhookConfiguration
        self.apiServer = apiServer
        self.apiTokenFile = apiTokenFile
        self.apiCAFile = apiCAFile
    }

    /// The file as the chart renders it (JSON, snake_case), read strictly.
    public static func parse(_ bytes: [UInt8]) throws(KubernetesConfigError) -> ClusterBootstrapSettings {
        let root = try StrictFields.object(bytes, naming: "the bootstrap configuration")
        let fields = try StrictFields(
            root, at: "",
            known: [
                "namespace", "keys_secret", "tls_secret", "dns_names", "webhook_configuration", "api_server",
                "api_token_file", "api_ca_file", "trust_config_map", "trust_ca_file",
            ])
        func name(_ field: String) throws(KubernetesConfigError) -> String? {
            guard let value = try fields.string(field) else { return nil }
            guard isObjectName(value) else {
                throw KubernetesConfigError("\(field): \(Identifier.quoted(value)) is not a Kubernetes object name")
            }
            return value
        }
        guard let namespace = try name("namespace"), Identifier.isDNSLabel(namespace) else {
            throw KubernetesConfigError("namespace: missing, or not a DNS label")
        }
        guard let keysSecret = try name("keys_secret") else {
            throw KubernetesConfigError("keys_secret: missing field")
        }
        var settings = ClusterBootstrapSettings(namespace: namespace, keysSecret: keysSecret)
        settings.tlsSecret = try name("tls_secret")
        settings.webhookConfiguration = try name("webhook_configuration")
        settings.trustConfigMap = try name("trust_config_map")
        if let file = try fields.string("trust_ca_file") {
            guard settings.trustConfigMap != nil else {
                throw KubernetesConfigError("trust_ca_file: given without trust_config_map (where it is published)")
            }
            guard file.hasPrefix("/") else { throw KubernetesConfigError("trust_ca_file: expected an absolute path") }
            settings.trustCAFile = file
        }
        if let names = fields.value("dns_names") {
            guard let list = names.arrayValue?.compactMap(\.stringValue), list.count == names.arrayValue?.count,
                list.allSatisfy(isObjectName)
            else {
                throw KubernetesConfigError("dns_names: expected a list of DNS names")
            }
            settings.dnsNames = list
        }
        if settings.tlsSecret != nil, settings.dnsNames.isEmpty {
            throw KubernetesConfigError("dns_names: required with tls_secret (the names the certificate is for)")
        }
        if let server = try fields.string("api_server") {
            guard server.hasPrefix("https://") || server.hasPrefix("http://") else {
                throw KubernetesConfigError("api_server: expected an http(s) URL")
            }
            settings.apiServer = server
        }
        if let file = try fields.string("api_token_file") { settings.apiTokenFile = file }
        if fields.value("api_ca_file") == .null {
            settings.apiCAFile = nil
        } else if let file = try fields.string("api_ca_file") {
            settings.apiCAFile = file
        }
        return settings
    }

    /// A DNS subdomain (RFC 1123): what Secret, configuration and host names must be.
    static func isObjectName(_ text: String) -> Bool {
        guard (1...253).contains(text.utf8.count) else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy {
            Identifier.isDNSLabel(String($0))
        }
    }
}
