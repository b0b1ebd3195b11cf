import Crypto
import Foundation
import Hummingbird
import Logging
import SluiceKubernetes
import SluicePolicy
import SluiceWire

/// The control plane's HTTP surface: the admin API under `/v1/admin` (admin token only),
/// the agent API under `/v1/agent` (per-agent tokens only), `/openapi.json` and `/healthz`.
/// Neither kind of credential opens the other's routes, and a data-plane virtual key opens
/// none. Errors are JSON: `{"error":{"message","type","code"}}`.
public struct ControlAPI: Sendable {
    public let store: any Store
    public let publisher: PolicyPublisher
    public let budgets: BudgetWatcher?
    public let leases: LeaseBook
    /// Ways for agents to authenticate beyond issued tokens.
    let extraAgentAuthenticators: [any AgentAuthenticator]
    /// Service-account agents accepted and refused, when those are accepted.
    let agentAuthCounters: AgentAuthCounters?
    let adminToken: Secret
    let keyHasher: KeyHasher
    /// Agents found by their issued token, briefly (see ``AgentTokenCache``).
    let agentTokens = AgentTokenCache()
    /// Every policy write passes the agents' compiler first.
    let gate: PolicyGate
    /// Every admin write is logged and kept in the audit trail.
    let audit: AdminAudit
    /// What the sidecar injection webhook adds to pods; nil serves no webhook.
    let injection: InjectionSettings?
    /// Applied usage batches go here too.
    let usageExport: UsageExport
    /// Usage batches arriving together are committed together.
    let usageCommitter: UsageCommitter
    /// What each agent last told this replica (the dashboard's agents page).
    public let activity = AgentActivity()
    /// The dashboard's sessions: logins with the admin or the viewer token.
    let sessions: DashboardSessions
    /// Session cookies are marked Secure (the control plane serves TLS).
    let secureCookies: Bool
    let webhookLogger: Logger
    /// Largest request body read (bytes).
    static let maxBody = 4 << 20

    public init(
        store: any Store, publisher: PolicyPublisher, adminToken: Secret, keyPepper: Secret,
        budgets: BudgetWatcher? = nil,
        agentAuthenticators: [any AgentAuthenticator] = [], agentAuthCounters: AgentAuthCounters? = nil,
        injection: InjectionSettings? = nil, usageExport: UsageExport = UsageExport(),
        viewerToken: Secret? = nil, secureCookies: Bool = false,
        logger: Logger = Logger(label: "sluice.control.admin")
    ) {
        sessions = DashboardSessions(adminToken: adminToken, viewerToken: viewerToken)
        self.secureCookies = secureCookies
        self.usageExport = usageExport
        extraAgentAuthenticators = agentAuthenticators
        self.agentAuthCounters = agentAuthCounters
        self.injection = injection
        var webhookLogger = logger
        webhookLogger[metadataKey: "component"] = "webhook"
        self.webhookLogger = webhookLogger
        self.store = store
        self.publisher = publisher
        self.budgets = budgets
        leases = LeaseBook(store: store)
        usageCommitter = UsageCommitter(store: store)
        publisher.countActiveAgents { [leases] in leases.activeAgents() }
        self.adminToken = adminToken
        keyHasher = KeyHasher(pepper: keyPepper)
        gate = PolicyGate(keyPepper: keyPepper)
        audit = AdminAudit(store: store, publisher: publisher, logger: logger)
    }

    /// Every route of the control plane (admin, agent, settings, fleet, probes, `/openapi.json`)
    /// with its authentication middleware.
    public func router() -> Router<ControlContext> {
        let router = Router(context: ControlContext.self)
        router.add(middleware: ErrorMiddleware())
        router.get("/healthz") { _, _ in try jsonResponse(["status": "ok"]) }
        // Ready when the store answers: a replica that lost its database leaves the Service.
        let store = self.store
        router.get("/readyz") { _, context in
            do {
                _ = try await store.policyVersion()
                return try jsonResponse(["status": "ready"])
            } catch {
                context.logger.warning("not ready: the store does not answer", metadata: ["error": "\(error)"])
                return try jsonResponse(["status": "store_unavailable"], status: .serviceUnavailable)
            }
        }
        router.addRoutes(adminRoutes(), atPath: "/v1/admin")
        router.addRoutes(agentRoutes(), atPath: "/v1/agent")
        router.addRoutes(liteLLMRoutes())
        if let injection { addWebhookRoutes(to: router, settings: injection) }
        // The document is built from the routes just added, so the two cannot drift.
        let served = router.routes.map { (method: $0.method.rawValue, path: $0.path.description) }
        let document = OpenAPIDocument.json(for: served + [(method: "GET", path: "/openapi.json")])
        router.get("/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: document)))
        }
        // After the document: the dashboard's HTML pages are no part of the API.
        addDashboardRoutes(to: router)
        return router
    }

