/// OpenAI Responses API requests as the chat completion they amount to, for deployments
/// whose providers have no Responses API (Anthropic, Gemini): the chat body is then
/// translated to the provider as any chat call is, and the answer comes back through
/// ``ResponsesEgress``.
///
/// Translated: `instructions` (a system message), `input` as a string or as items
/// (`message` items of any role, `developer` as system; `input_text`, `output_text` and
/// `input_image` parts, images by URL or data URL; `function_call` and
/// `function_call_output` items), function `tools` and `tool_choice`, `max_output_tokens`,
/// `temperature`, `top_p`, `parallel_tool_calls`, `user`, `stream`. `reasoning` items
/// (opaque to other providers) are left out. Whatever needs the provider's own storage or
/// tools (`previous_response_id`, `conversation`, `store: true`, `background`, `prompt`
/// templates, built-in tools, file inputs, structured `text.format`) is refused with 400
/// naming the field: never forwarded in a shape the provider does not speak.
public enum ResponsesIngress {
    /// Fields dropped in translation: they change nothing another provider could honour.
    static let ignoredFields: Set<String> = [
        "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "temperature", "top_p",
        "parallel_tool_calls", "user", "stream", "metadata", "truncation", "include", "reasoning", "service_tier",
        "store", "text", "safety_identifier", "prompt_cache_key", "stream_options", "top_logprobs",
    ]

    /// The chat request for a Responses body.
    public static func chatRequest(from request: JSONValue) throws(RequestBodyError) -> JSONValue {
        guard let members = request.objectValue else {
            throw RequestBodyError("the body must be a JSON object", code: "invalid_json")
        }
        for (key, value) in members {
            switch key {
            case "previous_response_id", "conversation":
                guard value == .null else {
                    throw unsupported(key, "needs the provider's stored conversation state, which only OpenAI keeps")
                }
            case "store":
                guard value != .bool(true) else {
                    throw unsupported(key, "asks the provider to store the response, which only OpenAI does")
                }
            case "background":
                guard value != .bool(true) else { throw unsupported(key, "needs OpenAI's background responses") }
            case "prompt":
                guard value == .null else { throw unsupported(key, "names an OpenAI-stored prompt template") }
            case "text":
                if let type = value["format"]?["type"]?.stringValue, type != "text" {
                    throw unsupported("text.format", "\(type) output is not translated")
                }
            default:
                guard ignoredFields.contains(key) else {
                    throw unsupported(key, "is not translated for this provider")
                }
            }
        }
        var messages: [JSONValue] = []
        if let instructions = request["instructions"], instructions != .null {
            guard let text = instructions.stringValue else {
                throw RequestBodyError(
                    "\"instructions\" must be a string", param: "instructions", code: "invalid_input")
            }
            messages.append(.object([("role", .string("system")), ("content", .string(text))]))
        }
        switch request["input"] {
        case .string(let text)?:
            messages.append(.object([("role", .string("user")), ("content", .string(text))]))
        case .array(let items)?:
            try append(items, to: &messages)
        default:
            throw RequestBodyError(
                "\"input\" must be a string or an array of items", param: "input", code: "invalid_input")
        }
        var chat: [(key: String, value: JSONValue)] = [
            ("model", request["model"] ?? .null), ("messages", .array(messages)),
        ]
        if let tools = request["tools"], tools != .null { chat.append(("tools", try chatTools(tools))) }
        if let choice = request["tool_choice"], choice != .null {
            chat.append(("tool_choice", try chatToolChoice(choice)))
        }
        for (from, to) in [
            ("max_output_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"),
            ("parallel_tool_calls", "parallel_tool_calls"), ("user", "user"), ("stream", "stream"),
        ] {
            if let value = request[from], value != .null { chat.append((to, value)) }
        }
        return .object(chat)
    }

