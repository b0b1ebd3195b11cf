import SluiceAPI
import SluicePolicy

/// Part of step 1 (route): what the agent refuses because it cannot count it. A budget
/// means something only if no call can get around it, so every provider endpoint the agent
/// does not meter (batches, files, the Realtime API's WebSockets, assistants, fine-tuning,
/// images, audio, anything unknown) is refused with `endpoint_not_metered`, naming it,
/// rather than forwarded uncounted.
struct UnmeteredEndpoint: Equatable {
    /// The request's path (query left out), cut to a length safe to quote.
    var path: String
    /// What the path is, when it is a provider endpoint Sluice knows of.
    var family: String?
    /// The request asked to upgrade the connection (a WebSocket, as the Realtime API uses).
    var upgrade: Bool

    init(path: String, upgrade: Bool) {
        self.path = String(path.prefix(128))
        self.upgrade = upgrade
        // A metered path (upgraded) is not a family of its own: `/v1/chat/completions`
        // itself is counted; only what lies below it (stored completions) is not.
        family = AgentRoute.metered(path) ? nil : ProviderEndpointFamily.family(of: path)?.name
    }

    /// Whether `path` is `prefix` or below it (see ``ProviderEndpointFamily/isPath(_:under:)``).
    static func path(_ path: String, isUnder prefix: String) -> Bool {
        ProviderEndpointFamily.isPath(path, under: prefix)
    }

    /// The refusal: 404 for a path the agent does not serve, 403 for an upgrade of a path
    /// it does (the call exists, but not over a connection the agent could count).
    var error: OpenAIError {
        let what = family.map { "\(path) (\($0))" } ?? path
        let message: String
        let status: Int
        if upgrade {
            status = AgentRoute.metered(path) ? 403 : 404
            message =
                "connection upgrades (WebSockets, as the Realtime API uses) are not metered by Sluice: \(what)"
                + " is not forwarded"
        } else if let family {
            status = 404
            message =
                "\(path) (\(family)) is not metered by Sluice, so it is not forwarded: its spend could not be"
                + " counted against budgets"
        } else {
            status = 404
            message =
                "\(path) is not an endpoint Sluice meters (/v1/chat/completions, /v1/completions,"
                + " /v1/embeddings, /v1/messages, /v1/models); it is not forwarded"
        }
        return OpenAIError(
            status: status, message: message, type: "invalid_request_error", code: "endpoint_not_metered")
    }
}
