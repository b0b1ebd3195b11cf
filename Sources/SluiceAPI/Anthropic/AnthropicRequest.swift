/// OpenAI chat completions → Anthropic Messages: the request body a caller sent in the
/// OpenAI dialect, rebuilt for `POST /v1/messages`.
///
/// - `system` and `developer` messages become the top-level `system` text.
/// - User text and images (`image_url`, data URLs as base64 sources) become content blocks.
/// - Assistant `tool_calls` become `tool_use` blocks (arguments parsed as the JSON input);
///   `tool` messages become `tool_result` blocks in a user turn.
/// - `max_tokens` (or `max_completion_tokens`) is required by Anthropic: absent, the
///   alias's default is sent.
/// - `stop` becomes `stop_sequences`, `user` becomes `metadata.user_id`, tools and
///   `tool_choice` are mapped; `n` above 1 is refused (Anthropic returns one choice).
///   Knobs Anthropic has no counterpart for (penalties, `logit_bias`, `seed`) are dropped.
public enum AnthropicRequest {
    /// The Messages body for `request`, to be sent with `upstreamModel`.
    public static func body(
        from request: JSONValue, upstreamModel: String, defaultMaxTokens: Int,
        defaultUser: String? = nil
    ) throws(RequestBodyError) -> [UInt8] {
        guard let messages = request["messages"]?.arrayValue else {
            throw RequestBodyError("messages must be an array", param: "messages", code: "invalid_type")
        }
        if let n = request["n"]?.intValue, n > 1 {
            throw RequestBodyError(
                "n above 1 is not supported by this model's provider (Anthropic returns one choice)", param: "n",
                code: "unsupported_parameter")
        }
        var system: [String] = []
        var turns: [JSONValue] = []
        for (index, message) in messages.enumerated() {
            let param = "messages[\(index)]"
            guard let role = message["role"]?.stringValue else {
                throw RequestBodyError("\(param).role must be a string", param: param, code: "invalid_type")
            }
            switch role {
            case "system", "developer":
                system.append(try OpenAIChat.text(of: message["content"], param: "\(param).content"))
            case "user":
                turns.append(
                    .object([
                        ("role", .string("user")),
                        ("content", try userContent(message["content"], param: "\(param).content")),
                    ]))
            case "assistant":
                var blocks: [JSONValue] = []
                if let content = message["content"], content != .null {
                    let text = try OpenAIChat.text(of: content, param: "\(param).content")
                    if !text.isEmpty { blocks.append(.object([("type", .string("text")), ("text", .string(text))])) }
                }
                for (position, call) in (message["tool_calls"]?.arrayValue ?? []).enumerated() {
                    guard let id = call["id"]?.stringValue, let function = call["function"],
                        let name = function["name"]?.stringValue
                    else {
                        throw RequestBodyError(
                            "\(param).tool_calls[\(position)] needs id and function.name", param: param,
                            code: "invalid_type")
                    }
                    let arguments = function["arguments"]?.stringValue ?? "{}"
                    let input = (try? JSONValue.parseObject(Array(arguments.utf8))) ?? .object([])
                    blocks.append(
                        .object([
                            ("type", .string("tool_use")), ("id", .string(id)), ("name", .string(name)),
                            ("input", input),
                        ]))
                }
                turns.append(.object([("role", .string("assistant")), ("content", .array(blocks))]))
            case "tool":
                guard let id = message["tool_call_id"]?.stringValue else {
                    throw RequestBodyError("\(param).tool_call_id must be a string", param: param, code: "invalid_type")
                }
                let result = JSONValue.object([
                    ("type", .string("tool_result")), ("tool_use_id", .string(id)),
                    ("content", .string(try OpenAIChat.text(of: message["content"], param: "\(param).content"))),
                ])
                turns.append(.object([("role", .string("user")), ("content", .array([result]))]))
            default:
                throw RequestBodyError(
                    "\(param).role \(role.prefix(32)) is not supported for this model's provider", param: param,
                    code: "unsupported_role")
            }
        }

        var body: [(key: String, value: JSONValue)] = [("model", .string(upstreamModel))]
        body.append(
            (
                "max_tokens",
                .int(request["max_tokens"]?.intValue ?? request["max_completion_tokens"]?.intValue ?? defaultMaxTokens)
            ))
        if !system.isEmpty { body.append(("system", .string(system.joined(separator: "\n\n")))) }
        body.append(("messages", .array(turns)))
        for field in ["temperature", "top_p", "top_k"] {
            if let value = request[field], case .number = value { body.append((field, value)) }
        }
        switch request["stop"] {
        case .string(let stop)?: body.append(("stop_sequences", .array([.string(stop)])))
        case .array(let stops)?: body.append(("stop_sequences", .array(stops)))
        default: break
        }
        if request["stream"]?.boolValue == true { body.append(("stream", .bool(true))) }
        if let tools = request["tools"]?.arrayValue, !tools.isEmpty {
            body.append(
                (
                    "tools",
                    .array(
                        try tools.enumerated().map { index, tool throws(RequestBodyError) in
                            try self.tool(tool, param: "tools[\(index)]")
                        })
                ))
            if let choice = request["tool_choice"] { body.append(("tool_choice", try toolChoice(choice))) }
        }
        if let user = request["user"]?.stringValue ?? defaultUser {
            body.append(("metadata", .object([("user_id", .string(user))])))
        }
        return JSONValue.object(body).bytes
    }