    /// Input items as chat messages; consecutive function calls become one assistant turn.
    private static func append(_ items: [JSONValue], to messages: inout [JSONValue]) throws(RequestBodyError) {
        var pendingCalls: [JSONValue] = []
        func flushCalls() {
            guard !pendingCalls.isEmpty else { return }
            messages.append(
                .object([("role", .string("assistant")), ("content", .null), ("tool_calls", .array(pendingCalls))]))
            pendingCalls = []
        }
        for (index, item) in items.enumerated() {
            let path = "input[\(index)]"
            let type = item["type"]?.stringValue ?? (item["role"] != nil ? "message" : "")
            switch type {
            case "message":
                flushCalls()
                guard var role = item["role"]?.stringValue, ["user", "assistant", "system", "developer"].contains(role)
                else {
                    throw RequestBodyError(
                        "\(path).role must be user, assistant, system or developer", param: "\(path).role",
                        code: "invalid_input")
                }
                if role == "developer" { role = "system" }
                messages.append(.object([("role", .string(role)), ("content", try content(item["content"], at: path))]))
            case "function_call":
                guard let callID = item["call_id"]?.stringValue, let name = item["name"]?.stringValue else {
                    throw RequestBodyError(
                        "\(path) needs call_id and name", param: path, code: "invalid_input")
                }
                pendingCalls.append(
                    .object([
                        ("id", .string(callID)), ("type", .string("function")),
                        (
                            "function",
                            .object([
                                ("name", .string(name)),
                                ("arguments", .string(item["arguments"]?.stringValue ?? "{}")),
                            ])
                        ),
                    ]))
            case "function_call_output":
                flushCalls()
                guard let callID = item["call_id"]?.stringValue else {
                    throw RequestBodyError("\(path) needs call_id", param: path, code: "invalid_input")
                }
                // Output is text; anything else (a list of parts) is passed on as its JSON.
                let output =
                    item["output"]?.stringValue ?? item["output"].map { String(decoding: $0.bytes, as: UTF8.self) }
                messages.append(
                    .object([
                        ("role", .string("tool")), ("tool_call_id", .string(callID)),
                        ("content", .string(output ?? "")),
                    ]))
            case "reasoning":
                continue  // the provider's own reasoning, opaque to any other
            default:
                throw unsupported("\(path).type", "\(type.isEmpty ? "an item without a type" : type) is not translated")
            }
        }
        flushCalls()
    }

    /// A message's content: a string, or parts as chat content parts.
    private static func content(_ value: JSONValue?, at path: String) throws(RequestBodyError) -> JSONValue {
        switch value {
        case .string(let text)?:
            return .string(text)
        case .array(let parts)?:
            var converted: [JSONValue] = []
            for (index, part) in parts.enumerated() {
                let at = "\(path).content[\(index)]"
                switch part["type"]?.stringValue {
                case "input_text", "output_text", "text":
                    converted.append(
                        .object([("type", .string("text")), ("text", .string(part["text"]?.stringValue ?? ""))]))
                case "input_image":
                    guard let url = part["image_url"]?.stringValue else {
                        throw unsupported(at, "an image by file_id needs OpenAI's file storage; give image_url")
                    }
                    var image: [(key: String, value: JSONValue)] = [("url", .string(url))]
                    if let detail = part["detail"]?.stringValue { image.append(("detail", .string(detail))) }
                    converted.append(.object([("type", .string("image_url")), ("image_url", .object(image))]))
                case let other:
                    throw unsupported("\(at).type", "\(other ?? "a part without a type") is not translated")
                }
            }
            return .array(converted)
        default:
            throw RequestBodyError(
                "\(path).content must be a string or an array of parts", param: "\(path).content",
                code: "invalid_input")
        }
    }

    private static func chatTools(_ tools: JSONValue) throws(RequestBodyError) -> JSONValue {
        guard let list = tools.arrayValue else {
            throw RequestBodyError("\"tools\" must be an array", param: "tools", code: "invalid_tools")
        }
        var converted: [JSONValue] = []
        for (index, tool) in list.enumerated() {
            guard tool["type"]?.stringValue == "function", let name = tool["name"]?.stringValue else {
                throw unsupported(
                    "tools[\(index)].type",
                    "\(tool["type"]?.stringValue ?? "?") is a built-in OpenAI tool; only function tools are translated")
            }
            var function: [(key: String, value: JSONValue)] = [("name", .string(name))]
            for key in ["description", "parameters"] {
                if let value = tool[key], value != .null { function.append((key, value)) }
            }
            converted.append(.object([("type", .string("function")), ("function", .object(function))]))
        }
        return .array(converted)
    }

    private static func chatToolChoice(_ choice: JSONValue) throws(RequestBodyError) -> JSONValue {
        if let mode = choice.stringValue { return .string(mode) }
        guard choice["type"]?.stringValue == "function", let name = choice["name"]?.stringValue else {
            throw unsupported("tool_choice", "only auto, none, required or a function are translated")
        }
        return .object([("type", .string("function")), ("function", .object([("name", .string(name))]))])
    }

    private static func unsupported(_ field: String, _ why: String) -> RequestBodyError {
        RequestBodyError(
            "\(field) \(why): this alias is served by a provider without the Responses API",
            param: field, code: "unsupported_parameter")
    }
}
