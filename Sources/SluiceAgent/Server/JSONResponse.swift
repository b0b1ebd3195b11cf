import NIOCore
import NIOHTTP1

/// Writes the head and body of a JSON answer the agent gives itself (errors, model list,
/// probes). The caller writes the end, which decides whether the connection stays.
func writeJSONResponse(
    _ body: [UInt8], status: Int, on channel: any Channel, requestID: String?, close: Bool,
    extraHeaders: [(String, String)] = []
) {
    let headers = JSONResponse.headers(length: body.count, requestID: requestID, extra: extraHeaders, close: close)
    let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
    channel.write(HTTPServerResponsePart.head(head), promise: nil)
    channel.write(HTTPServerResponsePart.body(.byteBuffer(channel.allocator.buffer(bytes: body))), promise: nil)
}

enum JSONResponse {
    /// The head fields of a JSON answer of `length` bytes.
    static func headers(length: Int, requestID: String?, extra: [(String, String)], close: Bool) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(length))
        if let requestID { headers.add(name: "x-sluice-request-id", value: requestID) }
        for (name, value) in extra { headers.add(name: name, value: value) }
        if close { headers.add(name: "connection", value: "close") }
        return headers
    }
}
