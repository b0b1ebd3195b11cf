import SluicePolicy
import Yams

/// `sluice_settings.trusted_identity`: identity a mesh or an API gateway in front of the
/// agent already established, accepted only from the peers listed in `sources`. From any
/// other peer, or with the section left out, the headers are never read.
public struct TrustedIdentitySettings: Sendable, Equatable {
    /// The team (and project) an identity is taken as.
    public struct Membership: Sendable, Equatable {
        public var team: String
        public var project: String?

        public init(team: String, project: String? = nil) {
            self.team = team
            self.project = project
        }
    }

    /// Where a gateway publishes the keys its tokens are signed with.
    public enum KeySetLocation: Sendable, Equatable {
        /// A JWKS file (a mounted ConfigMap or Secret), read again every refresh.
        case file(String)
        /// A JWKS URL, `https://` only (keys fetched in the clear could be anyone's), trusting
        /// the system roots or the PEM bundle `caFile`.
        case url(String, caFile: String?)
    }

    /// A JWT an API gateway (Gloo, Envoy Gateway, Kong) verified and forwards.
    public struct GatewayToken: Sendable, Equatable {
        /// Where the token is: `authorization` (as `Bearer <jwt>`; a non-JWT there is still
        /// read as a virtual key) or a header of its own.
        public var header = "authorization"
        public var keySet: KeySetLocation
        /// How often the key set is read again (a token naming a key the set lacks asks for
        /// a read at once, at most one every ``GatewayKeyRefresher/minimumSpacing``).
        public var refreshSeconds = 300
        public var issuer: String
        public var audience: String
        public var teamClaim = "team"
        public var projectClaim: String?
        /// The claim naming the end user (limits per end user, the audit line's `end_user`).
        public var userClaim: String?

        public init(keySet: KeySetLocation, issuer: String, audience: String) {
            self.keySet = keySet
            self.issuer = issuer
            self.audience = audience
        }
    }

    /// CIDR blocks of the peers whose identity headers are believed (the mesh proxy, the gateway).
    public var sources: [String]
    /// Envoy/Istio `x-forwarded-client-cert`: SPIFFE IDs of this trust domain.
    public var meshTrustDomain: String?
    /// `namespace/service-account` (or `namespace/*`) → membership. A workload not listed is refused.
    public var workloads: [String: Membership] = [:]
    public var gatewayToken: GatewayToken?

    public init(sources: [String]) {
        self.sources = sources
    }
}

extension TrustedIdentitySettings {
    /// Reads the section, strictly: unknown fields and bad values name their path.
    static func parse(_ node: Node) throws(ConfigError) -> TrustedIdentitySettings {
        let at = "sluice_settings.trusted_identity"
        let fields = try mapping(node, at: at, known: ["sources", "xfcc", "jwt"])
        guard let sourceList = fields["sources"]?.sequence, !sourceList.isEmpty else {
            throw ConfigError("\(at).sources must list the CIDR blocks of the mesh proxy or gateway (127.0.0.1/32)")
        }
        var sources: [String] = []
        for (index, entry) in sourceList.enumerated() {
            guard let text = entry.string, IPNetwork(text) != nil else {
                throw ConfigError("\(at).sources[\(index)] must be a CIDR block such as 10.0.0.0/8 or ::1/128")
            }
            sources.append(text)
        }
        var settings = TrustedIdentitySettings(sources: sources)
        if let xfcc = fields["xfcc"] {
            let path = "\(at).xfcc"
            let mesh = try mapping(xfcc, at: path, known: ["trust_domain", "workloads"])
            guard let domain = mesh["trust_domain"]?.string, !domain.isEmpty, !domain.contains("/") else {
                throw ConfigError("\(path).trust_domain must be the mesh's trust domain (cluster.local)")
            }
            settings.meshTrustDomain = domain
            guard let workloads = mesh["workloads"]?.mapping, !workloads.isEmpty else {
                throw ConfigError("\(path).workloads must map namespace/service-account to {team, project}")
            }
            for (nameNode, entry) in workloads {
                let name = nameNode.string ?? ""
                let parts = name.split(separator: "/", omittingEmptySubsequences: false)
                guard parts.count == 2, Identifier.isDNSLabel(String(parts[0])), !parts[1].isEmpty else {
                    throw ConfigError(
                        "\(path).workloads.\(Identifier.quoted(name)) must be namespace/service-account or namespace/*")
                }
                settings.workloads[name] = try membership(entry, at: "\(path).workloads.\(Identifier.quoted(name))")
            }
        }
        if let jwt = fields["jwt"] {
            let path = "\(at).jwt"
            let token = try mapping(
                jwt, at: path,
                known: [
                    "header", "jwks_file", "jwks_url", "jwks_ca_file", "jwks_refresh_seconds", "issuer", "audience",
                    "team_claim", "project_claim", "user_claim",
                ])
            guard let issuer = token["issuer"]?.string, let audience = token["audience"]?.string, !issuer.isEmpty,
                !audience.isEmpty
            else {
                throw ConfigError("\(path) needs jwks_file or jwks_url, issuer and audience")
            }
            var gateway = GatewayToken(keySet: try keySet(token, at: path), issuer: issuer, audience: audience)
            if let value = token["jwks_refresh_seconds"] {
                guard let seconds = value.int, (30...86_400).contains(seconds) else {
                    throw ConfigError("\(path).jwks_refresh_seconds must be a whole number from 30 to 86400")
                }
                gateway.refreshSeconds = seconds
            }
            if let header = token["header"] {
                guard let name = header.string?.lowercased(), !name.isEmpty,
                    name.utf8.allSatisfy({
                        $0 == UInt8(ascii: "-") || (0x30...0x39).contains($0) || (0x61...0x7A).contains($0)
                    })
                else { throw ConfigError("\(path).header must be a header name") }
                gateway.header = name
            }
            if let value = token["team_claim"] { gateway.teamClaim = try claimName(value, at: "\(path).team_claim") }
            if let value = token["project_claim"] {
                gateway.projectClaim = try claimName(value, at: "\(path).project_claim")
            }
            if let value = token["user_claim"] { gateway.userClaim = try claimName(value, at: "\(path).user_claim") }
            settings.gatewayToken = gateway
        }
        guard settings.meshTrustDomain != nil || settings.gatewayToken != nil else {
            throw ConfigError("\(at) needs xfcc, jwt or both")
        }
        return settings
    }

