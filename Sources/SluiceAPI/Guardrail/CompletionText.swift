/// The text of an answer as the caller received it, for a guardrail that checks completions:
/// read from the bytes written to the caller, in the caller's dialect, whole or streamed.
/// Tool calls, images and other non-text output are not included.
public enum CompletionText {
    /// What the answer is, from the caller's side.
    public enum Shape: Sendable {
        /// `/v1/chat/completions`: `choices[].message.content`, or streamed `delta.content`.
        case chat
        /// `/v1/completions`: `choices[].text`.
        case completions
        /// `/v1/responses`: `output[]` message items' `output_text` parts, or streamed
        /// `response.output_text.delta` events.
        case responses
        /// `/v1/messages`: `content[]` text blocks, or streamed `text_delta`s.
        case anthropic
    }

    /// The answer's text; choices after the first are separated by a blank line.
    public static func extract(_ bytes: [UInt8], shape: Shape, streamed: Bool) -> String {
        streamed ? fromStream(bytes, shape: shape) : fromBody(bytes, shape: shape)
    }

    private static func fromBody(_ bytes: [UInt8], shape: Shape) -> String {
        guard let body = try? JSONValue.parseObject(bytes, maxDepth: 128) else { return "" }
        switch shape {
        case .chat:
            return (body["choices"]?.arrayValue ?? []).map { choice in
                text(of: choice["message"]?["content"])
            }.joined(separator: "\n\n")
        case .completions:
            return (body["choices"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined(separator: "\n\n")
        case .responses:
            return (body["output"]?.arrayValue ?? []).filter { $0["type"]?.stringValue == "message" }.map { item in
                (item["content"]?.arrayValue ?? []).filter { $0["type"]?.stringValue == "output_text" }
                    .compactMap { $0["text"]?.stringValue }.joined()
            }.joined(separator: "\n\n")
        case .anthropic:
            return (body["content"]?.arrayValue ?? []).filter { $0["type"]?.stringValue == "text" }
                .compactMap { $0["text"]?.stringValue }.joined()
        }
    }

    private static func fromStream(_ bytes: [UInt8], shape: Shape) -> String {
        var decoder = SSEDecoder()
        // Choice index → its text so far (chat and completions can stream several).
        var choices: [Int: String] = [:]
        var single = ""
        for event in decoder.events(in: bytes + Array("\n\n".utf8)) {
            guard let data = event.data, data != Array("[DONE]".utf8),
                let value = try? JSONValue.parseObject(data, maxDepth: 128)
            else { continue }
            switch shape {
            case .chat, .completions:
                for choice in value["choices"]?.arrayValue ?? [] {
                    let index = choice["index"]?.intValue ?? 0
                    let piece = shape == .chat ? text(of: choice["delta"]?["content"]) : choice["text"]?.stringValue
                    choices[index, default: ""] += piece ?? ""
                }
            case .responses:
                if value["type"]?.stringValue == "response.output_text.delta" {
                    single += value["delta"]?.stringValue ?? ""
                }
            case .anthropic:
                if value["type"]?.stringValue == "content_block_delta",
                    value["delta"]?["type"]?.stringValue == "text_delta"
                {
                    single += value["delta"]?["text"]?.stringValue ?? ""
                }
            }
        }
        if !choices.isEmpty {
            return choices.keys.sorted().compactMap { choices[$0] }.joined(separator: "\n\n")
        }
        return single
    }

    /// A message content: a string, or the text of its text parts.
    private static func text(of content: JSONValue?) -> String {
        switch content {
        case .string(let text)?: return text
        case .array(let parts)?: return parts.compactMap { $0["text"]?.stringValue }.joined()
        default: return ""
        }
    }
}
