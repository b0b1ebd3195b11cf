import Hummingbird
import SluicePolicy
import SluiceWire
import Synchronization

/// Turns store and API errors into JSON error bodies with their status; anything else is
/// a 500 that says only that it was internal (details go to the log, not the caller).
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = ControlContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return errorResponse(status: error.status, message: error.message, code: error.code)
        } catch let error as StoreError {
            let code =
                switch error.kind {
                case .notFound: "not_found"
                case .conflict: "conflict"
                case .invalid: "invalid"
                }
            return errorResponse(status: error.status, message: error.message, code: code)
        } catch let error as HTTPError {
            return errorResponse(
                status: error.status.code, message: error.body ?? "\(error.status.reasonPhrase)",
                code: "http_\(error.status.code)")
        } catch {
            context.logger.error("internal error", metadata: ["error": "\(error)"])
            return errorResponse(
                status: 500, message: "internal error; see the control plane's log", code: "internal_error")
        }
    }
}

func errorResponse(status: Int, message: String, code: String) -> Response {
    let body = ErrorBody(
        error: .init(message: message, type: status >= 500 ? "server_error" : "invalid_request_error", code: code))
    let bytes =
        (try? WireCoding.encoder.encode(body)).map(Array.init) ?? Array(#"{"error":{"code":"internal_error"}}"#.utf8)
    return Response(
        status: .init(code: status), headers: [.contentType: "application/json"],
        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
}

/// The OpenAI-shaped error body the agent uses too.
private struct ErrorBody: Encodable {
    struct Detail: Encodable {
        var message: String
        var type: String
        var code: String
    }
    var error: Detail
}

/// `Authorization: Bearer <admin token>`, compared in constant time. Nothing else opens
/// the admin routes: not an agent token, not a virtual key.
struct AdminAuthMiddleware: RouterMiddleware {
    typealias Context = ControlContext
    let token: Secret

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let presented = bearer(request), constantTimeEqual(presented, token.reveal()) else {
            return errorResponse(
                status: 401, message: "the admin API needs Authorization: Bearer <admin token>", code: "unauthorized")
        }
        return try await next(request, context)
    }
}

/// Per-request state: the agent a request was authenticated as.
public struct ControlContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``AgentAuthMiddleware``; nil on every other route.
    public var agentID: String?
    /// The service the agent's credential is bound to, if any: its bundles are scoped to it.
    public var agentService: String?

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    /// A path parameter, percent-decoded: the router matches raw path segments, so an alias
    /// with a `/` arrives as one `%2F`-encoded segment and an id is compared as it was stored.
    func pathParameter(_ name: String) throws -> String {
        let raw = try parameters.require(name)
        guard let decoded = raw.removingPercentEncoding, !decoded.isEmpty else {
            throw APIError(400, "the path parameter \(name) is not valid percent-encoding", code: "invalid_path")
        }
        return decoded
    }
}

/// How an agent proves who it is: agent tokens issued by the admin API
/// (``IssuedTokenAuthenticator``), or Kubernetes projected service-account tokens checked
/// against the cluster (``ServiceAccountAuthenticator``).
public protocol AgentAuthenticator: Sendable {
    /// The agent a bearer credential proves (its id and the service it is bound to), or nil
    /// if this authenticator does not accept this kind of credential. `claimedService` is the
    /// agent's `Sluice-Service` header: authenticators that derive the service from a
    /// cluster identity check it; issued tokens carry their own. An authenticator that
    /// recognises the credential but refuses it throws an ``APIError`` with the status.
    func agent(forBearer credential: String, claimedService: String?) async throws -> AgentRecord?
}

/// Tokens from `POST /v1/admin/agents` (`sat-…`), found by their keyed hash.
public struct IssuedTokenAuthenticator: AgentAuthenticator {
    let store: any Store
    let hasher: KeyHasher
    let cache: AgentTokenCache

    public init(store: any Store, hasher: KeyHasher, cache: AgentTokenCache = AgentTokenCache()) {
        self.store = store
        self.hasher = hasher
        self.cache = cache
    }

    /// The agent a `sat-…` token was issued to, or nil for any other credential.
    public func agent(forBearer credential: String, claimedService: String?) async throws -> AgentRecord? {
        guard credential.hasPrefix("sat-") else { return nil }
        let hash = hasher.hash(credential).encoded
        let generation = try await cache.generation(in: store)
        if let known = cache.agent(tokenHash: hash, generation: generation) { return known }
        let agent = try await store.agent(tokenHash: hash)
        if let agent { cache.remember(agent, tokenHash: hash, generation: generation) }
        return agent
    }
}

