/// OpenAI chat completions as Responses API answers, for Responses callers served by a
/// provider without that API: the provider's answer is first translated to chat (as for any
/// chat caller), then rebuilt here as a `response` object, or, streamed, as the Responses
/// API's typed events (see ``ChatToResponsesStream``).
public enum ResponsesEgress {
    /// The `response` object for a whole chat completion, and its usage.
    public static func response(fromChatCompletion body: [UInt8], model: String, created: Int64) -> (
        body: [UInt8], usage: TokenUsage?
    )? {
        guard let completion = try? JSONValue.parseObject(body),
            let choice = completion["choices"]?.arrayValue?.first
        else { return nil }
        let usage = TokenUsage.fromOpenAIUsage(completion["usage"])
        let id = responseID(completion["id"]?.stringValue)
        var output: [JSONValue] = []
        let message = choice["message"]
        if let text = message?["content"]?.stringValue, !text.isEmpty {
            output.append(messageItem(id: "msg_" + id.dropFirst(5), text: text, status: "completed"))
        }
        for call in message?["tool_calls"]?.arrayValue ?? [] {
            output.append(
                functionCallItem(
                    callID: call["id"]?.stringValue ?? "call_\(output.count)",
                    name: call["function"]?["name"]?.stringValue ?? "",
                    arguments: call["function"]?["arguments"]?.stringValue ?? "", status: "completed"))
        }
        let finish = choice["finish_reason"]?.stringValue
        let object = responseObject(
            id: id, model: model, created: created, status: finish == "length" ? "incomplete" : "completed",
            output: output, usage: usage)
        return (object.bytes, usage)
    }

    /// `resp_…` from a chat completion's id, so the caller can correlate with the provider's logs.
    static func responseID(_ chatID: String?) -> String {
        let base = chatID.map { $0.filter { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" } } ?? ""
        return "resp_" + (base.isEmpty ? "sluice" : String(base.prefix(64)))
    }

    static func messageItem(id: some StringProtocol, text: String, status: String) -> JSONValue {
        .object([
            ("type", .string("message")), ("id", .string(String(id))), ("status", .string(status)),
            ("role", .string("assistant")),
            (
                "content",
                .array(
                    status == "in_progress"
                        ? []
                        : [
                            .object([
                                ("type", .string("output_text")), ("text", .string(text)), ("annotations", .array([])),
                            ])
                        ])
            ),
        ])
    }

    static func functionCallItem(callID: String, name: String, arguments: String, status: String) -> JSONValue {
        .object([
            ("type", .string("function_call")), ("id", .string("fc_" + callID)), ("call_id", .string(callID)),
            ("name", .string(name)), ("arguments", .string(arguments)), ("status", .string(status)),
        ])
    }

    static func responseObject(
        id: String, model: String, created: Int64, status: String, output: [JSONValue], usage: TokenUsage?
    ) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [
            ("id", .string(id)), ("object", .string("response")), ("created_at", .number(String(created))),
            ("status", .string(status)), ("error", .null),
            (
                "incomplete_details",
                status == "incomplete" ? .object([("reason", .string("max_output_tokens"))]) : .null
            ),
            ("model", .string(model)), ("output", .array(output)), ("parallel_tool_calls", .bool(true)),
            ("tool_choice", .string("auto")), ("tools", .array([])),
        ]
        if let usage { members.append(("usage", usageObject(usage))) }
        return .object(members)
    }

    /// The Responses API's `usage` object.
    public static func usageObject(_ usage: TokenUsage) -> JSONValue {
        .object([
            ("input_tokens", .int(usage.promptTokens)),
            ("input_tokens_details", .object([("cached_tokens", .int(usage.cachedPromptTokens))])),
            ("output_tokens", .int(usage.completionTokens)),
            ("output_tokens_details", .object([("reasoning_tokens", .int(usage.reasoningTokens))])),
            ("total_tokens", .int(usage.totalTokens)),
        ])
    }
}

/// OpenAI `chat.completion.chunk` events → the Responses API's typed events, for Responses
/// callers served by a deployment without that API. It takes the chat SSE bytes the relay
/// would have sent and returns `response.created` and `response.in_progress` first, then
/// per text run a `message` item (`output_item.added`, `content_part.added`,
/// `output_text.delta`… and their `.done` events) and per tool call a `function_call` item
/// (`function_call_arguments.delta`… `.done`), and at `[DONE]` `response.completed` with
/// every item and the usage. Each event is named in an `event:` line and numbered. A chat
/// error event passes as it is (the SDKs raise it); a stream cut before `[DONE]` gets no
/// `response.completed`, so the caller can tell it is incomplete.
public struct ChatToResponsesStream: Sendable {
    public let model: String
    let created: Int64
    private var decoder = SSEDecoder()
    private var started = false
    private var id = "resp_sluice"
    private var sequence = 0
    /// Items in output order: finished ones, then the open one.
    private var items: [JSONValue] = []
    private var openText: (index: Int, text: String)?
    /// Chat tool-call index → (output index, call id, name, arguments so far).
    private var calls: [Int: (index: Int, callID: String, name: String, arguments: String)] = [:]
    private var usage: TokenUsage?
    private var truncated = false
    public private(set) var ended = false

    public init(model: String, created: Int64) {
        self.model = model
        self.created = created
    }

