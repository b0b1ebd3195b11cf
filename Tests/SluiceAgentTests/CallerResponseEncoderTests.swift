import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import SluiceAgent

/// ``CallerResponseEncoder`` against what it replaces, NIO's `HTTPResponseEncoder` behind
/// `NIOHTTPResponseHeadersValidator` (as `configureHTTPServerPipeline` sets them up): the
/// same requests in, the same response parts written, and the bytes, the write outcomes and
/// the errors the connection hears must be the same. The one difference is deliberate: an
/// empty header name, which NIO lets through, is refused.
@Suite("Caller response encoder, compared with NIO's")
struct CallerResponseEncoderTests {
    /// Records the errors that reach the end of the pipeline.
    final class ErrorRecorder: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        var errors: [String] = []
        func errorCaught(context: ChannelHandlerContext, error: any Error) { errors.append("\(error)") }
    }

    /// What one pipeline made of an exchange.
    struct Outcome: Equatable {
        var bytes: String
        var writes: [String]
        var errors: [String]
    }

    enum Step {
        case request(String)
        case response(HTTPServerResponsePart)
    }

    static func run(_ steps: [Step], ours: Bool) throws -> Outcome {
        let channel = EmbeddedChannel()
        let recorder = ErrorRecorder()
        if ours {
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try channel.pipeline.syncOperations.addHandler(CallerResponseEncoder())
        } else {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false)
        }
        try channel.pipeline.syncOperations.addHandler(recorder)
        var writes: [String] = []
        for step in steps {
            switch step {
            case .request(let text):
                try channel.writeInbound(channel.allocator.buffer(string: text))
            case .response(let part):
                let promise = channel.eventLoop.makePromise(of: Void.self)
                channel.writeAndFlush(part, promise: promise)
                channel.embeddedEventLoop.run()
                // Every write has completed once the embedded loop has run.
                do {
                    try promise.futureResult.wait()
                    writes.append("ok")
                } catch {
                    writes.append("\(error)")
                }
            }
        }
        var bytes = ""
        while let part = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = part { bytes += String(buffer: buffer) }
        }
        _ = try? channel.finish()
        return Outcome(bytes: bytes, writes: writes, errors: recorder.errors)
    }

    static func head(_ status: HTTPResponseStatus, _ headers: [(String, String)], version: HTTPVersion = .http1_1)
        -> Step
    {
        .response(.head(HTTPResponseHead(version: version, status: status, headers: HTTPHeaders(headers))))
    }

    static func body(_ text: String) -> Step {
        .response(.body(.byteBuffer(ByteBuffer(string: text))))
    }

    static let end = Step.response(.end(nil))
    static let get = Step.request("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")

    static let exchanges: [(String, [Step])] = [
        ("a length", [get, head(.ok, [("content-type", "application/json"), ("Content-Length", "2")]), body("{}"),
            end]),
        ("no length: chunked", [get, head(.ok, [("content-type", "text/event-stream")]), body("data: 1\n\n"), body(""),
            body("data: [DONE]\n\n"), end]),
        ("a transfer coding replaced", [get, head(.ok, [("Transfer-Encoding", "gzip"), ("x-a", "1"),
            ("transfer-encoding", "identity")]), body("abc"), end]),
        ("a length wins over a transfer coding", [get, head(.ok, [("transfer-encoding", "chunked"),
            ("content-length", "3")]), body("abc"), end]),
        ("204 carries no framing", [get, head(.noContent, [("content-length", "0"), ("transfer-encoding", "chunked"),
            ("x-request-id", "r1")]), end]),
        ("304 carries no framing", [get, head(.notModified, [("etag", "\"x\"")]), end]),
        ("an error answer", [get, head(.tooManyRequests, [("retry-after", "3"), ("content-length", "13")]),
            body("{\"error\":{}}\n"), end]),
        ("a status without a known phrase", [get, head(HTTPResponseStatus(statusCode: 299), []), body("x"), end]),
        ("HEAD keeps framing, sends no body", [Step.request("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
            head(.ok, [("content-type", "application/json")]), body("{}"), end]),
        ("CONNECT", [Step.request("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"),
            head(.ok, [("content-length", "5")]), end]),
        ("HTTP/1.0 runs to close", [Step.request("GET / HTTP/1.0\r\n\r\n"), head(.ok, [("x", "y")], version: .http1_0),
            body("abc"), end]),
        ("an interim answer, then the final one", [get, head(.continue, []), head(.ok, [("content-length", "1")]),
            body("x"), end]),
        ("pipelined GET then HEAD", [get, Step.request("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"),
            head(.ok, []), body("first"), end, head(.ok, []), body("second"), end]),
        ("trailers", [get, head(.ok, []), body("x"), .response(.end(HTTPHeaders([("x-usage", "7")])))]),
        ("trailers on a body with a length", [get, head(.ok, [("content-length", "1")]), body("x"),
            .response(.end(HTTPHeaders([("x-usage", "7")])))]),
        ("a value that would split the response", [get, head(.ok, [("x-rule", "a\r\nset-cookie: b")]), end]),
        ("a NUL in a value", [get, head(.ok, [("x-rule", "a\u{0}b")]), end]),
        ("DEL in a value", [get, head(.ok, [("x-rule", "a\u{7F}b")]), end]),
        ("a tab and UTF-8 in a value", [get, head(.ok, [("x-rule", "a\tb é"), ("content-length", "0")]), end]),
        ("a space in a name", [get, head(.ok, [("x rule", "a")]), end]),
        ("every token character in a name", [get, head(.ok, [("!#$%&'*+-.^_`|~09azAZ", "a")]), end]),
        ("a colon in a name", [get, head(.ok, [("x:rule", "a")]), end]),
        ("DEL in a name", [get, head(.ok, [("x\u{7F}rule", "a")]), end]),
        ("UTF-8 in a name", [get, head(.ok, [("x-régle", "a")]), end]),
        ("a reason phrase that would split the response", [get, head(HTTPResponseStatus(statusCode: 200,
            reasonPhrase: "OK\r\nx: y"), []), body("x"), end]),
        ("a custom reason phrase", [get, head(HTTPResponseStatus(statusCode: 200, reasonPhrase: "Fine"), []), end]),
        ("a bad trailer", [get, head(.ok, []), body("x"), .response(.end(HTTPHeaders([("x-a", "1\n2")])))]),
    ]

    @Test("every exchange comes out byte for byte as NIO's encoder and validator write it", arguments: exchanges)
    func sameAsNIO(_ exchange: (String, [Step])) throws {
        let ours = try Self.run(exchange.1, ours: true)
        let nio = try Self.run(exchange.1, ours: false)
        #expect(ours == nio, "\(exchange.0)")
        #expect(!ours.bytes.isEmpty || !ours.errors.isEmpty, "\(exchange.0)")
    }

    @Test("a chunked body is framed, a refused header writes nothing")
    func knownBytes() throws {
        let chunked = try Self.run(
            [Self.get, Self.head(.ok, [("x-a", "1")]), Self.body("hello"), Self.end], ours: true)
        #expect(
            chunked.bytes == "HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        let refused = try Self.run([Self.get, Self.head(.ok, [("x-a", "1\r\n")]), Self.end], ours: true)
        #expect(refused.bytes == "")
        #expect(refused.writes.first == "\(HTTPParserError.invalidHeaderToken)")
        #expect(refused.errors == ["\(HTTPParserError.invalidHeaderToken)"])
        // Stricter than NIO, which writes `: a`: a field name is at least one token character.
        let unnamed = try Self.run([Self.get, Self.head(.ok, [("", "a")]), Self.end], ours: true)
        #expect(unnamed.bytes == "" && unnamed.errors == ["\(HTTPParserError.invalidHeaderToken)"])
        #expect(try Self.run([Self.get, Self.head(.ok, [("", "a")]), Self.end], ours: false).bytes.contains(": a"))
    }
}
