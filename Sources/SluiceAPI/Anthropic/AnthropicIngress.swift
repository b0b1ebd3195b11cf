/// Callers that speak Anthropic's Messages API (`POST /v1/messages`): their request as an
/// OpenAI chat body (so one policy path and every upstream dialect serve them), and what
/// goes back to them in Anthropic's shape: whole messages and errors. Streams are
/// ``OpenAIToAnthropicStream``'s.
public enum AnthropicIngress {
    /// The OpenAI chat body for a Messages request.
    ///
    /// - `system` (a string or text blocks) becomes a system message.
    /// - Text and image blocks (base64 sources as data URLs, URL sources as URLs) become
    ///   content parts; `tool_use` blocks become assistant `tool_calls`; `tool_result`
    ///   blocks become `tool` messages, placed before the user's other content as OpenAI
    ///   requires. `thinking` blocks are dropped.
    /// - `max_tokens` (required, as Anthropic requires it), `stop_sequences`, `temperature`,
    ///   `top_p`, `stream`, tools (`input_schema` as `parameters`), `tool_choice` and
    ///   `metadata.user_id` map across. Streams ask for usage, which Anthropic's events
    ///   always carry.
    ///
    /// Fields that would let a caller choose the upstream or its credentials
    /// (``OpenAIRequest/forbiddenFields``) are refused here as on every other endpoint: an
    /// Anthropic deployment is sent the caller's Messages body, so nothing may slip through.
    public static func chatBody(from request: JSONValue) throws(RequestBodyError) -> [UInt8] {
        if case .object(let members) = request,
            let forbidden = members.first(where: { OpenAIRequest.forbiddenFields.contains($0.key) })
        {
            throw RequestBodyError(
                "the field \"\(forbidden.key)\" is not accepted: upstreams and credentials come from policy",
                param: forbidden.key, code: "forbidden_field")
        }
        guard let model = request["model"]?.stringValue else {
            throw RequestBodyError("model: Field required", param: "model", code: "missing_field")
        }
        guard let maxTokens = request["max_tokens"]?.intValue, maxTokens > 0 else {
            throw RequestBodyError(
                "max_tokens: Field required (a positive integer)", param: "max_tokens", code: "missing_field")
        }
        guard let messages = request["messages"]?.arrayValue else {
            throw RequestBodyError("messages: Field required (an array)", param: "messages", code: "missing_field")
        }
        var out: [JSONValue] = []
        switch request["system"] {
        case .string(let text)?: out.append(.object([("role", .string("system")), ("content", .string(text))]))
        case .array(let blocks)?:
            let text = blocks.compactMap { $0["type"]?.stringValue == "text" ? $0["text"]?.stringValue : nil }.joined(
                separator: "\n")
            out.append(.object([("role", .string("system")), ("content", .string(text))]))
        case nil, .null?: break
        default:
            throw RequestBodyError(
                "system must be a string or an array of text blocks", param: "system", code: "invalid_type")
        }
        for (index, message) in messages.enumerated() {
            let param = "messages.\(index)"
            guard let role = message["role"]?.stringValue, role == "user" || role == "assistant" else {
                throw RequestBodyError("\(param).role must be user or assistant", param: param, code: "invalid_value")
            }
            out += try self.messages(role: role, content: message["content"], param: param)
        }
        var chat: [(key: String, value: JSONValue)] = [
            ("model", .string(model)), ("messages", .array(out)), ("max_tokens", .int(maxTokens)),
        ]
        for field in ["temperature", "top_p"] {
            if let value = request[field], case .number = value { chat.append((field, value)) }
        }
        if let stops = request["stop_sequences"]?.arrayValue, !stops.isEmpty { chat.append(("stop", .array(stops))) }
        if request["stream"]?.boolValue == true {
            chat.append(("stream", .bool(true)))
            chat.append(("stream_options", .object([("include_usage", .bool(true))])))
        }
        if let tools = request["tools"]?.arrayValue, !tools.isEmpty {
            chat.append(
                (
                    "tools",
                    .array(
                        try tools.enumerated().map { index, tool throws(RequestBodyError) in
                            guard let name = tool["name"]?.stringValue else {
                                throw RequestBodyError(
                                    "tools.\(index).name: Field required", param: "tools.\(index)",
                                    code: "missing_field")
                            }
                            var function: [(key: String, value: JSONValue)] = [("name", .string(name))]
                            if let description = tool["description"]?.stringValue {
                                function.append(("description", .string(description)))
                            }
                            function.append(
                                ("parameters", tool["input_schema"] ?? .object([("type", .string("object"))])))
                            return .object([("type", .string("function")), ("function", .object(function))])
                        })
                ))
            if let choice = request["tool_choice"] {
                switch choice["type"]?.stringValue {
                case "auto": chat.append(("tool_choice", .string("auto")))
                case "any": chat.append(("tool_choice", .string("required")))
                case "none": chat.append(("tool_choice", .string("none")))
                case "tool":
                    guard let name = choice["name"]?.stringValue else {
                        throw RequestBodyError(
                            "tool_choice.name: Field required", param: "tool_choice", code: "missing_field")
                    }
                    chat.append(
                        (
                            "tool_choice",
                            .object([("type", .string("function")), ("function", .object([("name", .string(name))]))])
                        ))
                default:
                    throw RequestBodyError(
                        "tool_choice.type must be auto, any, tool or none", param: "tool_choice", code: "invalid_value")
                }
            }
        }
        if let user = request["metadata"]?["user_id"]?.stringValue { chat.append(("user", .string(user))) }
        return JSONValue.object(chat).bytes
    }

