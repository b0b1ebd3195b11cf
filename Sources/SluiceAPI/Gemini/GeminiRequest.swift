/// OpenAI chat completions → Gemini `generateContent`: the request body a caller sent in the
/// OpenAI dialect, rebuilt for `models/{model}:generateContent` (or
/// `:streamGenerateContent?alt=sse`; the model and streaming are in the URL, not the body).
///
/// - `system` and `developer` messages become `systemInstruction`.
/// - User text and images (data URLs only, as `inlineData`) become `parts` of a `user` turn;
///   assistant text and `tool_calls` become a `model` turn with `functionCall` parts.
/// - `tool` messages become `functionResponse` parts (the function's name is found from the
///   assistant call it answers); consecutive ones share one turn, as Gemini expects.
/// - Sampling knobs go into `generationConfig` (`maxOutputTokens`, `stopSequences`,
///   `temperature`, `topP`, `topK`, penalties, `seed`, JSON response formats); tools into
///   `functionDeclarations` (their JSON Schema as `parametersJsonSchema`) and `toolConfig`.
/// - `n` above 1 is refused (one candidate is translated); `user` has no Gemini field and
///   is dropped, as are `logit_bias` and `logprobs`.
public enum GeminiRequest {
    /// A `generateContent` body for an OpenAI chat request, or an error naming the part Gemini
    /// cannot take.
    public static func body(from request: JSONValue) throws(RequestBodyError) -> [UInt8] {
        guard let messages = request["messages"]?.arrayValue else {
            throw RequestBodyError("messages must be an array", param: "messages", code: "invalid_type")
        }
        if let n = request["n"]?.intValue, n > 1 {
            throw RequestBodyError(
                "n above 1 is not supported for this model's provider (one Gemini candidate is returned)", param: "n",
                code: "unsupported_parameter")
        }
        var system: [String] = []
        var contents: [JSONValue] = []
        /// Tool-call id → function name, from the assistant turns so far.
        var callNames: [String: String] = [:]
        var pendingResponses: [JSONValue] = []
        func flushResponses() {
            guard !pendingResponses.isEmpty else { return }
            contents.append(.object([("role", .string("user")), ("parts", .array(pendingResponses))]))
            pendingResponses = []
        }
        for (index, message) in messages.enumerated() {
            let param = "messages[\(index)]"
            guard let role = message["role"]?.stringValue else {
                throw RequestBodyError("\(param).role must be a string", param: param, code: "invalid_type")
            }
            if role != "tool" { flushResponses() }
            switch role {
            case "system", "developer":
                system.append(try OpenAIChat.text(of: message["content"], param: "\(param).content"))
            case "user":
                contents.append(
                    .object([
                        ("role", .string("user")),
                        ("parts", .array(try userParts(message["content"], param: "\(param).content"))),
                    ]))
            case "assistant":
                var parts: [JSONValue] = []
                if let content = message["content"], content != .null {
                    let text = try OpenAIChat.text(of: content, param: "\(param).content")
                    if !text.isEmpty { parts.append(.object([("text", .string(text))])) }
                }
                for (position, call) in (message["tool_calls"]?.arrayValue ?? []).enumerated() {
                    guard let function = call["function"], let name = function["name"]?.stringValue else {
                        throw RequestBodyError(
                            "\(param).tool_calls[\(position)] needs function.name", param: param, code: "invalid_type")
                    }
                    if let id = call["id"]?.stringValue { callNames[id] = name }
                    let arguments = function["arguments"]?.stringValue ?? "{}"
                    let args = (try? JSONValue.parseObject(Array(arguments.utf8))) ?? .object([])
                    parts.append(.object([("functionCall", .object([("name", .string(name)), ("args", args)]))]))
                }
                if !parts.isEmpty { contents.append(.object([("role", .string("model")), ("parts", .array(parts))])) }
            case "tool":
                guard let id = message["tool_call_id"]?.stringValue else {
                    throw RequestBodyError("\(param).tool_call_id must be a string", param: param, code: "invalid_type")
                }
                guard let name = callNames[id] ?? message["name"]?.stringValue else {
                    throw RequestBodyError(
                        "\(param).tool_call_id \(id.prefix(64)) answers no earlier assistant tool call", param: param,
                        code: "invalid_value")
                }
                let text = try OpenAIChat.text(of: message["content"], param: "\(param).content")
                // Gemini wants an object: a JSON object result goes as it is, anything else wrapped.
                let response = (try? JSONValue.parseObject(Array(text.utf8))) ?? .object([("content", .string(text))])
                pendingResponses.append(
                    .object([("functionResponse", .object([("name", .string(name)), ("response", response)]))]))
            default:
                throw RequestBodyError(
                    "\(param).role \(role.prefix(32)) is not supported for this model's provider", param: param,
                    code: "unsupported_role")
            }
        }
        flushResponses()

        var body: [(key: String, value: JSONValue)] = [("contents", .array(contents))]
        if !system.isEmpty {
            body.append(
                (
                    "systemInstruction",
                    .object([("parts", .array([.object([("text", .string(system.joined(separator: "\n\n")))])]))])
                ))
        }
        if let tools = request["tools"]?.arrayValue, !tools.isEmpty {
            let declarations = try tools.enumerated().map { index, tool throws(RequestBodyError) in
                try declaration(tool, param: "tools[\(index)]")
            }
            body.append(("tools", .array([.object([("functionDeclarations", .array(declarations))])])))
            if let choice = request["tool_choice"] { body.append(("toolConfig", try toolConfig(choice))) }
        }
        var generation: [(key: String, value: JSONValue)] = []
        for (openAI, gemini) in [
            ("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"),
            ("presence_penalty", "presencePenalty"),
            ("frequency_penalty", "frequencyPenalty"), ("seed", "seed"),
        ] {
            if let value = request[openAI], case .number = value { generation.append((gemini, value)) }
        }
        if let maxTokens = request["max_completion_tokens"]?.intValue ?? request["max_tokens"]?.intValue {
            generation.append(("maxOutputTokens", .int(maxTokens)))
        }
        switch request["stop"] {
        case .string(let stop)?: generation.append(("stopSequences", .array([.string(stop)])))
        case .array(let stops)?: generation.append(("stopSequences", .array(stops)))
        default: break
        }
        if let format = request["response_format"] {
            switch format["type"]?.stringValue {
            case "json_object":
                generation.append(("responseMimeType", .string("application/json")))
            case "json_schema":
                generation.append(("responseMimeType", .string("application/json")))
                if let schema = format["json_schema"]?["schema"] { generation.append(("responseJsonSchema", schema)) }
            default: break
            }
        }
        if !generation.isEmpty { body.append(("generationConfig", .object(generation))) }
        return JSONValue.object(body).bytes
    }

