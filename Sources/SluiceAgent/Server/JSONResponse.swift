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
        // One array sized up front, handed over whole (see `RelayStateMachine.relayedHeaders`).
        var fields: [(String, String)] = []
        fields.reserveCapacity(4 + extra.count)
        fields.append(("content-type", "application/json"))
        fields.append(("content-length", String(length)))
        if let requestID { fields.append(("x-sluice-request-id", requestID)) }
        fields.append(contentsOf: extra)
        if close { fields.append(("connection", "close")) }
        return HTTPHeaders(fields)
    }
}