    /// Responses SSE bytes for whole chat events in `bytes` (a partial event is kept).
    public mutating func convert(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for event in decoder.events(in: bytes) { out += convert(event) }
        return out
    }

    private mutating func convert(_ event: SSEEvent) -> [UInt8] {
        guard let data = event.data else { return [] }
        if data.elementsEqual("[DONE]".utf8) { return finish() }
        guard let chunk = try? JSONValue.parseObject(data) else { return [] }
        if chunk["error"] != nil {
            ended = true
            return event.raw
        }
        var out: [UInt8] = []
        if !started {
            started = true
            id = ResponsesEgress.responseID(chunk["id"]?.stringValue)
            let initial = ResponsesEgress.responseObject(
                id: id, model: model, created: created, status: "in_progress", output: [], usage: nil)
            out += emit("response.created", [("response", initial)])
            out += emit("response.in_progress", [("response", initial)])
        }
        if let found = TokenUsage.fromOpenAIUsage(chunk["usage"]) { usage = found }
        guard let choice = chunk["choices"]?.arrayValue?.first else { return out }
        let delta = choice["delta"]
        if let text = delta?["content"]?.stringValue, !text.isEmpty {
            if openText == nil {
                out += closeText()
                let index = items.count
                items.append(ResponsesEgress.messageItem(id: messageID(index), text: "", status: "in_progress"))
                openText = (index, "")
                out += emit(
                    "response.output_item.added",
                    [("output_index", .int(index)), ("item", items[index])])
                out += emit(
                    "response.content_part.added",
                    [
                        ("item_id", .string(messageID(index))), ("output_index", .int(index)),
                        ("content_index", .int(0)), ("part", Self.textPart("")),
                    ])
            }
            openText!.text += text
            out += emit(
                "response.output_text.delta",
                [
                    ("item_id", .string(messageID(openText!.index))), ("output_index", .int(openText!.index)),
                    ("content_index", .int(0)), ("delta", .string(text)), ("logprobs", .array([])),
                ])
        }
        for call in delta?["tool_calls"]?.arrayValue ?? [] {
            let callIndex = call["index"]?.intValue ?? 0
            if calls[callIndex] == nil {
                out += closeText()
                let index = items.count
                let callID = call["id"]?.stringValue ?? "call_\(callIndex)"
                let name = call["function"]?["name"]?.stringValue ?? ""
                calls[callIndex] = (index, callID, name, "")
                items.append(
                    ResponsesEgress.functionCallItem(callID: callID, name: name, arguments: "", status: "in_progress"))
                out += emit("response.output_item.added", [("output_index", .int(index)), ("item", items[index])])
            }
            if let piece = call["function"]?["arguments"]?.stringValue, !piece.isEmpty {
                calls[callIndex]!.arguments += piece
                let open = calls[callIndex]!
                out += emit(
                    "response.function_call_arguments.delta",
                    [("item_id", .string("fc_" + open.callID)), ("output_index", .int(open.index)),
                     ("delta", .string(piece))])
            }
        }
        if choice["finish_reason"]?.stringValue == "length" { truncated = true }
        return out
    }

    private func messageID(_ index: Int) -> String { "msg_\(id.dropFirst(5))_\(index)" }

    private static func textPart(_ text: String) -> JSONValue {
        .object([("type", .string("output_text")), ("text", .string(text)), ("annotations", .array([]))])
    }

    private mutating func closeText() -> [UInt8] {
        guard let open = openText else { return [] }
        openText = nil
        let itemID = messageID(open.index)
        let place: [(key: String, value: JSONValue)] = [
            ("item_id", .string(itemID)), ("output_index", .int(open.index)), ("content_index", .int(0)),
        ]
        items[open.index] = ResponsesEgress.messageItem(id: itemID, text: open.text, status: "completed")
        var out = emit("response.output_text.done", place + [("text", .string(open.text)), ("logprobs", .array([]))])
        out += emit("response.content_part.done", place + [("part", Self.textPart(open.text))])
        out += emit("response.output_item.done", [("output_index", .int(open.index)), ("item", items[open.index])])
        return out
    }

    private mutating func finish() -> [UInt8] {
        guard started, !ended else { return [] }
        ended = true
        var out = closeText()
        for (_, call) in calls.sorted(by: { $0.value.index < $1.value.index }) {
            items[call.index] = ResponsesEgress.functionCallItem(
                callID: call.callID, name: call.name, arguments: call.arguments, status: "completed")
            out += emit(
                "response.function_call_arguments.done",
                [("item_id", .string("fc_" + call.callID)), ("output_index", .int(call.index)),
                 ("arguments", .string(call.arguments))])
            out += emit("response.output_item.done", [("output_index", .int(call.index)), ("item", items[call.index])])
        }
        let status = truncated ? "incomplete" : "completed"
        let final = ResponsesEgress.responseObject(
            id: id, model: model, created: created, status: status, output: items, usage: usage)
        out += emit(truncated ? "response.incomplete" : "response.completed", [("response", final)])
        return out
    }

    private mutating func emit(_ type: String, _ fields: [(key: String, value: JSONValue)]) -> [UInt8] {
        var out = Array("event: \(type)\ndata: ".utf8)
        JSONValue.object([("type", .string(type)), ("sequence_number", .int(sequence))] + fields).write(to: &out)
        out += Array("\n\n".utf8)
        sequence += 1
        return out
    }
}
