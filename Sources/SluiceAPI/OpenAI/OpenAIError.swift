/// The error body every Sluice answer uses: `{"error":{"message","type","param","code"}}`,
/// the shape OpenAI's SDKs parse.
public struct OpenAIError: Sendable, Equatable, Error {
    public var status: Int
    public var message: String
    public var type: String
    public var code: String
    public var param: String?

    public init(status: Int, message: String, type: String, code: String, param: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
    }

    /// The serialised body.
    public var body: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96 + message.utf8.count)
        out.append(contentsOf: "{\"error\":{\"message\":".utf8)
        appendJSONString(message, to: &out)
        out.append(contentsOf: ",\"type\":".utf8)
        appendJSONString(type, to: &out)
        out.append(contentsOf: ",\"param\":".utf8)
        if let param { appendJSONString(param, to: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: ",\"code\":".utf8)
        appendJSONString(code, to: &out)
        out.append(contentsOf: "}}".utf8)
        return out
    }

    /// The same error as one SSE event, for failures after a stream has started.
    public var sseEvent: [UInt8] {
        Array("data: ".utf8) + body + [0x0A, 0x0A]
    }
}

extension OpenAIError {
    /// The error an OpenAI-shaped body carries (`{"error":{"message","type","code"}}`), with
    /// `status`; nil when the body is not one.
    public static func parse(_ body: [UInt8], status: Int) -> OpenAIError? {
        guard let value = try? JSONValue.parseObject(body), let error = value["error"],
            let message = error["message"]?.stringValue
        else { return nil }
        let type = error["type"]?.stringValue ?? "upstream_error"
        return OpenAIError(
            status: status, message: message, type: type, code: error["code"]?.stringValue ?? type,
            param: error["param"]?.stringValue)
    }
}
