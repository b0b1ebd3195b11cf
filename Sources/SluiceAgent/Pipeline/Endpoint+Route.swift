import SluiceAPI

/// What an inbound request asks for, from its method and path alone (query ignored).
/// Matching is on the exact path: no normalisation that could make two paths look alike.
enum AgentRoute: Equatable {
    case openAI(OpenAIEndpoint)
    /// Anthropic's Messages API, for callers using Anthropic's SDKs.
    case anthropicMessages
    case listModels
    case health
    case ready
    case methodNotAllowed(allowed: String)
    /// Anything else, or a connection upgrade: refused, never forwarded uncounted.
    case notMetered(UnmeteredEndpoint)

    /// - Parameter upgrade: the request carries an `Upgrade` header (a WebSocket handshake).
    init(method: String, uri: String, upgrade: Bool = false) {
        let path = Self.path(of: uri)
        if upgrade {
            self = .notMetered(UnmeteredEndpoint(path: path, upgrade: true))
            return
        }
        if let endpoint = OpenAIEndpoint(rawValue: path) {
            self = method == "POST" ? .openAI(endpoint) : .methodNotAllowed(allowed: "POST")
            return
        }
        switch path {
        case "/v1/messages": self = method == "POST" ? .anthropicMessages : .methodNotAllowed(allowed: "POST")
        case "/v1/models": self = method == "GET" ? .listModels : .methodNotAllowed(allowed: "GET")
        case "/healthz": self = method == "GET" ? .health : .methodNotAllowed(allowed: "GET")
        case "/readyz": self = method == "GET" ? .ready : .methodNotAllowed(allowed: "GET")
        default: self = .notMetered(UnmeteredEndpoint(path: path, upgrade: false))
        }
    }

    /// Whether `path` is one the agent serves and counts.
    static func metered(_ path: String) -> Bool {
        OpenAIEndpoint(rawValue: path) != nil || path == "/v1/messages" || path == "/v1/models"
    }

    /// The URI's path, without its query.
    static func path(of uri: String) -> String {
        // A byte search, not a split: this runs on every request.
        guard let query = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return uri }
        return String(uri[..<query])
    }

    /// The dialect errors for `uri` are given in: Anthropic's SDKs read their own shape,
    /// refusals of the Messages path (wrong method, body too large) included.
    static func callerDialect(of uri: String) -> CallerDialect {
        UnmeteredEndpoint.path(path(of: uri), isUnder: "/v1/messages") ? .anthropic : .openAI
    }
}
