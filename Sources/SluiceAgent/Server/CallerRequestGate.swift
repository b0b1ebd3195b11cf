import NIOCore
import NIOHTTP1

/// Hands a caller connection's requests on one at a time, each after the previous response
/// ended, as HTTP/1.1 pipelining requires, without turning the socket's read interest off
/// and on around every call.
///
/// NIO's `HTTPServerPipelineHandler` withholds every `read` while a response is pending. The
/// event loop then drops and restores the socket's read interest around each call: two
/// `epoll_ctl` calls per call, though SDK callers never pipeline. Here reading goes on while
/// a response is pending. Only when a pipelining caller's next request actually arrives is it
/// held, and reads are withheld until the held parts have been handed on, so what is held is
/// bounded by one read. Reading on also notices at once a caller that hangs up mid-response.
final class CallerRequestGate: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Phase: Equatable {
        /// Between calls: the next request's parts go straight on.
        case awaitingRequest
        /// A request's parts are going on. `answered` once its response ended early (a
        /// refusal before the whole body arrived): its remaining parts still go on.
        case receiving(answered: Bool)
        /// The request (or a framing error standing for one) was handed on and its response
        /// has not ended: whatever the caller sends now is held.
        case responding
    }

    private enum Held {
        case part(HTTPServerRequestPart)
        case parserError(HTTPParserError)
    }

    private var phase = Phase.awaitingRequest
    private var held = CircularBuffer<Held>()
    /// A `read` arrived while parts were held; it is issued once they are handed on.
    private var readWithheld = false
    /// Set while held parts are being handed on, as an answer written synchronously for one
    /// of them re-enters ``write(context:data:promise:)``.
    private var handingOn = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard phase != .responding, held.isEmpty else {
            held.append(.part(part))
            return
        }
        advance(past: part)
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A framing error belongs after the requests before it; any other error is the
        // connection's and goes on at once.
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard phase != .responding, held.isEmpty else {
            held.append(.parserError(parserError))
            return
        }
        phase = .responding
        context.fireErrorCaught(parserError)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Nobody is left to answer what was held.
        held.removeAll()
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if held.isEmpty {
            context.read()
        } else {
            readWithheld = true
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let ended: Bool
        if case .end = unwrapOutboundIn(data) { ended = true } else { ended = false }
        context.write(data, promise: promise)
        guard ended else { return }
        switch phase {
        case .responding:
            phase = .awaitingRequest
            handOnHeld(context: context)
        case .receiving(answered: false):
            phase = .receiving(answered: true)
        case .receiving(answered: true), .awaitingRequest:
            break
        }
    }

    private func advance(past part: HTTPServerRequestPart) {
        switch part {
        case .head:
            phase = .receiving(answered: false)
        case .body:
            break
        case .end:
            phase = phase == .receiving(answered: true) ? .awaitingRequest : .responding
        }
    }

    /// Hands held parts on until one of them ends a request whose response is then pending.
    private func handOnHeld(context: ChannelHandlerContext) {
        guard !handingOn else { return }
        handingOn = true
        defer { handingOn = false }
        while phase != .responding, let next = held.popFirst() {
            switch next {
            case .part(let part):
                advance(past: part)
                context.fireChannelRead(wrapInboundOut(part))
            case .parserError(let error):
                phase = .responding
                context.fireErrorCaught(error)
            }
        }
        if held.isEmpty, readWithheld {
            readWithheld = false
            context.read()
        }
    }
}

@available(*, unavailable)
extension CallerRequestGate: Sendable {}
