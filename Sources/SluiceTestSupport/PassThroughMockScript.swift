import SluiceAPI

/// The mock provider's answers on endpoints Sluice only passes through (files, batches,
/// images, audio transcriptions, Anthropic's token counting), enough to test and demo a
/// pass-through: JSON objects shaped like the providers', usage where they report it.
/// - `POST /v1/files` (any body, multipart included): a file object whose `bytes` is the
///   body's length; `GET /v1/files`: a list; `DELETE /v1/files/ID`: deleted;
/// - `GET /v1/files/ID/content?bytes=N`: N bytes of `application/octet-stream`, in 64 KiB
///   chunks;
/// - `GET /v1/files/echo_key`: 401 whose message quotes the credential it got (to test
///   scrubbing);
/// - `POST /v1/batches`, `GET /v1/batches/ID`: a batch object;
/// - `POST /v1/images/generations`: an image with `usage` (50 input, 4160 output tokens);
/// - `POST /v1/audio/transcriptions`: text with `usage` (`type: tokens`, 120 input, 30 output);
/// - `POST /v1/messages/count_tokens`: `{"input_tokens": 42}`.
struct PassThroughMockScript {
    static let prefixes = [
        "/v1/files", "/v1/batches", "/v1/images", "/v1/audio", "/v1/messages/count_tokens", "/v1/uploads",
    ]

    static let batch = MockScript.json(
        200,
        #"{"id":"batch_mock_1","object":"batch","endpoint":"/v1/chat/completions","#
            + #""input_file_id":"file-mock-1","completion_window":"24h","status":"validating"}"#)

    /// Nil when the path is not one of these endpoints.
    func steps(method: String, path: String, query: String, authorization: String?, body: [UInt8]) -> [MockStep]? {
        guard Self.prefixes.contains(where: { path == $0 || path.hasPrefix($0 + "/") }) else { return nil }
        switch (method, path) {
        case ("GET", "/v1/files/echo_key"):
            let key = authorization?.split(separator: " ").last.map(String.init) ?? "none"
            return MockScript.json(
                401,
                String(
                    decoding: OpenAIError(
                        status: 401, message: "Incorrect API key provided: \(key)", type: "invalid_request_error",
                        code: "invalid_api_key"
                    ).body, as: UTF8.self))
        case ("POST", "/v1/files"):
            return MockScript.json(
                200,
                #"{"id":"file-mock-1","object":"file","bytes":\#(body.count),"created_at":1700000000,"#
                    + #""filename":"upload.jsonl","purpose":"batch"}"#)
        case ("GET", "/v1/files"):
            return MockScript.json(
                200,
                #"{"object":"list","data":[{"id":"file-mock-1","object":"file","bytes":120,"#
                    + #""created_at":1700000000,"filename":"upload.jsonl","purpose":"batch"}],"has_more":false}"#)
        case ("DELETE", _) where path.hasPrefix("/v1/files/"):
            let id = path.dropFirst("/v1/files/".count)
            return MockScript.json(200, #"{"id":\#(jsonString(String(id))),"object":"file","deleted":true}"#)
        case ("GET", _) where path.hasPrefix("/v1/files/") && path.hasSuffix("/content"):
            let count =
                query.split(separator: "&").first(where: { $0.hasPrefix("bytes=") }).flatMap {
                    Int($0.dropFirst("bytes=".count))
                } ?? 16
            var steps: [MockStep] = [
                .head(
                    status: 200,
                    headers: [("content-type", "application/octet-stream"), ("content-length", String(count))])
            ]
            var left = count
            while left > 0 {
                let size = min(left, 64 << 10)
                steps.append(.data([UInt8](repeating: UInt8(ascii: "x"), count: size)))
                left -= size
            }
            return steps + [.end]
        case ("POST", "/v1/batches"):
            return Self.batch
        case ("GET", _) where path.hasPrefix("/v1/batches/"):
            return Self.batch
        case ("POST", "/v1/images/generations"):
            return MockScript.json(
                200,
                #"{"created":1700000000,"data":[{"b64_json":"iVBORw0KGgo="}],"#
                    + #""usage":{"input_tokens":50,"output_tokens":4160,"total_tokens":4210,"#
                    + #""input_tokens_details":{"text_tokens":50,"image_tokens":0}}}"#)
        case ("POST", "/v1/audio/transcriptions"):
            return MockScript.json(
                200,
                #"{"text":"Sluice mock transcript","usage":{"type":"tokens","input_tokens":120,"#
                    + #""output_tokens":30,"total_tokens":150}}"#)
        case ("POST", "/v1/messages/count_tokens"):
            return MockScript.json(200, #"{"input_tokens":42}"#)
        default:
            return MockScript.json(
                404,
                String(
                    decoding: OpenAIError(
                        status: 404, message: "no mock for \(method) \(path)", type: "invalid_request_error",
                        code: "not_found"
                    ).body, as: UTF8.self))
        }
    }
}
