/// One message of a prompt as a guardrail sees it: the role, and the text of its content
/// (text parts joined by a newline; images and other parts are not sent).
public struct GuardrailMessage: Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// Who is calling, as a guardrail is told: ids and names only, never the caller's key.
public struct GuardrailCaller: Sendable, Equatable {
    public var keyID: String?
    public var team: String?
    public var project: String?
    public var service: String
    public var endUser: String?

    public init(keyID: String?, team: String?, project: String?, service: String, endUser: String?) {
        self.keyID = keyID
        self.team = team
        self.project = project
        self.service = service
        self.endUser = endUser
    }
}

/// What a guardrail answered.
public enum GuardrailVerdict: Sendable, Equatable {
    case allow
    case deny(reason: String?)
    /// The prompt's messages as they must be sent instead (same count, same roles).
    case modify(messages: [GuardrailMessage], reason: String?)
}

/// Why a guardrail's answer is not a verdict, or a rewrite could not be applied.
public struct GuardrailExchangeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The exchange with an external guardrail, without I/O: the request body, the verdict read
/// from the answer, and a modify applied to the caller's request. The wire format is
/// Sluice's own, documented in `docs/guardrails.md`, so any HTTP service (or a small adapter
/// in front of a vendor's) can be a guardrail.
public enum GuardrailExchange {
    /// The most bytes of a reason kept (from a deny or modify); the rest is cut.
    public static let maximumReasonBytes = 256

    /// `POST` body sent to a guardrail: the prompt stage's, or with `completion` (the
    /// answer's text, and whether it was cut to the size Sluice keeps) the completion stage's.
    public static func requestBody(
        guardrail: String, requestID: String, model: String, endpoint: OpenAIEndpoint, caller: GuardrailCaller,
        messages: [GuardrailMessage], completion: (text: String, truncated: Bool)? = nil
    ) -> [UInt8] {
        func optional(_ text: String?) -> JSONValue { text.map { .string($0) } ?? .null }
        var members: [(key: String, value: JSONValue)] = [
            ("guardrail", .string(guardrail)),
            ("stage", .string(completion == nil ? "prompt" : "completion")),
            ("request_id", .string(requestID)),
            ("endpoint", .string(endpoint.rawValue)),
            ("model", .string(model)),
            (
                "caller",
                .object([
                    ("key_id", optional(caller.keyID)), ("team", optional(caller.team)),
                    ("project", optional(caller.project)), ("service", .string(caller.service)),
                    ("end_user", optional(caller.endUser)),
                ])
            ),
            (
                "messages",
                .array(messages.map { .object([("role", .string($0.role)), ("content", .string($0.content))]) })
            ),
        ]
        if let completion {
            members.append(("completion", .string(completion.text)))
            members.append(("completion_truncated", .bool(completion.truncated)))
        }
        return JSONValue.object(members).bytes
    }

    /// Reads a guardrail's answer: `{"action": "allow" | "deny" | "modify", "reason": …,
    /// "messages": […]}`. A modify must give back as many messages as were sent, with the
    /// same roles; anything else is not a verdict. Fields it does not know are ignored, so a
    /// guardrail may say more than Sluice reads. At the completion stage (`sent` nil) a
    /// modify needs no messages: it is never applied.
    public static func verdict(from body: [UInt8], sent: [GuardrailMessage]?) throws(GuardrailExchangeError)
        -> GuardrailVerdict
    {
        let answer: JSONValue
        do {
            answer = try JSONValue.parseObject(body, maxDepth: 16)
        } catch {
            throw GuardrailExchangeError("the answer is not a JSON object")
        }
        let reason: String?
        switch answer["reason"] {
        case nil, .null?: reason = nil
        case .string(let text)?: reason = printable(text)
        default: throw GuardrailExchangeError("reason is not a string")
        }
        switch answer["action"]?.stringValue {
        case "allow":
            return .allow
        case "deny":
            return .deny(reason: reason)
        case "modify":
            guard let sent else { return .modify(messages: [], reason: reason) }
            guard let items = answer["messages"]?.arrayValue else {
                throw GuardrailExchangeError("a modify answer has no messages list")
            }
            var messages: [GuardrailMessage] = []
            for item in items {
                guard let role = item["role"]?.stringValue, let content = item["content"]?.stringValue else {
                    throw GuardrailExchangeError("a modified message needs a role and a text content")
                }
                messages.append(GuardrailMessage(role: role, content: content))
            }
            guard messages.count == sent.count, zip(messages, sent).allSatisfy({ $0.role == $1.role }) else {
                throw GuardrailExchangeError(
                    "a modify answer must give back \(sent.count) messages with the roles sent, in order")
            }
            return .modify(messages: messages, reason: reason)
        case let other?:
            throw GuardrailExchangeError("action \"\(printable(other))\" is not allow, deny or modify")
        case nil:
            throw GuardrailExchangeError("the answer has no action")
        }
    }

    /// Text from a guardrail made safe for an error body and a log line: one line, control
    /// characters replaced, at most ``maximumReasonBytes`` bytes.
    static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            let next = scalar.value < 0x20 || scalar.value == 0x7F ? " " : String(scalar)
            if out.utf8.count + next.utf8.count > maximumReasonBytes { break }
            out += next
        }
        return out
    }
}

