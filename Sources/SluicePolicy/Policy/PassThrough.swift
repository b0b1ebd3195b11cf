/// The provider endpoints Sluice does not meter, by path prefix (whole segments), with what
/// they are and which provider speaks them. The agent refuses them all
/// (`endpoint_not_metered`) unless a ``PassThrough`` lets a caller through to one.
public enum ProviderEndpointFamily {
    public struct Entry: Sendable {
        public let prefix: String
        public let name: String
        /// The provider whose deployments serve it; nil for paths that can never be passed
        /// through (Azure's own deployment paths name deployments the policy does not map).
        public let dialect: ProviderDialect?
    }

    /// Longer prefixes come first where one extends another.
    public static let all: [Entry] = [
        Entry(prefix: "/v1/messages/batches", name: "Anthropic's Message Batches API", dialect: .anthropic),
        Entry(prefix: "/v1/messages/count_tokens", name: "Anthropic's token counting", dialect: .anthropic),
        Entry(prefix: "/v1/chat/completions", name: "stored chat completions", dialect: .openAI),
        Entry(prefix: "/v1/batches", name: "the Batch API", dialect: .openAI),
        Entry(prefix: "/v1/files", name: "the Files API", dialect: .openAI),
        Entry(prefix: "/v1/uploads", name: "the Uploads API", dialect: .openAI),
        Entry(prefix: "/v1/realtime", name: "the Realtime API", dialect: .openAI),
        Entry(prefix: "/v1/assistants", name: "the Assistants API", dialect: .openAI),
        Entry(prefix: "/v1/threads", name: "the Assistants API's threads", dialect: .openAI),
        Entry(prefix: "/v1/vector_stores", name: "vector stores", dialect: .openAI),
        Entry(prefix: "/v1/fine_tuning", name: "fine-tuning", dialect: .openAI),
        Entry(prefix: "/v1/fine-tunes", name: "fine-tuning", dialect: .openAI),
        Entry(prefix: "/v1/images", name: "image generation", dialect: .openAI),
        Entry(prefix: "/v1/audio", name: "the Audio API", dialect: .openAI),
        Entry(prefix: "/v1/moderations", name: "moderations", dialect: .openAI),
        Entry(prefix: "/v1/responses", name: "stored responses", dialect: .openAI),
        Entry(prefix: "/v1/conversations", name: "the Conversations API", dialect: .openAI),
        Entry(prefix: "/v1/containers", name: "containers", dialect: .openAI),
        Entry(prefix: "/v1/evals", name: "evals", dialect: .openAI),
        Entry(prefix: "/v1/videos", name: "video generation", dialect: .openAI),
        Entry(prefix: "/v1/skills", name: "Anthropic's skills", dialect: .anthropic),
        Entry(prefix: "/v1beta/models", name: "Gemini's own API", dialect: .gemini),
        Entry(prefix: "/v1beta/files", name: "Gemini's Files API", dialect: .gemini),
        Entry(prefix: "/v1beta/cachedContents", name: "Gemini's context caching", dialect: .gemini),
        Entry(prefix: "/openai/deployments", name: "Azure OpenAI's own paths", dialect: nil),
    ]

    /// The family `path` lies in, if any.
    public static func family(of path: String) -> Entry? {
        all.first { isPath(path, under: $0.prefix) }
    }

    /// Whether `path` is `prefix` or below it: `/v1/files/x` is under `/v1/files`,
    /// `/v1/filesx` is not.
    public static func isPath(_ path: String, under prefix: String) -> Bool {
        guard path.hasPrefix(prefix) else { return false }
        let rest = path.utf8.dropFirst(prefix.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "/")
    }
}

/// An explicit pass-through: callers in its scopes may reach provider endpoints Sluice does
/// not meter (files, batches, images, audio, …), forwarded as they are to a deployment of
/// one alias. Each call is authenticated, checked against the alias's model rules, counted
/// against request limits and budgets, priced when the answer reports usage, and audited.
public struct PassThrough: Sendable {
    public var name: String
    /// Path prefixes (whole segments), each inside one ``ProviderEndpointFamily``.
    public var paths: [String]
    /// Methods allowed (upper case).
    public var methods: Set<String>
    /// The alias whose deployment, credential and prices the calls use.
    public var alias: String
    /// The provider the paths belong to: the alias's deployment of this dialect serves them.
    public var dialect: ProviderDialect
    public var scopes: CallerScopes

    public init(
        name: String, paths: [String], methods: Set<String>, alias: String, dialect: ProviderDialect,
        scopes: CallerScopes
    ) {
        self.name = name
        self.paths = paths
        self.methods = methods
        self.alias = alias
        self.dialect = dialect
        self.scopes = scopes
    }

    /// The methods a pass-through may allow, and those it allows when it names none.
    public static let allowedMethods: Set<String> = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    public static let defaultMethods: Set<String> = ["GET", "POST", "DELETE"]

    /// Whether this entry covers `method` on `path` (its query left out).
    public func covers(method: String, path: String) -> Bool {
        methods.contains(method) && paths.contains { ProviderEndpointFamily.isPath(path, under: $0) }
    }
}
