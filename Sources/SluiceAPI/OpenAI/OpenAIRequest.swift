/// The OpenAI endpoints the agent serves.
public enum OpenAIEndpoint: String, Sendable, CaseIterable {
    case chatCompletions = "/v1/chat/completions"
    case completions = "/v1/completions"
    case embeddings = "/v1/embeddings"
    /// OpenAI's Responses API, passed through to OpenAI and Azure deployments.
    case responses = "/v1/responses"

    /// The path below the provider's base URL (which already ends in `/v1` for OpenAI).
    public var upstreamSuffix: String {
        switch self {
        case .chatCompletions: "/chat/completions"
        case .completions: "/completions"
        case .embeddings: "/embeddings"
        case .responses: "/responses"
        }
    }

    /// Whether the endpoint can stream (and so can carry `stream_options`).
    public var canStream: Bool { self != .embeddings }
}

/// Why a request body was refused before anything was sent upstream (400).
public struct RequestBodyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// The OpenAI `param` the error is about, when there is one.
    public var param: String?
    public var code: String

    public init(_ message: String, param: String? = nil, code: String) {
        self.message = message
        self.param = param
        self.code = code
    }

    public var description: String { message }
}

/// An inbound OpenAI request body: validated once, then forwarded as the caller's own bytes
/// with only the fields Sluice must change spliced in.
public struct OpenAIRequest: Sendable {
    /// Body fields that would let a caller choose the upstream host or credentials.
    /// Callers never choose those: they come from policy only.
    public static let forbiddenFields: Set<String> = [
        "api_base", "base_url", "api_key", "user_config", "extra_headers", "custom_llm_provider",
        "azure_endpoint", "api_version", "litellm_params",
    ]

    public let endpoint: OpenAIEndpoint
    public let body: [UInt8]
    public let members: [JSONMember]
    /// The alias the caller asked for.
    public let model: String
    public let stream: Bool
    /// The caller set `stream_options.include_usage: true` itself.
    public let callerRequestedUsage: Bool
    /// The end user named by the body's `user` field, if any.
    public let user: String?
    /// The most the answer may use: `max_completion_tokens` or `max_tokens`, times `n`
    /// (for the Responses API, `max_output_tokens`). Nil when the caller set no cap.
    public let maxOutputTokens: Int?

    /// Validates `body` for `endpoint`.
    public init(endpoint: OpenAIEndpoint, body: [UInt8], maxDepth: Int = 64) throws(RequestBodyError) {
        self.endpoint = endpoint
        self.body = body
        let scanned = body.withUnsafeBytes { bytes in
            Result { () throws(JSONScanError) in try JSONScanner.scanObject(bytes, maxDepth: maxDepth) }
        }
        let members: [JSONMember]
        switch scanned {
        case .success(let found):
            members = found
        case .failure(let error):
            switch error.reason {
            case .tooDeep: throw RequestBodyError(error.description, code: "json_too_deep")
            case .duplicateKey: throw RequestBodyError(error.description, code: "duplicate_key")
            default: throw RequestBodyError(error.description, code: "invalid_json")
            }
        }
        self.members = members
        if let forbidden = members.first(where: { Self.forbiddenFields.contains($0.key) }) {
            throw RequestBodyError(
                "the field \"\(forbidden.key)\" is not accepted: upstreams and credentials come from policy",
                param: forbidden.key, code: "forbidden_field")
        }
        guard let modelMember = members.first(where: { $0.key == "model" }) else {
            throw RequestBodyError("the body has no \"model\" field", param: "model", code: "missing_model")
        }
        guard modelMember.kind == .string,
            let model = body.withUnsafeBytes({ JSONScanner.decodeString(at: modelMember.valueRange, in: $0) }),
            !model.isEmpty
        else {
            throw RequestBodyError("\"model\" must be a non-empty string", param: "model", code: "invalid_model")
        }
        self.model = model

        var stream = false
        if let streamMember = members.first(where: { $0.key == "stream" }) {
            switch streamMember.kind {
            case .bool: stream = body[streamMember.valueRange.lowerBound] == UInt8(ascii: "t")
            case .null: stream = false
            default: throw RequestBodyError("\"stream\" must be a boolean", param: "stream", code: "invalid_stream")
            }
        }
        if stream, !endpoint.canStream {
            throw RequestBodyError("\(endpoint.rawValue) does not stream", param: "stream", code: "invalid_stream")
        }
        self.stream = stream

        var requestedUsage = false
        if let options = members.first(where: { $0.key == "stream_options" }), options.kind == .object {
            let inner = body.withUnsafeBytes { JSONScanner.members(ofObjectAt: options.valueRange, in: $0) }
            if let include = inner.first(where: { $0.key == "include_usage" }), include.kind == .bool {
                requestedUsage = body[include.valueRange.lowerBound] == UInt8(ascii: "t")
            }
        }
        self.callerRequestedUsage = requestedUsage

        if let userMember = members.first(where: { $0.key == "user" }) {
            guard userMember.kind == .string || userMember.kind == .null else {
                throw RequestBodyError("\"user\" must be a string", param: "user", code: "invalid_user")
            }
            self.user = body.withUnsafeBytes { JSONScanner.decodeString(at: userMember.valueRange, in: $0) }
        } else {
            self.user = nil
        }

        func positiveInteger(_ name: String) throws(RequestBodyError) -> Int? {
            guard let member = members.first(where: { $0.key == name }), member.kind != .null else { return nil }
            guard member.kind == .number,
                let value = body.withUnsafeBytes({ JSONScanner.integer(at: member.valueRange, in: $0) }),
                value >= 0, value <= 100_000_000
            else {
                throw RequestBodyError(
                    "\"\(name)\" must be a whole number from 0 to 100000000", param: name, code: "invalid_\(name)")
            }
            return Int(value)
        }
        let newCap = try positiveInteger(endpoint == .responses ? "max_output_tokens" : "max_completion_tokens")
        let oldCap = endpoint == .responses ? nil : try positiveInteger("max_tokens")
        let cap = newCap ?? oldCap
        let choices = try positiveInteger("n") ?? 1
        self.maxOutputTokens = cap.map { $0 * max(1, min(choices, 128)) }
    }