    /// `/v1/admin`, for the admin token only: policy entities, keys, settings, usage,
    /// agents and the audit trail.
    func adminRoutes() -> RouteCollection<ControlContext> {
        let admin = RouteCollection(context: ControlContext.self).add(
            middleware: AdminAuthMiddleware(token: adminToken))
        entityRoutes(
            admin, collection: "teams", items: ["teams/:name"], address: { try $0.pathParameter("name") }, kind: .team,
            TeamDocument.self, name: { $0.name }, wrap: Entity.team,
            unwrap: { if case .team(let team) = $0 { team } else { nil } })
        entityRoutes(
            admin, collection: "projects", items: ["projects/:name"], address: { try $0.pathParameter("name") },
            kind: .project,
            ProjectDocument.self, name: { $0.name }, wrap: Entity.project,
            unwrap: { if case .project(let project) = $0 { project } else { nil } })
        entityRoutes(
            admin, collection: "models", items: ["models/:alias"], address: { try $0.pathParameter("alias") },
            kind: .model,
            ModelDocument.self, name: { $0.alias }, wrap: Entity.model,
            unwrap: { if case .model(let model) = $0 { model } else { nil } })
        // Services are named `namespace/service`, so their paths have two segments; the
        // catch-all service `*` has one (`services/*`, or `%2A`).
        entityRoutes(
            admin, collection: "services", items: ["services/:namespace/:service", "services/:namespace"],
            address: { context in
                let first = try context.pathParameter("namespace")
                guard context.parameters.get("service") != nil else { return first }
                return "\(first)/\(try context.pathParameter("service"))"
            }, kind: .service,
            ServiceDocument.self, name: { $0.name }, wrap: Entity.service,
            unwrap: { if case .service(let service) = $0 { service } else { nil } })
        entityRoutes(
            admin, collection: "end-users", items: ["end-users/:name"], address: { try $0.pathParameter("name") },
            kind: .endUser,
            EndUserDocument.self, name: { $0.name }, wrap: Entity.endUser,
            unwrap: { if case .endUser(let endUser) = $0 { endUser } else { nil } })
        keyRoutes(admin)
        settingsRoutes(admin)
        fleetRoutes(admin)
        return admin
    }

    /// The fleet settings: read, replace, merge-patch; every write through the gate.
    private func settingsRoutes(_ admin: RouteCollection<ControlContext>) {
        let (store, gate, audit) = (self.store, self.gate, self.audit)
        admin.get("settings") { _, _ in try jsonResponse(try await store.settings()) }
        admin.put("settings") { request, context in
            let settings = try await decode(SettingsDocument.self, request, context)
            _ = try await gate.editSettings(in: store) { _ in settings }
            await audit.changed(request, "replace", "settings", "settings")
            return try jsonResponse(settings)
        }
        admin.patch("settings") { request, context in
            let patch = try await readBody(request)
            let settings = try await gate.editSettings(in: store) { try MergePatch.apply(patch, to: $0) }
            await audit.changed(request, "patch", "settings", "settings", fields: AdminAudit.fieldNames(patch))
            return try jsonResponse(settings)
        }
    }