/// A call's prompt as guardrails see it, and a guardrail's modify applied back to the call.
///
/// Each endpoint has its own shape; the messages are, in order:
/// - chat completions: each message, its role, and its content's text (a string, or the
///   `text` of its text parts);
/// - completions and embeddings: each prompt or input string, as `user`;
/// - Responses: `instructions` as `system`, then `input` (a string as `user`; message items
///   with their role and text parts; `function_call_output` items as `tool`).
///
/// A rewrite puts a changed message's text where its text was (in its first text part,
/// dropping its other text parts; images stay) and leaves unchanged messages as they were.
public enum GuardrailPrompt {
    public static func messages(of body: JSONValue, endpoint: OpenAIEndpoint) -> [GuardrailMessage] {
        var messages: [GuardrailMessage] = []
        _ = walk(body, endpoint: endpoint) { message in
            messages.append(message)
            return nil
        }
        return messages
    }

    /// `body` with each message's text replaced by `messages` (as ``messages(of:endpoint:)``
    /// gave them, in order).
    public static func rewrite(_ body: JSONValue, endpoint: OpenAIEndpoint, with messages: [GuardrailMessage])
        throws(GuardrailExchangeError) -> JSONValue
    {
        var index = 0
        let rewritten = walk(body, endpoint: endpoint) { original in
            defer { index += 1 }
            guard index < messages.count, messages[index].content != original.content else { return nil }
            return messages[index].content
        }
        guard index == messages.count else {
            throw GuardrailExchangeError("the call has \(index) messages, the guardrail gave \(messages.count)")
        }
        return rewritten
    }

    /// Visits each message in order; where `visit` returns a text, that message's text is
    /// replaced by it in the returned body.
    private static func walk(
        _ body: JSONValue, endpoint: OpenAIEndpoint, visit: (GuardrailMessage) -> String?
    ) -> JSONValue {
        guard case .object(var members) = body else { return body }
        func update(_ key: String, _ change: (JSONValue) -> JSONValue) {
            guard let index = members.firstIndex(where: { $0.key == key }) else { return }
            members[index].value = change(members[index].value)
        }
        func strings(_ value: JSONValue, role: String) -> JSONValue {
            switch value {
            case .string(let text):
                return visit(GuardrailMessage(role: role, content: text)).map(JSONValue.string) ?? value
            case .array(let elements):
                return .array(
                    elements.map { element in
                        guard case .string(let text) = element else { return element }
                        return visit(GuardrailMessage(role: role, content: text)).map(JSONValue.string) ?? element
                    })
            default:
                return value
            }
        }
        switch endpoint {
        case .chatCompletions:
            update("messages") { value in
                guard case .array(let items) = value else { return value }
                return .array(items.map { message(in: $0, contentKey: "content", visit: visit) })
            }
        case .completions:
            update("prompt") { strings($0, role: "user") }
        case .embeddings:
            update("input") { strings($0, role: "user") }
        case .responses:
            update("instructions") { strings($0, role: "system") }
            update("input") { value in
                switch value {
                case .string:
                    return strings(value, role: "user")
                case .array(let items):
                    return .array(
                        items.map { item in
                            if item["role"] != nil { return message(in: item, contentKey: "content", visit: visit) }
                            if item["type"]?.stringValue == "function_call_output" {
                                return message(in: item, contentKey: "output", role: "tool", visit: visit)
                            }
                            return item
                        })
                default:
                    return value
                }
            }
        }
        return .object(members)
    }

    /// One message item: its text visited, and replaced if `visit` says so.
    private static func message(
        in item: JSONValue, contentKey: String, role fixedRole: String? = nil, visit: (GuardrailMessage) -> String?
    ) -> JSONValue {
        guard case .object(var fields) = item else { return item }
        let role = fixedRole ?? item["role"]?.stringValue ?? "user"
        let index = fields.firstIndex(where: { $0.key == contentKey })
        let content = index.map { fields[$0].value } ?? .null
        switch content {
        case .string(let text):
            guard let replacement = visit(GuardrailMessage(role: role, content: text)), let index else { return item }
            fields[index].value = .string(replacement)
        case .array(let parts):
            let textParts = parts.indices.filter { isTextPart(parts[$0]) }
            let text = textParts.compactMap { parts[$0]["text"]?.stringValue }.joined(separator: "\n")
            guard let replacement = visit(GuardrailMessage(role: role, content: text)), let index else { return item }
            var rewritten: [JSONValue] = []
            var placed = false
            for (position, part) in parts.enumerated() {
                guard textParts.contains(position) else {
                    rewritten.append(part)
                    continue
                }
                guard !placed, case .object(var partFields) = part,
                    let textIndex = partFields.firstIndex(where: { $0.key == "text" })
                else { continue }
                partFields[textIndex].value = .string(replacement)
                rewritten.append(.object(partFields))
                placed = true
            }
            if !placed { rewritten.insert(.object([("type", .string("text")), ("text", .string(replacement))]), at: 0) }
            fields[index].value = .array(rewritten)
        default:
            // No text (an assistant turn that only calls tools): visited as empty, so the
            // guardrail sees every turn; a text given back for it is added as its content.
            guard let replacement = visit(GuardrailMessage(role: role, content: "")), !replacement.isEmpty else {
                return item
            }
            if let index {
                fields[index].value = .string(replacement)
            } else {
                fields.append((contentKey, .string(replacement)))
            }
        }
        return .object(fields)
    }

    private static func isTextPart(_ part: JSONValue) -> Bool {
        guard part["text"]?.stringValue != nil else { return false }
        switch part["type"]?.stringValue {
        case "text", "input_text", "output_text", nil: return true
        default: return false
        }
    }
}