    /// A Messages body as a value, refused with the reason when it is not a JSON object
    /// within `maxDepth`.
    public static func parse(_ body: [UInt8], maxDepth: Int = 64) throws(RequestBodyError) -> JSONValue {
        do {
            return try JSONValue.parseObject(body, maxDepth: maxDepth)
        } catch {
            if case .tooDeep = error.reason {
                throw RequestBodyError("the body is nested deeper than \(maxDepth) levels", code: "json_too_deep")
            }
            throw RequestBodyError("the body is not valid JSON: \(error)", code: "invalid_json")
        }
    }

    /// One Messages turn as OpenAI messages (a user turn with tool results becomes `tool`
    /// messages followed by the rest of the user's content).
    private static func messages(
        role: String, content: JSONValue?, param: String
    ) throws(RequestBodyError) -> [JSONValue] {
        if case .string(let text)? = content {
            return [.object([("role", .string(role)), ("content", .string(text))])]
        }
        guard case .array(let blocks)? = content else {
            throw RequestBodyError(
                "\(param).content must be a string or an array of blocks", param: param, code: "invalid_type")
        }
        var parts: [JSONValue] = []
        var calls: [JSONValue] = []
        var results: [JSONValue] = []
        for (index, block) in blocks.enumerated() {
            let at = "\(param).content.\(index)"
            switch block["type"]?.stringValue {
            case "text":
                parts.append(.object([("type", .string("text")), ("text", .string(block["text"]?.stringValue ?? ""))]))
            case "image":
                let source = block["source"]
                let url: String
                switch source?["type"]?.stringValue {
                case "base64":
                    let mediaType = source?["media_type"]?.stringValue ?? "image/png"
                    url = "data:\(mediaType);base64,\(source?["data"]?.stringValue ?? "")"
                case "url":
                    url = source?["url"]?.stringValue ?? ""
                default:
                    throw RequestBodyError(
                        "\(at).source.type must be base64 or url", param: at, code: "unsupported_content")
                }
                parts.append(
                    .object([("type", .string("image_url")), ("image_url", .object([("url", .string(url))]))]))
            case "tool_use":
                guard let id = block["id"]?.stringValue, let name = block["name"]?.stringValue else {
                    throw RequestBodyError("\(at) needs id and name", param: at, code: "missing_field")
                }
                let arguments = String(decoding: (block["input"] ?? .object([])).bytes, as: UTF8.self)
                calls.append(OpenAIChat.toolCall(id: id, name: name, arguments: arguments, index: nil))
            case "tool_result":
                guard let id = block["tool_use_id"]?.stringValue else {
                    throw RequestBodyError("\(at).tool_use_id: Field required", param: at, code: "missing_field")
                }
                let text: String
                switch block["content"] {
                case .string(let value)?: text = value
                case .array(let inner)?:
                    text = inner.compactMap { $0["type"]?.stringValue == "text" ? $0["text"]?.stringValue : nil }
                        .joined(separator: "\n")
                default: text = ""
                }
                let flagged = block["is_error"]?.boolValue == true ? "Error: " + text : text
                results.append(
                    .object([("role", .string("tool")), ("tool_call_id", .string(id)), ("content", .string(flagged))]))
            case "thinking", "redacted_thinking":
                continue  // the model's own reasoning, which no other provider takes back
            default:
                throw RequestBodyError(
                    "\(at).type \(block["type"]?.stringValue?.prefix(32) ?? "?") is not supported", param: at,
                    code: "unsupported_content")
            }
        }
        var out = results
        if role == "assistant" {
            let text = parts.compactMap { $0["text"]?.stringValue }.joined()
            var message: [(key: String, value: JSONValue)] = [
                ("role", .string("assistant")), ("content", text.isEmpty && !calls.isEmpty ? .null : .string(text)),
            ]
            if !calls.isEmpty { message.append(("tool_calls", .array(calls))) }
            out.append(.object(message))
        } else if !parts.isEmpty {
            out.append(.object([("role", .string("user")), ("content", .array(parts))]))
        }
        return out
    }