    /// Usage, agents (their tokens) and the admin audit trail.
    private func fleetRoutes(_ admin: RouteCollection<ControlContext>) {
        let (store, audit, keyHasher, agentTokens) = (self.store, self.audit, self.keyHasher, self.agentTokens)
        admin.get("usage") { request, _ in try jsonResponse(try await UsageParameters.answer(request, store: store)) }
        // What this replica's usage exporters have sent, dropped and given up (no other
        // metrics endpoint exists on the control plane).
        let usageExport = self.usageExport
        admin.get("usage/export") { _, _ in try jsonResponse(usageExport.status) }
        admin.post("agents") { request, context in
            let body = try await decode(AgentRegistration.self, request, context)
            if let problem = body.problem { throw APIError(400, problem, code: "invalid_name") }
            var generator = SystemRandomNumberGenerator()
            let token = "sat-" + VirtualKey.generate(using: &generator).dropFirst(VirtualKey.prefix.count)
            try await store.registerAgent(id: body.id, tokenHash: keyHasher.hash(token).encoded, service: body.service)
            agentTokens.forget(agentID: body.id)
            await audit.changed(
                request, "register", "agent", body.id, fields: body.service == nil ? [] : ["service"], policy: false)
            var answer = ["id": body.id, "token": token]
            answer["service"] = body.service
            return try jsonResponse(answer, status: .created)
        }
        admin.get("agents") { _, _ in try jsonResponse(try await store.agents()) }
        let counters = agentAuthCounters
        admin.get("agent-auth") { _, _ in
            guard let counters else {
                throw APIError(404, "this control plane does not accept service-account tokens", code: "not_found")
            }
            return try jsonResponse(AgentAuthReport(accepted: counters.accepted, refused: counters.refused))
        }
        admin.delete("agents/:id") { request, context in
            let id = try context.pathParameter("id")
            guard try await store.deleteAgent(id: id) else {
                throw APIError(404, "no agent \(Identifier.quoted(id))", code: "not_found")
            }
            agentTokens.forget(agentID: id)
            await audit.changed(request, "revoke", "agent", id, policy: false)
            return Response(status: .noContent)
        }
        admin.get("audit") { request, _ in
            let parameters = request.uri.queryParameters
            let now = Int64(Date().timeIntervalSince1970)
            let since = try parameters.get("since").map { try Since.start($0, now: now) } ?? now - 86_400
            let limit = Int(parameters.get("limit") ?? "1000") ?? 0
            guard (1...10_000).contains(limit) else {
                throw APIError(400, "limit must be 1 to 10000", code: "invalid_limit")
            }
            return try jsonResponse(try await store.adminChanges(since: since, limit: limit))
        }

    }

    /// `/v1/agent`, for agent tokens only: the signed policy bundle, usage batches, leases.
    func agentRoutes() -> RouteCollection<ControlContext> {
        let (store, leases, budgets, publisher) = (self.store, self.leases, self.budgets, self.publisher)
        let (usageExport, activity, usageCommitter) = (self.usageExport, self.activity, self.usageCommitter)
        let agent = RouteCollection(context: ControlContext.self).add(
            middleware: AgentAuthMiddleware(
                authenticators: [IssuedTokenAuthenticator(store: store, hasher: keyHasher, cache: agentTokens)]
                    + extraAgentAuthenticators))
        agent.get("policy") { request, context in
            var response = try await policy(request, scopedTo: context.agentService)
            // The agent learns the id to tag its usage batches with from here.
            if let id = context.agentID {
                response.headers[.init("sluice-agent-id")!] = id
                if let version = response.headers[.eTag].flatMap(Self.version(fromTag:)) {
                    activity.policyRequested(
                        agentID: id, service: context.agentService, version: version, now: unixNow())
                }
            }
            return response
        }
        agent.post("usage") { request, context in
            var batch = try await decode(UsageBatch.self, request, context)
            guard let agentID = context.agentID, batch.agentID == agentID else {
                throw APIError(403, "a batch may only carry the authenticated agent's own id", code: "agent_mismatch")
            }
            // Usage belongs to the service the credential proves, whatever the agent's own
            // configuration called it.
            if let service = context.agentService {
                for index in batch.deltas.indices { batch.deltas[index].service = service }
            }
            // A renewal riding on the batch is answered after the usage is applied, so a
            // quota's share counts this batch. It never holds the usage up: a renewal that
            // fails is left out of the answer, and the agent renews on its own
            // (`POST /v1/agent/leases`), which says why.
            let renewal = batch.leases
            batch.leases = nil
            var ack = try await usageCommitter.apply(batch)
            activity.usageArrived(
                agentID: agentID, sequence: batch.sequence,
                backlog: request.headers[.init("sluice-spool-backlog")!].flatMap { Int($0) }, now: unixNow())
            if !ack.duplicate { usageExport.export(batch) }
            if !ack.duplicate { leases.usageArrived() }
            if !ack.duplicate, let budgets, await budgets.usageArrived() { publisher.policyChanged() }
            if let renewal {
                do {
                    let answer = try await leases.renew(agentID: agentID, request: renewal)
                    activity.leased(agentID: agentID, grants: answer.grants, now: unixNow())
                    ack.leases = answer
                } catch {
                    context.logger.warning(
                        "lease renewal with a usage batch failed",
                        metadata: ["agent": "\(agentID)", "error": "\(error)"])
                }
            }
            return try jsonResponse(ack)
        }
        agent.post("leases") { request, context in
            let renewal = try await decode(LeaseRequest.self, request, context)
            guard let agentID = context.agentID else {
                throw APIError(403, "no agent identity", code: "agent_mismatch")
            }
            do {
                let answer = try await leases.renew(agentID: agentID, request: renewal)
                activity.leased(agentID: agentID, grants: answer.grants, now: unixNow())
                return try jsonResponse(answer)
            } catch let error as WireError {
                throw APIError(400, error.message, code: "invalid_body")
            }
        }
        return agent
    }

