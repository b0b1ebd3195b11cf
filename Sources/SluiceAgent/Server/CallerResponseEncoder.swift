import NIOCore
import NIOHTTP1
import SluiceAPI

/// Writes responses to the caller as HTTP/1.1 bytes, in place of NIO's header validator and
/// response encoder: one handler and one pass over each header instead of two handlers, a
/// validation pass and a copy, and no promises made to cascade a chunk's three writes.
///
/// What goes on the wire is what NIO's `HTTPResponseEncoder` behind its
/// `NIOHTTPResponseHeadersValidator` writes (`CallerResponseEncoderTests` compares the two
/// byte for byte), except that an empty header name is refused where NIO writes it:
/// - a header whose name is not a token, or whose value (or the status's reason phrase)
///   holds a control character other than HTAB, fails the head's write with
///   `HTTPParserError.invalidHeaderToken`, reported to the connection as an error; nothing
///   is written, and every later write on the connection fails the same way;
/// - framing follows the status: no body for 1xx, 204 and 304 (`content-length` and
///   `transfer-encoding` are removed); otherwise `content-length` when the head has one,
///   else chunked (HTTP/1.1) or until close (HTTP/1.0);
/// - the answer to a `HEAD` or `CONNECT` request keeps its framing headers but carries no
///   body: a body write fails with `NIOHTTPResponseEncoderError.responseBodyNotAllowed`.
///
/// It sits after the request decoder, so it sees each decoded request head go by and knows
/// which method each response answers.
final class CallerResponseEncoder: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = IOData

    /// Methods of requests not yet answered, oldest first (pipelined callers can have several).
    private var pendingMethods = CircularBuffer<HTTPMethod>(initialCapacity: 2)
    private var chunked = false
    /// The response answers a HEAD or CONNECT request: no body goes out.
    private var bodySuppressed = false
    /// A header was refused: the response cannot be completed, so every later write fails.
    private var refused = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { pendingMethods.append(head.method) }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !refused else {
            promise?.fail(HTTPParserError.invalidHeaderToken)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(let head):
            writeHead(head, context: context, promise: promise)
        case .body(let body):
            guard !bodySuppressed else {
                promise?.fail(NIOHTTPResponseEncoderError.responseBodyNotAllowed)
                return
            }
            guard chunked, body.readableBytes > 0 else {
                // An empty chunk would end a chunked body; it still goes down so that its
                // promise completes in order.
                context.write(wrapOutboundOut(body), promise: promise)
                return
            }
            var size = context.channel.allocator.buffer(capacity: 18)
            withDigits(of: UInt64(body.readableBytes), radix: 16) { _ = size.writeBytes($0) }
            size.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(size)), promise: nil)
            context.write(wrapOutboundOut(body), promise: nil)
            // Writes complete in order, so the last one's promise stands for all three.
            context.write(wrapOutboundOut(.byteBuffer(Self.crlf(context))), promise: promise)
        case .end(let trailers):
            if let trailers, !trailers.allSatisfy({ Self.isValidName($0.name) && Self.isValidValue($0.value) }) {
                refuse(context: context, promise: promise)
                return
            }
            bodySuppressed = false
            if chunked {
                chunked = false
                var last = context.channel.allocator.buffer(capacity: trailers == nil ? 5 : 256)
                last.writeStaticString("0\r\n")
                for (name, value) in trailers ?? [:] {
                    last.writeString(name)
                    last.writeStaticString(": ")
                    last.writeString(value)
                    last.writeStaticString("\r\n")
                }
                last.writeStaticString("\r\n")
                context.write(wrapOutboundOut(.byteBuffer(last)), promise: promise)
            } else if let promise {
                // Nothing to write, but the promise must not complete before earlier writes.
                let nothing = context.channel.allocator.buffer(capacity: 0)
                context.write(wrapOutboundOut(.byteBuffer(nothing)), promise: promise)
            }
        }
    }

    private func writeHead(_ head: HTTPResponseHead, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        let reason = head.status.reasonPhrase
        guard Self.isValidValue(reason) else {
            refuse(context: context, promise: promise)
            return
        }
        var hasLength = false
        var hasTransferEncoding = false
        var headerBytes = 0
        for (name, value) in head.headers {
            guard Self.isValidName(name), Self.isValidValue(value) else {
                refuse(context: context, promise: promise)
                return
            }
            switch Self.framing(name) {
            case .contentLength: hasLength = true
            case .transferEncoding: hasTransferEncoding = true
            case nil: break
            }
            headerBytes += name.utf8.count + value.utf8.count + 4
        }
        let code = head.status.code
        // A 1xx other than 101 is followed by the final answer to the same request.
        let interim = (100..<200).contains(code) && code != 101
        var answersConnect = false
        if !interim, let method = pendingMethods.popFirst() {
            // Matched by case: HTTPMethod's == compares the methods' names as strings.
            switch method {
            case .HEAD: bodySuppressed = true
            case .CONNECT: (bodySuppressed, answersConnect) = (true, true)
            default: bodySuppressed = false
            }
        }
        // NIO's framing: no body for 1xx, 204, 304 and CONNECT, and then neither length nor
        // transfer coding; a length wins over a transfer coding; with neither, HTTP/1.1 is
        // chunked (any transfer-encoding replaced by `chunked`, last) and HTTP/1.0 runs to close.
        let mayHaveBody = !answersConnect && head.status.mayHaveResponseBody
        let http11 = head.version.major == 1 && head.version.minor >= 1
        let addChunked = mayHaveBody && !hasLength && http11
        let dropLength = !mayHaveBody
        let dropTransferEncoding = hasTransferEncoding && (!mayHaveBody || hasLength || addChunked)
        chunked = addChunked && !bodySuppressed

        // Sized once and filled by copies: the status line, the headers, the blank line.
        let chunkedHeader: StaticString = "transfer-encoding: chunked\r\n"
        // The status line's fixed part is at most 70 bytes (three numbers of up to 20 digits).
        let capacity = 72 + reason.utf8.count + headerBytes + chunkedHeader.utf8CodeUnitCount
        var buffer = context.channel.allocator.buffer(capacity: capacity)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: capacity) { space in
            var out = HeadWriter(space: space)
            if head.version == .http1_1 {
                out.put("HTTP/1.1 ")
            } else {
                out.put("HTTP/")
                out.put(decimal: UInt(clamping: head.version.major))
                out.put(".")
                out.put(decimal: UInt(clamping: head.version.minor))
                out.put(" ")
            }
            out.put(decimal: UInt(code))
            out.put(" ")
            out.put(reason)
            out.put("\r\n")
            for (name, value) in head.headers {
                switch Self.framing(name) {
                case .contentLength where dropLength, .transferEncoding where dropTransferEncoding: continue
                default: break
                }
                out.put(name)
                out.put(twoBytes: ": ")
                out.put(value)
                out.put(twoBytes: "\r\n")
            }
            if addChunked { out.put(chunkedHeader) }
            out.put("\r\n")
            return out.written
        }
        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
    }

    /// A header that could split the response: the write fails and the connection hears of it,
    /// as NIO's validator does.
    private func refuse(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        refused = true
        promise?.fail(HTTPParserError.invalidHeaderToken)
        context.fireErrorCaught(HTTPParserError.invalidHeaderToken)
    }

    private static func crlf(_ context: ChannelHandlerContext) -> ByteBuffer {
        var buffer = context.channel.allocator.buffer(capacity: 2)
        buffer.writeStaticString("\r\n")
        return buffer
    }

    private enum FramingHeader {
        case contentLength
        case transferEncoding
    }

    /// Which framing header `name` is, compared without regard to case; nil for the others,
    /// which mostly differ in length and are told apart without reading a byte.
    private static func framing(_ name: String) -> FramingHeader? {
        switch name.utf8.count {
        case 14: equalsIgnoringCase(name, "content-length") ? .contentLength : nil
        case 17: equalsIgnoringCase(name, "transfer-encoding") ? .transferEncoding : nil
        default: nil
        }
    }

    private static func equalsIgnoringCase(_ name: String, _ lowercase: StaticString) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
            for index in 0..<bytes.count {
                let byte = bytes[index]
                let folded = (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) ? byte | 0x20 : byte
                guard folded == lowercase.utf8Start[index] else { return false }
            }
            return true
        }
    }

    /// RFC 9110 token characters, at least one.
    private static func isValidName(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            guard !bytes.isEmpty else { return false }
            // One bit per ASCII byte: a shift and a test where a chain of range checks was.
            let (low, high) = tokenBytes
            for byte in bytes {
                guard byte < 128 else { return false }
                let word = byte < 64 ? low : high
                guard word &>> UInt64(byte & 63) & 1 == 1 else { return false }
            }
            return true
        }
    }

    /// The token bytes as bits: bytes 0–63 in the first word, 64–127 in the second.
    private static let tokenBytes: (UInt64, UInt64) = {
        var words: (UInt64, UInt64) = (0, 0)
        for byte in UInt8(0)..<128 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"),
                UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"),
                UInt8(ascii: "|"), UInt8(ascii: "~"):
                if byte < 64 { words.0 |= 1 << byte } else { words.1 |= 1 << (byte - 64) }
            default:
                break
            }
        }
        return words
    }()

    /// Any byte but the ASCII controls (HTAB allowed): CR, LF or NUL would split the response.
    /// The same set is what a reason phrase may hold.
    private static func isValidValue(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { bytes in
            for byte in bytes where byte != 0x09 && (byte < 0x20 || byte == 0x7F) { return false }
            return true
        }
    }
}

