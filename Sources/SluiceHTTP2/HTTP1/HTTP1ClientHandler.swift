import NIOCore
import NIOHTTP1

/// One HTTP/1.1 upstream connection carrying one call at a time (no pipelining).
///
/// Back-pressure: reads from the socket stop while more than ``highWater`` bytes wait to
/// be written to the client, and resume as the caller reports them consumed.
final class HTTP1ClientHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPClientRequestPart

    static let highWater = 1 << 20

    private let events: any ConnectionEvents
    private let authority: String
    private var context: ChannelHandlerContext?
    private var call: UpstreamCall?
    private var unconsumed = 0
    private var readPending = false
    private var responseStarted = false
    private var keepAlive = true
    private var lastActivity = NIODeadline.now()
    private var timer: Scheduled<Void>?
    private var closed = false

    init(events: any ConnectionEvents, authority: String) {
        self.events = events
        self.authority = authority
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Signals readiness; called once the pipeline is in place.
    func markReady() {
        events.connectionReady(protocol: .http1, maxStreams: 1)
    }

    /// Starts `call` as a new stream; `connection` is this handler's thread-safe face, which
    /// the call keeps to return window and cancel.
    func start(_ call: UpstreamCall, on connection: any UpstreamConnection) {
        guard let context, !closed, self.call == nil else {
            events.streamClosed()
            events.streamFailed(call, UpstreamError(.refused, "connection is busy or closed"))
            return
        }
        self.call = call
        guard call.attach(to: connection, streamID: 1) else {
            finishCall(reuse: false)
            return
        }
        responseStarted = false
        unconsumed = 0
        let request = call.request
        var headers = HTTPHeaders()
        headers.reserveCapacity(request.headers.count + 2)
        headers.add(name: "host", value: authority)
        for header in request.headers { headers.add(name: header.name, value: header.value) }
        headers.add(name: "content-length", value: String(request.body.readableBytes))
        let head = HTTPRequestHead(
            version: .http1_1, method: HTTPMethod(rawValue: request.method), uri: request.path, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if request.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        arm(timeout: request.firstByteTimeout, kind: .firstByteTimeout)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let call else { return }
        lastActivity = .now()
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard head.status.code >= 200 else { return }
            if !responseStarted {
                responseStarted = true
                timer?.cancel()
                arm(timeout: call.request.idleTimeout, kind: .idleTimeout)
            }
            keepAlive = head.isKeepAlive
            let headers = head.headers.map { (name: $0.name.lowercased(), value: $0.value) }
            call.deliverHead(UpstreamResponseHead(status: Int(head.status.code), headers: headers, httpVersion: .http1))
        case .body(let chunk):
            unconsumed += chunk.readableBytes
            call.deliverBody(chunk)
        case .end:
            call.deliverFinished()
            finishCall(reuse: keepAlive)
        }
    }

    func read(context: ChannelHandlerContext) {
        if unconsumed > Self.highWater {
            readPending = true
        } else {
            context.read()
        }
    }

    func consume(bytes: Int) {
        unconsumed = max(0, unconsumed - bytes)
        if readPending, unconsumed <= Self.highWater, let context {
            readPending = false
            context.read()
        }
    }

    func cancel() {
        guard call != nil else { return }
        // HTTP/1.1 has no way to abandon one request but to close the connection.
        finishCall(reuse: false)
    }

    func close() {
        guard let context, !closed else { return }
        if call == nil { context.close(promise: nil) } else { keepAlive = false }
    }

    private func finishCall(reuse: Bool) {
        timer?.cancel()
        timer = nil
        call = nil
        unconsumed = 0
        if reuse {
            if readPending, let context {
                readPending = false
                context.read()
            }
            events.streamClosed()
        } else if !closed {
            // Leave the pool before closing, so no new call is handed to a dying connection.
            closed = true
            events.connectionClosed()
            context?.close(promise: nil)
        }
    }

    private func arm(timeout: TimeAmount, kind: UpstreamError.Kind) {
        guard let context else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            self.timerFired(kind: kind)
        }
    }

    private func timerFired(kind: UpstreamError.Kind) {
        guard let call else { return }
        if kind == .idleTimeout {
            let quietFor = NIODeadline.now() - lastActivity
            if quietFor < call.request.idleTimeout {
                arm(timeout: call.request.idleTimeout - quietFor, kind: kind)
                return
            }
        }
        let limit = kind == .idleTimeout ? call.request.idleTimeout : call.request.firstByteTimeout
        let what = kind == .idleTimeout ? "no data from upstream for" : "no response from upstream within"
        finishCall(reuse: false)
        events.streamFailed(call, UpstreamError(kind, "\(what) \(Double(limit.nanoseconds) / 1e9)s"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let upstreamError =
            (error as? TLSError).map { UpstreamError(.tlsFailed, $0.message) }
            ?? UpstreamError(.protocolError, "HTTP/1.1 error: \(error)")
        failAndClose(upstreamError)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAndClose(UpstreamError(.connectionClosed, "upstream closed the connection"))
        context.fireChannelInactive()
    }

    private func failAndClose(_ error: UpstreamError) {
        guard !closed else { return }
        closed = true
        timer?.cancel()
        if let call {
            self.call = nil
            events.streamFailed(call, error)
        }
        events.connectionClosed()
    }
}

@available(*, unavailable)
extension HTTP1ClientHandler: Sendable {}

/// The thread-safe face of one HTTP/1.1 connection.
final class HTTP1Connection: UpstreamConnection {
    private let channel: any Channel
    private let handler: NIOLoopBound<HTTP1ClientHandler>

    init(channel: any Channel, handler: HTTP1ClientHandler) {
        self.channel = channel
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
    }

    func start(_ call: UpstreamCall) { onLoop { [self] in $0.start(call, on: self) } }
    func consume(streamID: Int32, bytes: Int) { onLoop { $0.consume(bytes: bytes) } }
    func cancel(streamID: Int32) {
        let handler = self.handler
        channel.eventLoop.execute { handler.value.cancel() }
    }
    func close() { onLoop { $0.close() } }

    private func onLoop(_ body: @escaping @Sendable (HTTP1ClientHandler) -> Void) {
        if channel.eventLoop.inEventLoop {
            body(handler.value)
        } else {
            let handler = self.handler
            channel.eventLoop.execute { body(handler.value) }
        }
    }
}