    // MARK: - Agent API

    /// The signed bundle; `If-None-Match` with the current version's tag answers 304,
    /// after waiting up to `?wait=` seconds (at most 60) for a newer version.
    private func policy(_ request: Request, scopedTo service: String?) async throws -> Response {
        let known = request.headers[.ifNoneMatch].flatMap(Self.version(fromTag:))
        let wait = min(60, max(0, Int(request.uri.queryParameters.get("wait") ?? "0") ?? 0))
        // Only an agent holding exactly the current version waits: one ahead of this store
        // (a restored or replaced database) gets the bundle at once, and refuses it as a
        // rollback rather than being told its newer policy is current.
        if let known, wait > 0, try await publisher.waitWhileVersion(is: known, timeout: .seconds(wait)) == known {
            // Nothing changed while waiting: the answer needs no bundle.
            return Response(status: .notModified, headers: [.eTag: "\"v\(known)\""])
        }
        let (version, body) = try await publisher.bundle(scopedTo: service)
        let tag = "\"v\(version)\""
        if let known, known == version {
            return Response(status: .notModified, headers: [.eTag: tag])
        }
        return Response(
            status: .ok, headers: [.contentType: "application/json", .eTag: tag, .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func version(fromTag tag: String) -> Int64? {
        var text = Substring(tag)
        if text.hasPrefix("W/") { text = text.dropFirst(2) }
        guard text.hasPrefix("\"v"), text.hasSuffix("\"") else { return nil }
        return Int64(text.dropFirst(2).dropLast())
    }

    // MARK: - Entities

    /// Create, list, get, replace, patch and delete for one kind of entity. `items` are the
    /// routes of one entity and `address` reads its name from their parameters.
    private func entityRoutes<Document: Codable & Sendable>(
        _ group: RouteCollection<ControlContext>, collection: String, items: [String],
        address: @escaping @Sendable (ControlContext) throws -> String,
        kind: EntityKind, _ type: Document.Type,
        name: @escaping @Sendable (Document) -> String, wrap: @escaping @Sendable (Document) -> Entity,
        unwrap: @escaping @Sendable (Entity) -> Document?
    ) {
        let store = self.store
        let gate = self.gate
        let audit = self.audit
        let noun = kind.rawValue
        group.get(RouterPath(collection)) { _, _ in try jsonResponse(try await store.entities(kind).map(Self.payload)) }
        group.post(RouterPath(collection)) { request, context in
            let document = try await decode(Document.self, request, context)
            let entity = wrap(document)
            try await gate.put(entity, mode: .create, in: store)
            await audit.changed(request, "create", noun, name(document))
            return try jsonResponse(Self.payload(entity), status: .created)
        }
        for item in items {
            group.get(RouterPath(item)) { _, context in
                let key = try address(context)
                guard let entity = try await store.entity(kind, name: key) else {
                    throw APIError(404, "no \(noun) \(Identifier.quoted(key))", code: "not_found")
                }
                return try jsonResponse(Self.payload(entity))
            }
            group.put(RouterPath(item)) { request, context in
                let key = try address(context)
                let document = try await decode(Document.self, request, context)
                guard name(document) == key else {
                    throw APIError(
                        400, "the body names \(Identifier.quoted(name(document))), the path \(Identifier.quoted(key))",
                        code: "name_mismatch")
                }
                let entity = wrap(document)
                try await gate.put(entity, mode: .update, in: store)
                await audit.changed(request, "replace", noun, key)
                return try jsonResponse(Self.payload(entity))
            }
            group.patch(RouterPath(item)) { request, context in
                let key = try address(context)
                let patch = try await readBody(request)
                let entity = try await gate.edit(kind, key, in: store) { stored in
                    guard let current = unwrap(stored) else { preconditionFailure("an entity of another kind") }
                    let document = try MergePatch.apply(patch, to: current)
                    guard name(document) == key else {
                        throw APIError(
                            400, "a patch cannot rename \(Identifier.quoted(key)); create the new one and delete this",
                            code: "name_mismatch")
                    }
                    return wrap(document)
                }
                await audit.changed(request, "patch", noun, key, fields: AdminAudit.fieldNames(patch))
                return try jsonResponse(Self.payload(entity))
            }
            group.delete(RouterPath(item)) { request, context in
                let key = try address(context)
                try await gate.delete(kind, key, in: store)
                await audit.changed(request, "delete", noun, key)
                return Response(status: .noContent)
            }
        }
    }

    static func payload(_ entity: Entity) -> AnyEncodable {
        switch entity {
        case .team(let document): AnyEncodable(document)
        case .project(let document): AnyEncodable(document)
        case .service(let document): AnyEncodable(document)
        case .model(let document): AnyEncodable(document)
        case .key(let document): AnyEncodable(KeyView(document))
        case .endUser(let document): AnyEncodable(document)
        }
    }
}

/// Wraps any Encodable so lists of mixed documents can be encoded.
struct AnyEncodable: Encodable, Sendable {
    private let encodeValue: @Sendable (any Encoder) throws -> Void

    init<Value: Encodable & Sendable>(_ value: Value) {
        encodeValue = { try value.encode(to: $0) }
    }

    func encode(to encoder: any Encoder) throws { try encodeValue(encoder) }
}

/// `GET /v1/admin/agent-auth`: service-account agents accepted and refused (by reason)
/// since the control plane started.
struct AgentAuthReport: Codable, Sendable {
    var accepted: Int
    var refused: [String: Int]
}

struct AgentRegistration: Codable, Sendable {
    var id: String
    /// Binds the token to one service: its bundles then hold only what that service can use.
    var service: String?

    /// Agent ids name pods (`shop/checkout/pod-1`), so they may hold `/`; nothing that
    /// would need quoting in a log line or a URL segment once percent-encoded.
    var problem: String? {
        let bytes = Array(id.utf8)
        let allowed = bytes.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x61...0x7A).contains(byte) || (0x41...0x5A).contains(byte)
                || Array("._-/:@".utf8).contains(byte)
        }
        guard (1...200).contains(bytes.count), allowed else {
            return "id must be 1 to 200 bytes of A-Z a-z 0-9 . _ - / : @"
        }
        if let service, service == "*" || !Identifier.isServiceName(service) {
            return "service \(Identifier.quoted(service)) must be one namespace/service (lower-case DNS labels)"
        }
        return nil
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, service
    }

    init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        service = try container.decodeIfPresent(String.self, forKey: .service)
    }
}

