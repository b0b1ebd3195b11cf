import NIOCore
import NIOHTTP1
import SluiceAPI

/// Answers requests the HTTP/1.1 parser rejected: 431 when the header block is too large,
/// 400 for anything else malformed (conflicting `Content-Length`/`Transfer-Encoding`, bad
/// chunking, invalid characters). The connection then closes: after a framing error
/// nothing further on it can be trusted.
final class ProtocolErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var responseInProgress = false
    private let audit: (Int, String) -> Void

    init(audit: @escaping (Int, String) -> Void) {
        self.audit = audit
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // A response already started cannot be replaced by an error: just close.
        if !responseInProgress {
            let answer: OpenAIError
            if case .headerOverflow = parserError {
                answer = OpenAIError(status: 431, message: "request headers are too large", type: "invalid_request_error",
                                     code: "request_header_fields_too_large")
            } else {
                answer = OpenAIError(status: 400, message: "malformed HTTP request: \(parserError)", type: "invalid_request_error",
                                     code: "malformed_http")
            }
            audit(answer.status, answer.code)
            let body = answer.body
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(body.count))
            headers.add(name: "connection", value: "close")
            let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: answer.status), headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head: responseInProgress = true
        case .end: responseInProgress = false
        case .body: break
        }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension ProtocolErrorHandler: Sendable {}
