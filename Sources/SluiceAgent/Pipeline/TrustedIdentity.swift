import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SluiceHTTP2
import SluiceAPI
import SluiceKubernetes
import SluicePolicy

#if canImport(Glibc)
    import Glibc
#endif

/// Part of step 2 (identify): identity a mesh proxy or an API gateway in front of the agent
/// vouches for (see ``TrustedIdentitySettings``), believed only when the connection comes
/// from one of the configured sources. A gateway JWT (signature, issuer, audience, expiry)
/// names a team, project and user through its claims; an Envoy/Istio client-certificate
/// header names a SPIFFE workload, which the settings map to a team and project. From any
/// other peer the headers are ignored, and the caller must present a key like anyone.
public final class TrustedIdentity: Sendable {
    public let settings: TrustedIdentitySettings
    private let sources: [IPNetwork]
    /// The gateway's signing keys, when a gateway is configured.
    let gatewayKeys: GatewayKeys?

    /// Reads the gateway's JWKS file now, so a bad one stops the start with its path; a
    /// JWKS URL is first fetched by ``GatewayKeyRefresher`` (tokens meanwhile get 503).
    public init(_ settings: TrustedIdentitySettings) throws(ConfigError) {
        self.settings = settings
        sources = settings.sources.compactMap(IPNetwork.init)
        guard let gateway = settings.gatewayToken else {
            gatewayKeys = nil
            return
        }
        guard case .file(let file) = gateway.keySet else {
            gatewayKeys = GatewayKeys(initial: nil)
            return
        }
        let keys: JSONWebKeySet
        do {
            keys = try GatewayKeys.read(file: file)
        } catch {
            throw ConfigError("sluice_settings.trusted_identity.jwt.jwks_file: \(error.message)")
        }
        gatewayKeys = GatewayKeys(initial: keys)
    }

    /// The service that keeps the gateway's keys current (a file is read again, a URL
    /// fetched); nil without a gateway.
    func keyRefresher(upstream: UpstreamClient, group: any EventLoopGroup, logger: Logger) -> (any Service)? {
        guard let gateway = settings.gatewayToken, let gatewayKeys else { return nil }
        return GatewayKeyRefresher(
            gateway: gateway, keys: gatewayKeys, upstream: upstream, group: group, logger: logger)
    }

    /// The caller the trusted headers name; nil when they do not apply (the peer is not a
    /// source, or it sent neither header), and the key decides.
    func caller(
        headers: HTTPHeaders, peer: SocketAddress?, engine: PolicyEngine, now: Int64
    ) -> Result<Caller, Denial>? {
        guard let peer, sources.contains(where: { $0.contains(peer) }) else { return nil }
        if let gateway = settings.gatewayToken, let gatewayKeys, var token = headers.first(name: gateway.header) {
            if token.prefix(7).lowercased() == "bearer " { token = String(token.dropFirst(7)) }
            // Authorization also carries virtual keys: only a JWT there is the gateway's.
            if gateway.header != "authorization" || ServiceAccountTokenVerifier.looksLikeJWT(token) {
                return vouchedByGateway(token, gateway: gateway, keys: gatewayKeys, engine: engine, now: now)
            }
        }
        if let domain = settings.meshTrustDomain, let header = headers.first(name: "x-forwarded-client-cert") {
            guard let workload = ForwardedClientCert.workload(in: header, trustDomain: domain) else {
                return .failure(
                    refused("the mesh's client certificate names no workload of trust domain \(domain)"))
            }
            let name = "\(workload.namespace)/\(workload.serviceAccount)"
            guard
                let membership = settings.workloads[name] ?? settings.workloads["\(workload.namespace)/*"]
            else {
                return .failure(refused("the mesh workload \(name) is not mapped to a team"))
            }
            return engine.authenticate(vouchedTeam: membership.team, project: membership.project, user: name)
        }
        return nil
    }

    private func vouchedByGateway(
        _ token: String, gateway: TrustedIdentitySettings.GatewayToken, keys: GatewayKeys,
        engine: PolicyEngine, now: Int64
    ) -> Result<Caller, Denial> {
        let (keySet, lastFailure) = keys.current
        guard let keySet else {
            keys.keyMissed()
            return .failure(
                Denial(
                    .identityKeysUnavailable,
                    "the gateway's signing keys have not been read yet"
                        + (lastFailure.map { " (\($0))" } ?? "") + "; retry shortly",
                    rule: "trusted identity", retryAfterSeconds: 5))
        }
        let claims: JSONValue
        do {
            claims = try GatewayTokenVerifier(issuer: gateway.issuer, audience: gateway.audience, keys: keySet)
                .verify(token, now: now / 1_000_000_000)
        } catch {
            // The gateway may have rotated: read its keys again (rate-limited), so the next
            // token signed with the new key gets in.
            if error.reason == "unknown_key" { keys.keyMissed() }
            return .failure(refused("the gateway's token was refused: \(error.message)"))
        }
        guard let team = claims[gateway.teamClaim]?.stringValue else {
            return .failure(refused("the gateway's token has no \(gateway.teamClaim) claim naming a team"))
        }
        let project = gateway.projectClaim.flatMap { claims[$0]?.stringValue }
        let user = gateway.userClaim.flatMap { claims[$0]?.stringValue }.map { String($0.prefix(256)) }
        return engine.authenticate(vouchedTeam: team, project: project, user: user)
    }

    private func refused(_ message: String) -> Denial {
        Denial(.invalidKey, message, rule: "trusted identity")
    }
}

/// An IPv4 or IPv6 block, `address/prefix`. IPv4-mapped IPv6 peers match IPv4 blocks.
struct IPNetwork: Sendable, Equatable {
    let bytes: [UInt8]
    let prefix: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = Self.parse(String(parts[0])) else { return nil }
        let bits = address.count * 8
        let prefix = parts.count == 2 ? Int(parts[1]) : bits
        guard let prefix, (0...bits).contains(prefix) else { return nil }
        bytes = address
        self.prefix = prefix
    }

    func contains(_ peer: SocketAddress) -> Bool {
        var address: [UInt8]
        switch peer {
        case .v4(let v4): address = withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6): address = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        case .unixDomainSocket: return false
        }
        if address.count == 16, bytes.count == 4, address.prefix(12) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] {
            address = Array(address.suffix(4))
        }
        guard address.count == bytes.count else { return false }
        var left = prefix
        for (mine, theirs) in zip(bytes, address) where left > 0 {
            let mask: UInt8 = left >= 8 ? 0xFF : ~(0xFF >> UInt8(left))
            guard mine & mask == theirs & mask else { return false }
            left -= 8
        }
        return true
    }

    private static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: v6) { Array($0) } }
        return nil
    }
}
