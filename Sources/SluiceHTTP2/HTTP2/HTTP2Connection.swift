import NIOCore

/// The thread-safe face of one HTTP/2 connection: every operation hops onto the
/// connection's event loop, where its ``HTTP2ClientHandler`` lives.
final class HTTP2Connection: UpstreamConnection {
    private let channel: any Channel
    private let handler: NIOLoopBound<HTTP2ClientHandler>

    init(channel: any Channel, handler: HTTP2ClientHandler) {
        self.channel = channel
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
    }

    func start(_ call: UpstreamCall) {
        onLoop { [self] in $0.start(call, on: self) }
    }

    func consume(streamID: Int32, bytes: Int) {
        onLoop { $0.consume(streamID: streamID, bytes: bytes) }
    }

    func cancel(streamID: Int32) {
        // Always deferred: a cancel can arrive from inside a delegate callback, which runs
        // inside nghttp2_session_mem_recv on this loop.
        let handler = self.handler
        channel.eventLoop.execute { handler.value.cancel(streamID: streamID) }
    }

    func close() {
        onLoop { $0.goAway() }
    }

    private func onLoop(_ body: @escaping @Sendable (HTTP2ClientHandler) -> Void) {
        if channel.eventLoop.inEventLoop {
            body(handler.value)
        } else {
            let handler = self.handler
            channel.eventLoop.execute { body(handler.value) }
        }
    }
}