    private static func mapping(_ node: Node, at path: String, known: Set<String>) throws(ConfigError)
        -> [String: Node]
    {
        guard let mapping = node.mapping else { throw ConfigError("\(path) must be a mapping") }
        var fields: [String: Node] = [:]
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            guard known.contains(key) else {
                throw ConfigError(
                    "\(path).\(Identifier.quoted(key)) is unknown" + Suggestion.hint(for: key, among: known))
            }
            fields[key] = value
        }
        return fields
    }

    private static func membership(_ node: Node, at path: String) throws(ConfigError) -> Membership {
        let fields = try mapping(node, at: path, known: ["team", "project"])
        guard let team = fields["team"]?.string, Identifier.problem(team, as: .team) == nil else {
            throw ConfigError("\(path).team must name a team")
        }
        var membership = Membership(team: team)
        if let project = fields["project"] {
            guard let name = project.string, Identifier.problem(name, as: .project) == nil else {
                throw ConfigError("\(path).project must name a project")
            }
            membership.project = name
        }
        return membership
    }

    /// `jwks_file` or `jwks_url` (with an optional `jwks_ca_file`), exactly one of them.
    private static func keySet(_ fields: [String: Node], at path: String) throws(ConfigError) -> KeySetLocation {
        let file = fields["jwks_file"]?.string
        let url = fields["jwks_url"]?.string
        switch (file, url) {
        case (let file?, nil):
            guard !file.isEmpty else { throw ConfigError("\(path).jwks_file must be a path") }
            guard fields["jwks_ca_file"] == nil else {
                throw ConfigError("\(path).jwks_ca_file goes with jwks_url, not jwks_file")
            }
            return .file(file)
        case (nil, let url?):
            guard url.hasPrefix("https://"), (try? Endpoint(parsing: url)) != nil else {
                throw ConfigError(
                    "\(path).jwks_url must be an https:// URL: keys fetched in the clear could be anyone's")
            }
            var caFile: String?
            if let node = fields["jwks_ca_file"] {
                guard let path = node.string, !path.isEmpty else {
                    throw ConfigError("\(path).jwks_ca_file must be the path of a PEM bundle")
                }
                caFile = path
            }
            return .url(url, caFile: caFile)
        case (nil, nil): throw ConfigError("\(path) needs jwks_file or jwks_url")
        case (_?, _?): throw ConfigError("\(path): give jwks_file or jwks_url, not both")
        }
    }

    private static func claimName(_ node: Node, at path: String) throws(ConfigError) -> String {
        guard let name = node.string, !name.isEmpty, name.utf8.count <= 128 else {
            throw ConfigError("\(path) must be a claim name")
        }
        return name
    }
}