    /// Anthropic's `stop_reason` for OpenAI's `finish_reason`.
    static func stopReason(_ finishReason: String?) -> String {
        switch finishReason {
        case "length": "max_tokens"
        case "tool_calls", "function_call": "tool_use"
        case "content_filter": "refusal"
        default: "end_turn"
        }
    }

    /// An OpenAI `chat.completion` body as an Anthropic `message`, and its usage.
    public static func message(fromChatCompletion body: [UInt8], model: String) -> (body: [UInt8], usage: TokenUsage?)?
    {
        guard let completion = try? JSONValue.parseObject(body), let choice = completion["choices"]?.arrayValue?.first
        else { return nil }
        let reply = choice["message"]
        var content: [JSONValue] = []
        if let text = reply?["content"]?.stringValue, !text.isEmpty {
            content.append(.object([("type", .string("text")), ("text", .string(text))]))
        }
        for call in reply?["tool_calls"]?.arrayValue ?? [] {
            let arguments = call["function"]?["arguments"]?.stringValue ?? "{}"
            content.append(
                .object([
                    ("type", .string("tool_use")), ("id", .string(call["id"]?.stringValue ?? "")),
                    ("name", .string(call["function"]?["name"]?.stringValue ?? "")),
                    ("input", (try? JSONValue.parseObject(Array(arguments.utf8))) ?? .object([])),
                ]))
        }
        let usage = TokenUsage.fromOpenAIUsage(completion["usage"])
        let message: [(key: String, value: JSONValue)] = [
            ("id", .string(completion["id"]?.stringValue ?? "msg_sluice")), ("type", .string("message")),
            ("role", .string("assistant")),
            ("model", .string(model)), ("content", .array(content)),
            ("stop_reason", .string(stopReason(choice["finish_reason"]?.stringValue))), ("stop_sequence", .null),
            ("usage", usageObject(usage ?? TokenUsage(promptTokens: 0, completionTokens: 0))),
        ]
        return (JSONValue.object(message).bytes, usage)
    }

    /// Anthropic's `usage` object: its `input_tokens` leave out cache reads and writes,
    /// which have their own figures (present when there are any).
    static func usageObject(_ usage: TokenUsage) -> JSONValue {
        let uncached = usage.promptTokens - usage.cachedPromptTokens - usage.cacheCreationTokens
        var members: [(key: String, value: JSONValue)] = [("input_tokens", .int(uncached))]
        if usage.cacheCreationTokens > 0 {
            members.append(("cache_creation_input_tokens", .int(usage.cacheCreationTokens)))
        }
        if usage.cachedPromptTokens > 0 { members.append(("cache_read_input_tokens", .int(usage.cachedPromptTokens))) }
        members.append(("output_tokens", .int(usage.completionTokens)))
        return .object(members)
    }

    /// An error in Anthropic's shape, status kept: `{"type":"error","error":{"type","message"}}`,
    /// plus Sluice's `code` naming the rule or fault.
    public static func errorBody(_ error: OpenAIError) -> [UInt8] {
        JSONValue.object([("type", .string("error")), ("error", errorObject(error))]).bytes
    }

    /// The same error as an Anthropic `error` event, for failures after a stream began.
    public static func errorEvent(_ error: OpenAIError) -> [UInt8] {
        var out = Array("event: error\ndata: ".utf8)
        JSONValue.object([("type", .string("error")), ("error", errorObject(error))]).write(to: &out)
        return out + Array("\n\n".utf8)
    }

    private static func errorObject(_ error: OpenAIError) -> JSONValue {
        .object([
            ("type", .string(errorType(status: error.status, openAIType: error.type))),
            ("message", .string(error.message)),
            ("code", .string(error.code)),
        ])
    }

    /// Anthropic's error type for a status (and the OpenAI type, where the status is shared).
    static func errorType(status: Int, openAIType: String) -> String {
        switch status {
        case 401: "authentication_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 413: "request_too_large"
        case 429: "rate_limit_error"
        case 529: "overloaded_error"
        case 400..<500: "invalid_request_error"
        default: openAIType == "overloaded_error" ? "overloaded_error" : "api_error"
        }
    }
}