    /// The body's top-level string field `key`, if it is one.
    public func string(_ key: String) -> String? {
        guard let member = members.first(where: { $0.key == key }), member.kind == .string else { return nil }
        return body.withUnsafeBytes { JSONScanner.decodeString(at: member.valueRange, in: $0) }
    }

    /// The text a prompt filter reads: message contents (strings, and the `text` of content
    /// parts) for chat, `prompt` for completions, `input` for embeddings, `instructions` and
    /// `input` (a string, or items whose content parts have `text`) for the Responses API.
    /// Token arrays and images have no text and are skipped.
    ///
    /// Each text is handed to `visit` as UTF-8, until it returns false. An unescaped text is
    /// the body's own bytes, so screening a prompt copies nothing but texts with escapes.
    public func visitPromptTexts(_ visit: (UnsafeRawBufferPointer) -> Bool) {
        body.withUnsafeBytes { bytes in
            var going = true
            func collect(_ range: Range<Int>, _ kind: JSONValueKind, depth: Int) {
                switch kind {
                case .string:
                    going = ValidatedJSON.withStringBytes(at: range, in: bytes, visit) ?? true
                case .array where depth < 3:
                    ValidatedJSON.forEachElement(ofArrayAt: range, in: bytes) { element, kind in
                        collect(element, kind, depth: depth + 1)
                        return going
                    }
                case .object where depth < 3:
                    if let text = ValidatedJSON.value(named: "text", inObjectAt: range, in: bytes) {
                        collect(text.range, text.kind, depth: depth + 1)
                    }
                    if going, let content = ValidatedJSON.value(named: "content", inObjectAt: range, in: bytes) {
                        collect(content.range, content.kind, depth: depth + 1)
                    }
                default:
                    break
                }
            }
            for member in members where going {
                switch (endpoint, member.key) {
                case (.chatCompletions, "messages"):
                    ValidatedJSON.forEachElement(ofArrayAt: member.valueRange, in: bytes) { message, kind in
                        if kind == .object,
                            let content = ValidatedJSON.value(named: "content", inObjectAt: message, in: bytes)
                        {
                            collect(content.range, content.kind, depth: 1)
                        }
                        return going
                    }
                case (.completions, "prompt"), (.embeddings, "input"), (.responses, "instructions"):
                    collect(member.valueRange, member.kind, depth: 1)
                case (.responses, "input"):
                    // Items, then their content, then its parts: one level deeper than chat.
                    collect(member.valueRange, member.kind, depth: -1)
                default:
                    break
                }
            }
        }
    }

    /// The body to send upstream: `model` rewritten to the upstream name, `user` set to
    /// `defaultUser` when the caller named none, and, for chat and completions streams,
    /// `stream_options.include_usage` switched on so usage arrives in the last chunk (a
    /// Responses stream always ends with its usage, and refuses that option).
    /// Every other byte is the caller's.
    public func upstreamBody(model upstreamModel: String, defaultUser: String? = nil) -> [UInt8] {
        var edits: [(range: Range<Int>, replacement: [UInt8])] = []
        if let modelMember = members.first(where: { $0.key == "model" }) {
            var literal: [UInt8] = []
            appendJSONString(upstreamModel, to: &literal)
            edits.append((modelMember.valueRange, literal))
        }
        if let defaultUser, user == nil {
            var literal: [UInt8] = []
            appendJSONString(defaultUser, to: &literal)
            if let userMember = members.first(where: { $0.key == "user" }) {
                edits.append((userMember.valueRange, literal))  // "user": null
            } else {
                let closing = body.lastIndex(of: UInt8(ascii: "}"))!
                edits.append((closing..<closing, Array(",\"user\":".utf8) + literal))
            }
        }
        if stream, !callerRequestedUsage, endpoint != .responses {
            edits.append(contentsOf: includeUsageEdits())
        }
        return body.withUnsafeBytes { splice($0, edits: edits) }
    }

    private func includeUsageEdits() -> [(range: Range<Int>, replacement: [UInt8])] {
        let on = Array("{\"include_usage\":true}".utf8)
        guard let options = members.first(where: { $0.key == "stream_options" }), options.kind == .object else {
            if let options = members.first(where: { $0.key == "stream_options" }) {
                // null (or another non-object): replace it outright.
                return [(options.valueRange, on)]
            }
            // Insert a new member just before the closing brace of the top-level object.
            let closing = body.lastIndex(of: UInt8(ascii: "}"))!
            return [(closing..<closing, Array(",\"stream_options\":".utf8) + on)]
        }
        let inner = body.withUnsafeBytes { JSONScanner.members(ofObjectAt: options.valueRange, in: $0) }
        if let include = inner.first(where: { $0.key == "include_usage" }) {
            return [(include.valueRange, Array("true".utf8))]
        }
        let afterBrace = options.valueRange.lowerBound + 1
        let separator = inner.isEmpty ? "" : ","
        return [(afterBrace..<afterBrace, Array("\"include_usage\":true\(separator)".utf8))]
    }
}

extension Array where Element == UInt8 {
    fileprivate func lastIndex(of byte: UInt8) -> Int? {
        var index = count - 1
        while index >= 0 {
            if self[index] == byte { return index }
            index -= 1
        }
        return nil
    }
}
