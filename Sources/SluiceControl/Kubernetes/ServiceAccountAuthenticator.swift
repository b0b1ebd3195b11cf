import Crypto
import Foundation
import Logging
import SluiceHTTP2
import SluiceKubernetes
import SluicePolicy
import Synchronization

/// Authenticates agents by their projected Kubernetes service-account tokens. The token is
/// verified (by the API server's TokenReview, or offline against the cluster's key set), its
/// namespace and service account become the agent's identity, and the service the agent
/// claims in `Sluice-Service` is checked against the namespace's claim rule. The agent is
/// bound to `<token namespace>/<claimed service>`: its bundles and its usage are that
/// service's, whatever its own environment says.
///
/// A token problem answers 401 (the agent reads its rotated token again and retries once), a
/// claim the rules refuse 403, and an API server that cannot be asked 503; each is counted
/// by reason in ``AgentAuthCounters`` and logged without the token.
public final class ServiceAccountAuthenticator: AgentAuthenticator {
    private let settings: AgentIdentitySettings
    private let api: KubernetesAPIClient?
    private let keys: KeySetSource?
    private let counters: AgentAuthCounters
    private let clock: @Sendable () -> Int64
    private let logger: Logger
    /// Verified tokens by their SHA-256, until they expire or for five minutes: agents call
    /// every few seconds, and a TokenReview per call would load the API server.
    private let verified = Mutex<[Data: (identity: ServiceAccountIdentity, until: Int64)]>([:])
    /// Deployment lookups by `namespace/name`: a minute when found, ten seconds when not.
    private let deployments = Mutex<[String: (exists: Bool, until: Int64)]>([:])
    static let cacheLimit = 20_000

    public init(
        settings: AgentIdentitySettings, api: KubernetesAPIClient?, counters: AgentAuthCounters,
        keySet: JSONWebKeySet? = nil, logger: Logger,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) {
        self.settings = settings
        self.api = api
        self.counters = counters
        self.clock = clock
        self.logger = logger
        switch settings.verification {
        case .tokenReview: keys = nil
        case .keySetFile: keys = keySet.map { KeySetSource(fixed: $0) }
        case .keySetURL(let url): keys = KeySetSource(url: url, api: api, initial: keySet, now: clock())
        }
    }

    public func agent(forBearer credential: String, claimedService: String?) async throws -> AgentRecord? {
        guard ServiceAccountTokenVerifier.looksLikeJWT(credential) else { return nil }
        let now = clock()
        let identity: ServiceAccountIdentity
        do {
            identity = try await verify(credential, now: now)
        } catch let refusal as TokenRefusal {
            throw refuse(401, refusal, identity: nil)
        } catch let failure as FetchFailure {
            counters.count("verification_unavailable")
            logger.error("cannot verify an agent's token", metadata: ["error": "\(failure.message)"])
            throw APIError(503, "the control plane cannot verify service-account tokens now", code: "unavailable")
        }
        switch settings.claims.decide(service: claimedService, for: identity) {
        case .allowed:
            break
        case .refused(let refusal):
            throw refuse(403, refusal, identity: identity)
        case .needsDeployment(let namespace, let name):
            let exists: Bool
            do {
                exists = try await deploymentExists(namespace: namespace, name: name, now: now)
            } catch {
                counters.count("verification_unavailable")
                logger.error("cannot look up a Deployment", metadata: ["error": "\(error)"])
                throw APIError(503, "the control plane cannot check service claims now", code: "unavailable")
            }
            guard exists else {
                throw refuse(
                    403,
                    TokenRefusal(
                        "service_not_allowed", "namespace \(namespace) has no Deployment named \(name) to claim"),
                    identity: identity)
            }
        }
        counters.count(nil)
        let service = claimedService ?? ""
        let instance = identity.podName ?? "serviceaccount:\(identity.serviceAccount)"
        return AgentRecord(
            id: "k8s:\(identity.namespace)/\(instance)", service: "\(identity.namespace)/\(service)",
            createdAt: now)
    }

    private func refuse(_ status: Int, _ refusal: TokenRefusal, identity: ServiceAccountIdentity?) -> APIError {
        counters.count(refusal.reason)
        var metadata: Logger.Metadata = ["reason": "\(refusal.reason)", "detail": "\(refusal.message)"]
        if let identity { metadata["service_account"] = "\(identity.namespace)/\(identity.serviceAccount)" }
        logger.warning("agent refused", metadata: metadata)
        return APIError(status, refusal.message, code: refusal.reason)
    }

    private func verify(_ token: String, now: Int64) async throws -> ServiceAccountIdentity {
        let digest = Data(SHA256.hash(data: Data(token.utf8)))
        if let hit = verified.withLock({ $0[digest] }), now < hit.until, now <= hit.identity.expiresAt {
            return hit.identity
        }
        let identity: ServiceAccountIdentity
        if let keys {
            identity = try await keys.verify(token, settings: settings, now: now)
        } else {
            identity = try await review(token, now: now)
        }
        verified.withLock { cache in
            if cache.count >= Self.cacheLimit { cache = cache.filter { now < $0.value.until } }
            if cache.count >= Self.cacheLimit { cache.removeAll() }
            cache[digest] = (identity, min(identity.expiresAt, now + 300))
        }
        return identity
    }