/// Copies into space sized beforehand (the caller counts every byte it will put).
private struct HeadWriter {
    let space: UnsafeMutableRawBufferPointer
    private(set) var written = 0

    init(space: UnsafeMutableRawBufferPointer) {
        self.space = space
    }

    mutating func put(_ text: StaticString) {
        put(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func put(_ text: String) {
        var text = text
        text.withUTF8 { put(UnsafeRawBufferPointer($0)) }
    }

    /// Two bytes stored in place: the separators around every header, too short to be worth
    /// a call to `memmove`.
    mutating func put(twoBytes text: StaticString) {
        precondition(text.utf8CodeUnitCount == 2 && written + 2 <= space.count, "response head larger than counted")
        space[written] = text.utf8Start[0]
        space[written + 1] = text.utf8Start[1]
        written += 2
    }

    /// A number in decimal (a status code, a version digit): at most 20 digits.
    mutating func put(decimal value: UInt) {
        withDigits(of: UInt64(value)) { put(UnsafeRawBufferPointer($0)) }
    }

    private mutating func put(_ bytes: UnsafeRawBufferPointer) {
        precondition(written + bytes.count <= space.count, "response head larger than counted")
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        (space.baseAddress! + written).copyMemory(from: source, byteCount: bytes.count)
        written += bytes.count
    }
}

@available(*, unavailable)
extension CallerResponseEncoder: Sendable {}