/// An error the API answers with its own status and code.
struct APIError: Error {
    var status: Int
    var message: String
    var code: String

    init(_ status: Int, _ message: String, code: String) {
        self.status = status
        self.message = message
        self.code = code
    }
}

/// The request body, bounded by `ControlAPI.maxBody` (413 beyond it).
func readBody(_ request: Request) async throws -> Data {
    var request = request
    do {
        return Data(try await request.collectBody(upTo: ControlAPI.maxBody).readableBytesView)
    } catch {
        throw APIError(413, "the body exceeds \(ControlAPI.maxBody) bytes", code: "request_too_large")
    }
}

/// Reads a JSON body (bounded) into `type`, with a clear 400 on malformed input.
func decode<Value: Decodable>(_ type: Value.Type, _ request: Request, _ context: ControlContext) async throws -> Value {
    let body = try await readBody(request)
    do {
        return try WireCoding.decodeStrict(Value.self, from: body)
    } catch let error as DecodingError {
        throw APIError(
            400, "the body is not a valid \(Value.self): \(WireCoding.describe(error))", code: "invalid_body")
    } catch {
        throw APIError(400, "the body is not valid JSON", code: "invalid_json")
    }
}

func jsonResponse<Value: Encodable>(_ value: Value, status: HTTPResponse.Status = .ok) throws -> Response {
    let body = try WireCoding.encoder.encode(value)
    return Response(
        status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
}

/// Unix seconds now.
func unixNow() -> Int64 { Int64(Date().timeIntervalSince1970) }
