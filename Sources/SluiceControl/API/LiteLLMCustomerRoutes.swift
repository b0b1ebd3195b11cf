import Hummingbird
import SluiceAPI
import SluicePolicy
import SluiceWire

/// LiteLLM's `/customer/*`: its customers are Sluice's end users, the `user` a request names.
/// Each is an `end_user` entity carrying limits and a blocked flag, sent to every agent in
/// the policy bundle. Their limits hold per agent (every agent holds the whole limit), as
/// end users' usage is not rolled up fleet-wide; a block holds everywhere.
extension ControlAPI {
    func liteLLMCustomerRoutes(_ routes: RouteCollection<ControlContext>) {
        let (store, gate, audit) = (self.store, self.gate, self.audit)

        routes.post("customer/new") { request, context in
            let body = try await LiteLLMBody(request, context, LiteLLMCustomerFields.known)
            let name = try LiteLLMCustomerFields.name(body)
            var endUser = EndUserDocument(name: name)
            try LiteLLMCustomerFields(body).apply(to: &endUser)
            try await gate.put(.endUser(endUser), mode: .create, in: store)
            await audit.changed(request, "create", "end_user", name, fields: ["litellm"])
            return try jsonResponse(LiteLLMCustomerView(endUser))
        }
        routes.post("customer/update") { request, context in
            let body = try await LiteLLMBody(request, context, LiteLLMCustomerFields.known)
            let name = try LiteLLMCustomerFields.name(body)
            let fields = LiteLLMCustomerFields(body)
            let stored = try await gate.edit(.endUser, name, in: store) { stored in
                guard case .endUser(var endUser) = stored else { preconditionFailure("an entity of another kind") }
                try fields.apply(to: &endUser)
                return .endUser(endUser)
            }
            guard case .endUser(let endUser) = stored else { preconditionFailure("an entity of another kind") }
            await audit.changed(request, "patch", "end_user", name, fields: body.names)
            return try jsonResponse(LiteLLMCustomerView(endUser))
        }
        routes.post("customer/delete") { request, context in
            let body = try await LiteLLMBody(request, context, ["user_ids"])
            let names = try LiteLLMCustomerFields.names(body)
            for name in names {
                try await gate.delete(.endUser, name, in: store)
                await audit.changed(request, "delete", "end_user", name)
            }
            return try jsonResponse(["deleted_customers": names])
        }
        // LiteLLM upserts: an end user not seen yet can be blocked before its first call.
        for (path, blocked) in [("customer/block", true), ("customer/unblock", false)] {
            routes.post(RouterPath(path)) { request, context in
                let body = try await LiteLLMBody(request, context, ["user_ids"])
                var views: [LiteLLMCustomerView] = []
                for name in try LiteLLMCustomerFields.names(body) {
                    let stored = try await gate.editOrCreate(
                        .endUser, name, absent: .endUser(EndUserDocument(name: name)), in: store
                    ) { stored in
                        guard case .endUser(var endUser) = stored else {
                            preconditionFailure("an entity of another kind")
                        }
                        endUser.blocked = blocked
                        return .endUser(endUser)
                    }
                    guard case .endUser(let endUser) = stored else { preconditionFailure("an entity of another kind") }
                    await audit.changed(request, blocked ? "block" : "unblock", "end_user", name, fields: ["blocked"])
                    views.append(LiteLLMCustomerView(endUser))
                }
                return try jsonResponse(["blocked_users": views.filter(\.blocked).map(\.userID)])
            }
        }
        routes.get("customer/info") { request, _ in
            guard let name = request.uri.queryParameters.get("end_user_id") else {
                throw APIError(400, "end_user_id: missing query parameter", code: "missing_end_user")
            }
            guard case .endUser(let endUser) = try await store.entity(.endUser, name: String(name)) else {
                throw APIError(404, "no end user \(Identifier.quoted(String(name)))", code: "not_found")
            }
            return try jsonResponse(LiteLLMCustomerView(endUser))
        }
        routes.get("customer/list") { _, _ in
            let endUsers = try await store.entities(.endUser).compactMap { entity -> LiteLLMCustomerView? in
                guard case .endUser(let endUser) = entity else { return nil }
                return LiteLLMCustomerView(endUser)
            }
            return try jsonResponse(endUsers)
        }
    }
}

/// The fields of `/customer/new` and `/customer/update` Sluice keeps.
struct LiteLLMCustomerFields: Sendable {
    static let known: Set<String> = [
        "user_id", "blocked", "rpm_limit", "tpm_limit", "max_parallel_requests", "max_budget", "budget_duration",
    ]
    let body: LiteLLMBody

    init(_ body: LiteLLMBody) { self.body = body }

    /// `user_id`: the `user` callers send, checked as the agents will read it.
    static func name(_ body: LiteLLMBody) throws -> String {
        let name = try body.requiredString("user_id")
        let problems = PolicyDocument.grammarProblems(endUser: EndUserDocument(name: name))
        if let problem = problems.first { throw APIError(400, "user_id: \(problem.message)", code: "invalid_body") }
        return name
    }

    /// `user_ids`, a non-empty list of names.
    static func names(_ body: LiteLLMBody) throws -> [String] {
        guard let values = body.value("user_ids")?.arrayValue, !values.isEmpty else {
            throw APIError(400, "user_ids: a list of one or more end users", code: "missing_field")
        }
        let names = values.compactMap(\.stringValue)
        guard names.count == values.count else {
            throw APIError(400, "user_ids: every entry is a string", code: "invalid_body")
        }
        return names
    }

    func apply(to endUser: inout EndUserDocument) throws {
        switch body.value("blocked") {
        case nil, .null?: break
        case .bool(let flag)?: endUser.blocked = flag
        default: throw APIError(400, "blocked: expected true or false", code: "invalid_body")
        }
        endUser.limits = try body.limits(applyingTo: endUser.limits) ?? LimitsDocument()
    }
}

/// An end user as LiteLLM shows a customer: its limits under `litellm_budget_table`.
struct LiteLLMCustomerView: Encodable, Sendable {
    struct Budget: Encodable, Sendable {
        var maxBudget: Double?
        var budgetDuration: String?
        var rpmLimit: Int?
        var tpmLimit: Int?
        var maxParallelRequests: Int?

        enum CodingKeys: String, CodingKey {
            case maxBudget = "max_budget"
            case budgetDuration = "budget_duration"
            case rpmLimit = "rpm_limit"
            case tpmLimit = "tpm_limit"
            case maxParallelRequests = "max_parallel_requests"
        }
    }

    var userID: String
    var blocked: Bool
    var budget: Budget?

    init(_ endUser: EndUserDocument) {
        userID = endUser.name
        blocked = endUser.blocked
        let limits = endUser.limits
        guard limits != LimitsDocument() else { return }
        let (maxBudget, duration) = LiteLLMDuration.budget(of: limits)
        budget = Budget(
            maxBudget: maxBudget, budgetDuration: duration, rpmLimit: limits.requestsPerMinute,
            tpmLimit: limits.tokensPerMinute, maxParallelRequests: limits.maxParallelRequests)
    }

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case blocked
        case budget = "litellm_budget_table"
    }
}
