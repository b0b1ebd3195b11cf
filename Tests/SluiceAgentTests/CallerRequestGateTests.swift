import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import SluiceAgent

/// ``CallerRequestGate`` between request parts written in and a recorder standing for the
/// connection handler, with a counter of the `read`s that reach the socket.
@Suite("Caller request gate")
struct CallerRequestGateTests {
    /// Counts the reads that get past the gate, as the socket would see them.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    /// What the connection handler was handed; answers each request at once when asked to.
    final class Recorder: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        var seen: [String] = []
        var answerAtOnce = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                seen.append("head \(head.uri)")
            case .body(let body):
                seen.append("body \(String(buffer: body))")
            case .end:
                seen.append("end")
                if answerAtOnce {
                    let head = HTTPResponseHead(version: .http1_1, status: .ok)
                    context.write(wrapOutboundOut(.head(head)), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            seen.append("error \(error)")
        }
    }

    let channel = EmbeddedChannel()
    let counter = ReadCounter()
    let recorder = Recorder()

    init() throws {
        try channel.pipeline.syncOperations.addHandlers(counter, CallerRequestGate(), recorder)
    }

    func request(_ uri: String, body: String? = nil) throws {
        try channel.writeInbound(HTTPServerRequestPart.head(Self.head(uri)))
        if let body { try channel.writeInbound(HTTPServerRequestPart.body(channel.allocator.buffer(string: body))) }
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
    }

    static func head(_ uri: String) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: .POST, uri: uri)
    }

    func answer() throws {
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
    }

    @Test("a caller that waits for each answer is never held and its reads are never withheld")
    func oneAtATime() throws {
        try request("/a", body: "x")
        channel.read()
        #expect(counter.reads == 1)  // a response is pending, and reading goes on
        try answer()
        try request("/b")
        channel.read()
        #expect(counter.reads == 2)
        #expect(recorder.seen == ["head /a", "body x", "end", "head /b", "end"])
    }

    @Test("a pipelined request waits for the answer before it, and reads wait for the held request")
    func pipelinedIsHeld() throws {
        try request("/a")
        try request("/b", body: "y")
        #expect(recorder.seen == ["head /a", "end"])
        channel.read()
        #expect(counter.reads == 0)
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        #expect(recorder.seen == ["head /a", "end"])  // a head alone does not end the answer
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        #expect(recorder.seen == ["head /a", "end", "head /b", "body y", "end"])
        #expect(counter.reads == 1)  // the withheld read goes out once nothing is held
    }

    @Test("answers written while held requests are handed on let the next ones through in order")
    func answeredWhileHandingOn() throws {
        try request("/a")
        try request("/b")
        try request("/c")
        channel.read()
        recorder.answerAtOnce = true
        try answer()
        #expect(recorder.seen == ["head /a", "end", "head /b", "end", "head /c", "end"])
        #expect(counter.reads == 1)
        var statuses: [String] = []
        while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
            if case .head(let head) = part { statuses.append("\(head.status.code)") }
        }
        #expect(statuses == ["200", "200", "200"])
    }

    @Test("a framing error behind a pending answer waits for it; other errors go on at once")
    func errorsInOrder() throws {
        try request("/a")
        channel.pipeline.fireErrorCaught(HTTPParserError.invalidHeaderToken)
        channel.pipeline.fireErrorCaught(ChannelError.ioOnClosedChannel)
        #expect(recorder.seen == ["head /a", "end", "error \(ChannelError.ioOnClosedChannel)"])
        try answer()
        #expect(recorder.seen.last == "error \(HTTPParserError.invalidHeaderToken)")
    }

    @Test("an answer given before its request ended lets the rest of that request through")
    func earlyAnswer() throws {
        try channel.writeInbound(HTTPServerRequestPart.head(Self.head("/a")))
        try answer()
        try channel.writeInbound(HTTPServerRequestPart.body(channel.allocator.buffer(string: "late")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        try request("/b")
        #expect(recorder.seen == ["head /a", "body late", "end", "head /b", "end"])
    }

    @Test("what was held is dropped when the caller goes")
    func droppedOnClose() throws {
        try request("/a")
        try request("/b")
        channel.pipeline.fireChannelInactive()
        try answer()
        #expect(recorder.seen == ["head /a", "end"])
    }
}
