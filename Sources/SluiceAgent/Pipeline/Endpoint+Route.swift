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
    case notFound

    init(method: String, uri: String) {
        let path = Self.path(of: uri)
        if let endpoint = OpenAIEndpoint(rawValue: path) {
            self = method == "POST" ? .openAI(endpoint) : .methodNotAllowed(allowed: "POST")
            return
        }
        switch path {
        case "/v1/messages": self = method == "POST" ? .anthropicMessages : .methodNotAllowed(allowed: "POST")
        case "/v1/models": self = method == "GET" ? .listModels : .methodNotAllowed(allowed: "GET")
        case "/healthz": self = method == "GET" ? .health : .methodNotAllowed(allowed: "GET")
        case "/readyz": self = method == "GET" ? .ready : .methodNotAllowed(allowed: "GET")
        default: self = .notFound
        }
    }

    /// The URI's path, without its query.
    static func path(of uri: String) -> String {
        uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
    }

    /// The dialect errors for `uri` are given in: Anthropic's SDKs read their own shape,
    /// refusals of the Messages path (wrong method, body too large) included.
    static func callerDialect(of uri: String) -> CallerDialect {
        path(of: uri) == "/v1/messages" ? .anthropic : .openAI
    }
}
