/// OpenAI `/v1/embeddings` calls for Gemini deployments, as `batchEmbedContents`: each
/// input string becomes one request of the batch (`dimensions` as `outputDimensionality`),
/// and the answer's vectors come back as OpenAI's list, in the caller's `encoding_format`
/// (floats, or base64 of little-endian float32, which OpenAI's SDKs ask for by default).
/// Token-array inputs have no text to send and are refused. Gemini reports no usage for
/// embeddings: the caller's usage is Sluice's estimate, and marked so in the audit.
public enum GeminiEmbeddings {
    /// The `batchEmbedContents` body for an OpenAI embeddings request.
    public static func body(from request: JSONValue, upstreamModel: String) throws(RequestBodyError) -> [UInt8] {
        let texts: [String]
        switch request["input"] {
        case .string(let text)?:
            texts = [text]
        case .array(let items)? where !items.isEmpty:
            var strings: [String] = []
            for item in items {
                guard let text = item.stringValue else {
                    throw RequestBodyError(
                        "input: token arrays cannot be sent to a Gemini deployment; give the text", param: "input",
                        code: "unsupported_parameter")
                }
                strings.append(text)
            }
            texts = strings
        default:
            throw RequestBodyError(
                "input must be a string or a non-empty array of strings", param: "input", code: "invalid_input")
        }
        if let format = request["encoding_format"]?.stringValue, format != "float", format != "base64" {
            throw RequestBodyError(
                "encoding_format must be float or base64", param: "encoding_format", code: "invalid_encoding_format")
        }
        var requests: [JSONValue] = []
        for text in texts {
            var entry: [(key: String, value: JSONValue)] = [
                ("model", .string("models/" + upstreamModel)),
                ("content", .object([("parts", .array([.object([("text", .string(text))])]))])),
            ]
            if let dimensions = request["dimensions"], dimensions != .null {
                guard let count = dimensions.intValue, (1...65_536).contains(count) else {
                    throw RequestBodyError(
                        "dimensions must be a whole number from 1", param: "dimensions", code: "invalid_dimensions")
                }
                entry.append(("outputDimensionality", .int(count)))
            }
            requests.append(.object(entry))
        }
        return JSONValue.object([("requests", .array(requests))]).bytes
    }

    /// OpenAI's embeddings list for a `batchEmbedContents` answer, with `usage` the given
    /// estimate; nil when the answer is not one.
    public static func list(
        from body: [UInt8], model: String, base64: Bool, estimatedPromptTokens: Int
    ) -> [UInt8]? {
        guard let answer = try? JSONValue.parseObject(body), let embeddings = answer["embeddings"]?.arrayValue else {
            return nil
        }
        var data: [JSONValue] = []
        for (index, embedding) in embeddings.enumerated() {
            guard let values = embedding["values"]?.arrayValue else { return nil }
            let vector: JSONValue
            if base64 {
                var bytes: [UInt8] = []
                bytes.reserveCapacity(values.count * 4)
                for value in values {
                    guard case .number(let text) = value, let number = Float(text) else { return nil }
                    withUnsafeBytes(of: number.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
                }
                vector = .string(base64Encoded(bytes))
            } else {
                guard values.allSatisfy({ if case .number = $0 { true } else { false } }) else { return nil }
                vector = .array(values)
            }
            data.append(
                .object([("object", .string("embedding")), ("index", .int(index)), ("embedding", vector)]))
        }
        return JSONValue.object([
            ("object", .string("list")), ("data", .array(data)), ("model", .string(model)),
            (
                "usage",
                .object([("prompt_tokens", .int(estimatedPromptTokens)), ("total_tokens", .int(estimatedPromptTokens))])
            ),
        ]).bytes
    }

    /// Standard base64 with padding.
    static func base64Encoded(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let first = bytes[index]
            let second = index + 1 < bytes.count ? bytes[index + 1] : 0
            let third = index + 2 < bytes.count ? bytes[index + 2] : 0
            out.append(alphabet[Int(first >> 2)])
            out.append(alphabet[Int((first & 0x03) << 4 | second >> 4)])
            out.append(index + 1 < bytes.count ? alphabet[Int((second & 0x0F) << 2 | third >> 6)] : UInt8(ascii: "="))
            out.append(index + 2 < bytes.count ? alphabet[Int(third & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