    private static func userContent(_ content: JSONValue?, param: String) throws(RequestBodyError) -> JSONValue {
        guard case .array(let parts)? = content else { return .string(try OpenAIChat.text(of: content, param: param)) }
        var blocks: [JSONValue] = []
        for (index, part) in parts.enumerated() {
            switch part["type"]?.stringValue {
            case "text":
                blocks.append(.object([("type", .string("text")), ("text", .string(part["text"]?.stringValue ?? ""))]))
            case "image_url":
                guard let url = part["image_url"]?["url"]?.stringValue ?? part["image_url"]?.stringValue else {
                    throw RequestBodyError(
                        "\(param)[\(index)].image_url.url must be a string", param: param, code: "invalid_type")
                }
                blocks.append(.object([("type", .string("image")), ("source", imageSource(url))]))
            default:
                throw RequestBodyError(
                    "\(param)[\(index)].type \(part["type"]?.stringValue?.prefix(32) ?? "?")"
                        + " is not supported for this model's provider",
                    param: param, code: "unsupported_content")
            }
        }
        return .array(blocks)
    }

    /// `data:image/png;base64,…` becomes a base64 source; anything else a URL source.
    private static func imageSource(_ url: String) -> JSONValue {
        if url.hasPrefix("data:"), let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64") {
            let mediaType = url[url.index(url.startIndex, offsetBy: 5)..<comma].dropLast(";base64".count)
            return .object([
                ("type", .string("base64")), ("media_type", .string(String(mediaType))),
                ("data", .string(String(url[url.index(after: comma)...]))),
            ])
        }
        return .object([("type", .string("url")), ("url", .string(url))])
    }

    private static func tool(_ tool: JSONValue, param: String) throws(RequestBodyError) -> JSONValue {
        guard let function = tool["function"], let name = function["name"]?.stringValue else {
            throw RequestBodyError("\(param).function.name must be a string", param: param, code: "invalid_type")
        }
        var fields: [(key: String, value: JSONValue)] = [("name", .string(name))]
        if let description = function["description"]?.stringValue {
            fields.append(("description", .string(description)))
        }
        fields.append(
            (
                "input_schema",
                function["parameters"] ?? .object([("type", .string("object")), ("properties", .object([]))])
            ))
        return .object(fields)
    }

    private static func toolChoice(_ choice: JSONValue) throws(RequestBodyError) -> JSONValue {
        switch choice {
        case .string("auto"): return .object([("type", .string("auto"))])
        case .string("required"): return .object([("type", .string("any"))])
        case .string("none"): return .object([("type", .string("none"))])
        default:
            guard let name = choice["function"]?["name"]?.stringValue else {
                throw RequestBodyError(
                    "tool_choice must be auto, required, none or a function", param: "tool_choice", code: "invalid_type"
                )
            }
            return .object([("type", .string("tool")), ("name", .string(name))])
        }
    }
}