    /// TokenReview: the API server checks signature, issuer, audience, expiry and that the
    /// bound pod still exists; the token's own claims then give its expiry.
    private func review(_ token: String, now: Int64) async throws -> ServiceAccountIdentity {
        guard let api else { throw FetchFailure(message: "no API server configured") }
        switch try await api.review(token: token, audience: settings.audience) {
        case .refused(let why):
            throw TokenRefusal("review_refused", "the API server did not accept the token: \(why)")
        case .authenticated(let userName, let podName):
            guard let names = ServiceAccountIdentity.names(fromUserName: userName) else {
                throw TokenRefusal("not_a_service_account", "the token does not name a Kubernetes service account")
            }
            let expiry = ServiceAccountTokenVerifier.unverifiedExpiry(of: token) ?? now + 60
            return ServiceAccountIdentity(
                namespace: names.namespace, serviceAccount: names.serviceAccount, podName: podName, expiresAt: expiry)
        }
    }

    private func deploymentExists(namespace: String, name: String, now: Int64) async throws -> Bool {
        let key = "\(namespace)/\(name)"
        if let hit = deployments.withLock({ $0[key] }), now < hit.until { return hit.exists }
        guard let api else { throw FetchFailure(message: "no API server configured") }
        let exists = try await api.deploymentExists(namespace: namespace, name: name)
        deployments.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll() }
            cache[key] = (exists, now + (exists ? 60 : 10))
        }
        return exists
    }
}

/// Accepted agents and refusals by reason, since start (`GET /v1/admin/agent-auth`).
public final class AgentAuthCounters: Sendable {
    private let counts = Mutex<(accepted: Int, refused: [String: Int])>((0, [:]))

    public init() {}

    /// Counts one acceptance (`reason` nil) or one refusal for `reason`.
    public func count(_ reason: String?) {
        counts.withLock { state in
            if let reason { state.refused[reason, default: 0] += 1 } else { state.accepted += 1 }
        }
    }

    public var accepted: Int { counts.withLock { $0.accepted } }
    public var refused: [String: Int] { counts.withLock { $0.refused } }
}

/// The cluster's key set for offline verification: fixed (a file read at start) or fetched
/// from a URL, again every five minutes and, at most every 30 s, when a token names a key
/// the set does not hold (the cluster rotated its signing key).
final class KeySetSource: Sendable {
    private let url: String?
    private let api: KubernetesAPIClient?
    /// The set, when it was fetched, and when a fetch was last tried (a failing URL is
    /// tried again at most every 30 s; the set in hand stays in use meanwhile).
    private let state: Mutex<(keys: JSONWebKeySet?, fetchedAt: Int64?, triedAt: Int64?)>

    init(fixed: JSONWebKeySet) {
        url = nil
        api = nil
        state = Mutex((fixed, nil, nil))
    }

    init(url: String, api: KubernetesAPIClient?, initial: JSONWebKeySet?, now: Int64) {
        self.url = url
        self.api = api
        state = Mutex((initial, initial == nil ? nil : now, initial == nil ? nil : now))
    }

    func verify(_ token: String, settings: AgentIdentitySettings, now: Int64) async throws -> ServiceAccountIdentity {
        let (current, fetchedAt, triedAt) = state.withLock { ($0.keys, $0.fetchedAt, $0.triedAt) }
        let mayFetch = url != nil && triedAt.map { now - $0 >= 30 } ?? true
        let fresh = fetchedAt.map { now - $0 < 300 } ?? false
        if let current, !mayFetch || fresh,
            let identity = try Self.verify(token, with: current, settings: settings, now: now, refetchable: mayFetch)
        {
            return identity
        }
        var keys = current
        do {
            keys = try await refresh(now: now)
        } catch {
            // The set in hand stays in use while the URL fails.
            guard current != nil else { throw error }
        }
        guard let keys else { throw FetchFailure(message: "no key set") }
        return try verifier(keys, settings).verify(token, now: now)
    }

    /// The token checked against `keys`; nil when it names a key the set lacks and a fetch
    /// may bring it (the cluster rotated its key). Kept synchronous: typed throws caught in
    /// an async function crash the 6.3 compiler's release build.
    private static func verify(
        _ token: String, with keys: JSONWebKeySet, settings: AgentIdentitySettings, now: Int64, refetchable: Bool
    ) throws(TokenRefusal) -> ServiceAccountIdentity? {
        let verifier = ServiceAccountTokenVerifier(
            issuer: settings.issuer ?? "", audience: settings.audience, keys: keys)
        do {
            return try verifier.verify(token, now: now)
        } catch {
            if error.reason == "unknown_key" && refetchable { return nil }
            throw error
        }
    }

    private func verifier(_ keys: JSONWebKeySet, _ settings: AgentIdentitySettings) -> ServiceAccountTokenVerifier {
        ServiceAccountTokenVerifier(issuer: settings.issuer ?? "", audience: settings.audience, keys: keys)
    }

    private func refresh(now: Int64) async throws -> JSONWebKeySet {
        guard let url, let api else { throw FetchFailure(message: "no key set URL") }
        state.withLock { $0.triedAt = now }
        let body = try await api.fetchDocument(url)
        let keys: JSONWebKeySet
        do {
            keys = try JSONWebKeySet.parse(body)
        } catch {
            throw FetchFailure(message: "\(url): \(error.message)")
        }
        state.withLock { $0 = (keys, now, now) }
        return keys
    }
}