    private static func userParts(_ content: JSONValue?, param: String) throws(RequestBodyError) -> [JSONValue] {
        guard case .array(let items)? = content else {
            return [.object([("text", .string(try OpenAIChat.text(of: content, param: param)))])]
        }
        var parts: [JSONValue] = []
        for (index, item) in items.enumerated() {
            switch item["type"]?.stringValue {
            case "text":
                parts.append(.object([("text", .string(item["text"]?.stringValue ?? ""))]))
            case "image_url":
                guard let url = item["image_url"]?["url"]?.stringValue ?? item["image_url"]?.stringValue else {
                    throw RequestBodyError(
                        "\(param)[\(index)].image_url.url must be a string", param: param, code: "invalid_type")
                }
                guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64")
                else {
                    throw RequestBodyError(
                        "\(param)[\(index)]: this model's provider (Gemini) takes images inline only; send a data: URL",
                        param: param, code: "unsupported_content")
                }
                let mimeType = url[url.index(url.startIndex, offsetBy: 5)..<comma].dropLast(";base64".count)
                parts.append(
                    .object([
                        (
                            "inlineData",
                            .object([
                                ("mimeType", .string(String(mimeType))),
                                ("data", .string(String(url[url.index(after: comma)...]))),
                            ])
                        )
                    ]))
            default:
                throw RequestBodyError(
                    "\(param)[\(index)].type \(item["type"]?.stringValue?.prefix(32) ?? "?")"
                        + " is not supported for this model's provider",
                    param: param, code: "unsupported_content")
            }
        }
        return parts
    }

    private static func declaration(_ tool: JSONValue, param: String) throws(RequestBodyError) -> JSONValue {
        guard let function = tool["function"], let name = function["name"]?.stringValue else {
            throw RequestBodyError("\(param).function.name must be a string", param: param, code: "invalid_type")
        }
        var fields: [(key: String, value: JSONValue)] = [("name", .string(name))]
        if let description = function["description"]?.stringValue {
            fields.append(("description", .string(description)))
        }
        if let parameters = function["parameters"] { fields.append(("parametersJsonSchema", parameters)) }
        return .object(fields)
    }

    private static func toolConfig(_ choice: JSONValue) throws(RequestBodyError) -> JSONValue {
        func config(_ mode: String, names: [String] = []) -> JSONValue {
            var fields: [(key: String, value: JSONValue)] = [("mode", .string(mode))]
            if !names.isEmpty { fields.append(("allowedFunctionNames", .array(names.map(JSONValue.string)))) }
            return .object([("functionCallingConfig", .object(fields))])
        }
        switch choice {
        case .string("auto"): return config("AUTO")
        case .string("required"): return config("ANY")
        case .string("none"): return config("NONE")
        default:
            guard let name = choice["function"]?["name"]?.stringValue else {
                throw RequestBodyError(
                    "tool_choice must be auto, required, none or a function", param: "tool_choice", code: "invalid_type"
                )
            }
            return config("ANY", names: [name])
        }
    }
}