/// Agents found by their token, so an agent's calls (a flush, a renewal, a long-poll each
/// cycle) do not each read the `agents` table: a read is a thread hop each way. A token is
/// trusted while the store's agent-token generation (raised by every registration and
/// deletion, on any replica) stays where it was when the token was found. The generation
/// itself is read at most once per ``recheck``, so a token revoked or replaced through
/// another replica is refused here within that; through this process, at once.
public final class AgentTokenCache: Sendable {
    /// How long a generation read from the store is taken as current.
    public static let recheck: Duration = .seconds(1)
    /// How long a found token is kept at most, whatever the generation.
    static let lifetime: Duration = .seconds(600)
    /// Beyond this many tokens the cache starts afresh, so memory stays bounded.
    static let capacity = 100_000

    private struct State {
        var known: [String: (agent: AgentRecord, generation: Int64, foundAt: ContinuousClock.Instant)] = [:]
        var generation: (value: Int64, readAt: ContinuousClock.Instant)?
    }
    private let state = Mutex(State())

    public init() {}

    /// The store's agent-token generation, as read within the last ``recheck``.
    func generation(in store: any Store, now: ContinuousClock.Instant = .now) async throws -> Int64 {
        if let current = state.withLock({ $0.generation }), now - current.readAt < Self.recheck {
            return current.value
        }
        let value = try await store.agentTokensGeneration()
        state.withLock { state in
            // Calls racing here may read in either order: the higher generation is the later.
            if let current = state.generation, current.value > value, now - current.readAt < Self.recheck { return }
            state.generation = (value, now)
        }
        return value
    }

    func agent(tokenHash: String, generation: Int64, now: ContinuousClock.Instant = .now) -> AgentRecord? {
        state.withLock { state in
            guard let entry = state.known[tokenHash] else { return nil }
            guard entry.generation == generation, now - entry.foundAt < Self.lifetime else {
                state.known[tokenHash] = nil
                return nil
            }
            return entry.agent
        }
    }

    func remember(
        _ agent: AgentRecord, tokenHash: String, generation: Int64, now: ContinuousClock.Instant = .now
    ) {
        state.withLock { state in
            if state.known.count >= Self.capacity { state.known.removeAll() }
            state.known[tokenHash] = (agent, generation, now)
        }
    }

    /// Forgets every token of `agentID` (it was revoked or given a new token here) and the
    /// generation, so the next call reads the one the change raised.
    func forget(agentID: String) {
        state.withLock { state in
            state.known = state.known.filter { $0.value.agent.id != agentID }
            state.generation = nil
        }
    }
}

/// `Authorization: Bearer <credential>`, accepted by the first authenticator that knows it.
struct AgentAuthMiddleware: RouterMiddleware {
    typealias Context = ControlContext
    let authenticators: [any AgentAuthenticator]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var agent: AgentRecord?
        if let presented = bearer(request) {
            let claimed = request.headers[.init("sluice-service")!]
            for authenticator in authenticators where agent == nil {
                agent = try await authenticator.agent(forBearer: presented, claimedService: claimed)
            }
        }
        guard let agent else {
            return errorResponse(
                status: 401,
                message:
                    "the agent API needs Authorization: Bearer <agent token> (issued by POST /v1/admin/agents, "
                    + "or a projected service-account token when the control plane accepts those)",
                code: "unauthorized")
        }
        var context = context
        context.agentID = agent.id
        context.agentService = agent.service
        return try await next(request, context)
    }
}

private func bearer(_ request: Request) -> String? {
    guard let value = request.headers[.authorization], value.count > 7, value.prefix(7).lowercased() == "bearer " else {
        return nil
    }
    return String(value.dropFirst(7))
}

/// Equal-length comparison without an early exit; lengths are not secret.
func constantTimeEqual(_ lhs: String, _ rhs: String) -> Bool {
    let left = Array(lhs.utf8)
    let right = Array(rhs.utf8)
    guard left.count == right.count else { return false }
    var difference: UInt8 = 0
    for index in left.indices { difference |= left[index] ^ right[index] }
    return difference == 0
}
