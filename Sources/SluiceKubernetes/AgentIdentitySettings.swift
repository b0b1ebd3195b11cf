import SluiceAPI
import SluicePolicy

/// How the control plane authenticates agents by their projected service-account tokens
/// (`sluice-control --agent-identity-config FILE`).
public struct AgentIdentitySettings: Sendable, Equatable {
    /// How a token's signature is checked.
    public enum Verification: Sendable, Equatable {
        /// Asked of the API server (`TokenReview`), which also refuses tokens of deleted pods.
        case tokenReview
        /// Offline, against the cluster's service-account issuer keys in a JWKS file.
        case keySetFile(String)
        /// Offline, against a JWKS fetched from this URL (the cluster's `/openid/v1/jwks`),
        /// fetched again every few minutes and when a token names an unknown key.
        case keySetURL(String)
    }

    public var verification: Verification
    /// The audience the projected token was issued for (the injector's `token_audience`).
    public var audience: String
    /// The issuer tokens must name; required for offline verification (the API server
    /// checks it itself in a TokenReview).
    public var issuer: String?
    /// The API server, for TokenReview, Deployment lookups and an in-cluster key set.
    public var apiServer: String
    /// The control plane's own service-account token, presented to the API server.
    public var apiTokenFile: String
    /// The CA the API server's certificate is checked against.
    public var apiCAFile: String?
    public var claims: ServiceClaimRules

    public init(
        verification: Verification, audience: String = "sluice", issuer: String? = nil,
        apiServer: String = "https://kubernetes.default.svc",
        apiTokenFile: String = "/var/run/secrets/kubernetes.io/serviceaccount/token",
        apiCAFile: String? = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
        claims: ServiceClaimRules = ServiceClaimRules(rules: ["*": .deployment])
    ) {
        self.verification = verification
        self.audience = audience
        self.issuer = issuer
        self.apiServer = apiServer
        self.apiTokenFile = apiTokenFile
        self.apiCAFile = apiCAFile
        self.claims = claims
    }

    /// Whether a claim rule asks the API server about Deployments.
    public var needsDeploymentLookups: Bool { claims.rules.values.contains(.deployment) }

    /// The file as the chart renders it (JSON, snake_case), read strictly: an unknown field,
    /// a wrong type, a missing issuer for offline verification or a malformed rule is an
    /// error naming the field.
    public static func parse(_ bytes: [UInt8]) throws(KubernetesConfigError) -> AgentIdentitySettings {
        let root = try StrictFields.object(bytes, naming: "the agent identity configuration")
        let fields = try StrictFields(root, at: "", known: topLevelFields)
        let defaults = AgentIdentitySettings(verification: .tokenReview)
        let verification: Verification
        let keySetFile = try fields.string("key_set_file")
        let keySetURL = try fields.string("key_set_url")
        switch try fields.string("verify") {
        case "token_review"?, nil:
            guard keySetFile == nil, keySetURL == nil else {
                throw KubernetesConfigError("key_set_file/key_set_url: only with \"verify\": \"key_set\"")
            }
            verification = .tokenReview
        case "key_set"?:
            switch (keySetFile, keySetURL) {
            case (let file?, nil) where !file.isEmpty: verification = .keySetFile(file)
            case (nil, let url?) where url.hasPrefix("https://") || url.hasPrefix("http://"):
                verification = .keySetURL(url)
            default:
                throw KubernetesConfigError(
                    "verify: key_set needs exactly one of key_set_file or key_set_url (http[s])")
            }
        case let other?:
            throw KubernetesConfigError("verify: \(Identifier.quoted(other)) is not token_review or key_set")
        }
        let audience = try fields.string("audience") ?? defaults.audience
        guard !audience.isEmpty else { throw KubernetesConfigError("audience: must not be empty") }
        let issuer = try fields.string("issuer")
        if verification != .tokenReview, issuer?.isEmpty ?? true {
            throw KubernetesConfigError("issuer: required with \"verify\": \"key_set\" (the cluster's issuer URL)")
        }
        let apiServer = try fields.string("api_server") ?? defaults.apiServer
        guard apiServer.hasPrefix("https://") || apiServer.hasPrefix("http://") else {
            throw KubernetesConfigError("api_server: expected an http(s) URL")
        }
        // `null` trusts the system roots (an API server behind a public certificate).
        let apiCAFile =
            fields.value("api_ca_file") == .null ? nil : (try fields.string("api_ca_file") ?? defaults.apiCAFile)
        var claims = defaults.claims
        if let rules = fields.value("service_claims") {
            claims = try parseClaims(rules)
        }
        return AgentIdentitySettings(
            verification: verification, audience: audience, issuer: issuer, apiServer: apiServer,
            apiTokenFile: try fields.string("api_token_file") ?? defaults.apiTokenFile,
            apiCAFile: apiCAFile,
            claims: claims)
    }

    static let topLevelFields = [
        "verify", "audience", "issuer", "key_set_file", "key_set_url", "api_server", "api_token_file", "api_ca_file",
        "service_claims",
    ]

    /// `{"<namespace>|*": {"rule": "deployment" | "service_account_name"} | {"service_accounts": {...}}}`.
    private static func parseClaims(_ value: JSONValue) throws(KubernetesConfigError) -> ServiceClaimRules {
        guard let members = value.objectValue else { throw KubernetesConfigError("service_claims: not an object") }
        var rules: [String: ServiceClaimRules.Rule] = [:]
        for (namespace, entry) in members {
            let path = "service_claims.\(Identifier.quoted(namespace))."
            guard namespace == "*" || Identifier.isDNSLabel(namespace) else {
                throw KubernetesConfigError("service_claims: \(Identifier.quoted(namespace)) is not a namespace or *")
            }
            let fields = try StrictFields(entry, at: path, known: ["rule", "service_accounts"])
            switch (try fields.string("rule"), fields.value("service_accounts")) {
            case ("deployment"?, nil): rules[namespace] = .deployment
            case ("service_account_name"?, nil): rules[namespace] = .serviceAccountName
            case (nil, let accounts?):
                guard let accountMembers = accounts.objectValue else {
                    throw KubernetesConfigError("\(path)service_accounts: not an object")
                }
                var allowed: [String: [String]] = [:]
                for (account, names) in accountMembers {
                    guard let list = names.arrayValue?.compactMap(\.stringValue),
                        list.count == names.arrayValue?.count,
                        list.allSatisfy({ $0 == "*" || Identifier.isDNSLabel($0) })
                    else {
                        throw KubernetesConfigError(
                            "\(path)service_accounts.\(Identifier.quoted(account)): expected a list of service names")
                    }
                    allowed[account] = list
                }
                rules[namespace] = .serviceAccounts(allowed)
            default:
                throw KubernetesConfigError(
                    "\(path)rule: expected \"deployment\" or \"service_account_name\", or service_accounts instead")
            }
        }
        return ServiceClaimRules(rules: rules)
    }
}
