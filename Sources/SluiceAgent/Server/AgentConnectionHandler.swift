import NIOCore
import NIOHTTP1
import SluiceAPI
import SluiceHTTP2

/// One caller connection (HTTP/1.1, keep-alive). ``CallerRequestGate`` sits in front, so
/// pipelined requests reach this handler one at a time, each after the previous response
/// ended.
///
/// Bodies are collected up to the configured cap; a larger body is refused with 413 as soon
/// as its size is known (from `Content-Length`, or once the bytes cross the cap), and the
/// rest is never read: the connection closes.
final class AgentConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(Request)
        /// The answer was given early (413); the rest of the body is dropped until close.
        case discarding
        case responding((any CallerBoundCall)?)
        /// Screened and waiting on its guardrails; nothing is reserved for it yet.
        case guarding(Request)
    }

    private struct Request {
        var head: HTTPRequestHead
        var route: AgentRoute
        var body: ByteBuffer?
        var account: Account
    }

    private let runtime: AgentRuntime
    private var state = State.idle
    private var keepAlive = true
    /// The current request counts towards in-flight (entered at its head, left at its end).
    private var requestOpen = false
    private var channel: (any Channel)?
    /// When the connection began waiting for the current request; nil while responding.
    private var waitingSince: NIODeadline? = .now()
    /// The connection's one timer (see ``armReadDeadline``).
    private var readDeadline: Scheduled<Void>?
    /// The guardrail exchange under way, cancelled if the caller hangs up.
    private var guardTask: Task<Void, Never>?

    init(runtime: AgentRuntime) {
        self.runtime = runtime
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            ScrubHeaders.apply(&head.headers)
            keepAlive = head.isKeepAlive
            let account = Account(
                runtime: runtime, requestID: runtime.requestIDs.next(), method: head.method.rawValue,
                path: String(head.uri.prefix(256)), startedAt: .now(), startedAtWall: runtime.now(),
                trace: runtime.tracer?.begin(traceparent: head.headers.first(name: "traceparent")))
            let request = Request(
                head: head,
                route: AgentRoute(
                    method: head.method.rawValue, uri: head.uri, upgrade: head.headers.contains(name: "upgrade")),
                body: nil, account: account)
            runtime.inFlight.enter()
            requestOpen = true
            if let declared = head.headers.first(name: "content-length").flatMap(Int.init),
                declared > runtime.settings.maxRequestBodyBytes
            {
                refuseTooLarge(channel: context.channel, request: request)
                return
            }
            state = .receiving(request)
        case .body(var chunk):
            guard case .receiving(var request) = state else { return }
            let size = (request.body?.readableBytes ?? 0) + chunk.readableBytes
            guard size <= runtime.settings.maxRequestBodyBytes else {
                refuseTooLarge(channel: context.channel, request: request)
                return
            }
            state = .idle  // drop the enum's reference so the buffer appends in place
            if request.body == nil {
                request.body = chunk
            } else {
                request.body!.writeBuffer(&chunk)
            }
            state = .receiving(request)
        case .end:
            guard case .receiving(let request) = state else { return }
            waitingSince = nil
            state = .responding(nil)
            dispatch(context: context, request: request)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .responding(let call) = state {
            call?.clientDisconnected()
            finishRequest()
        } else if case .receiving(let request) = state {
            request.account.settle(CallOutcome(status: 499, errorCode: "client_disconnected"))
            finishRequest()
        } else if case .guarding(let request) = state {
            guardTask?.cancel()
            guardTask = nil
            request.account.settle(CallOutcome(status: 499, errorCode: "client_disconnected"))
            finishRequest()
        }
        context.fireChannelInactive()
    }

    /// Requests the HTTP/1.1 parser rejected get 431 (header block too large) or 400
    /// (conflicting `Content-Length`/`Transfer-Encoding`, bad chunking, invalid characters),
    /// and the connection closes: after a framing error nothing further on it can be trusted.
    /// A response already under way cannot be replaced, so then the connection just closes.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        if case .invalidEOFState = parserError, case .receiving(let request) = state {
            // The caller closed in the middle of its request: nobody is left to answer, and
            // it is the caller's hang-up, not a malformed request.
            request.account.settle(CallOutcome(status: 499, errorCode: "client_disconnected"))
            finishRequest()
            state = .discarding
            context.close(promise: nil)
            return
        }
        let answer: OpenAIError
        if case .headerOverflow = parserError {
            answer = OpenAIError(
                status: 431, message: "request headers are too large", type: "invalid_request_error",
                code: "request_header_fields_too_large")
        } else {
            answer = OpenAIError(
                status: 400, message: "malformed HTTP request: \(parserError)", type: "invalid_request_error",
                code: "malformed_http")
        }
        switch state {
        case .responding, .discarding, .guarding:
            context.close(promise: nil)
        case .idle, .receiving:
            let account: Account
            if case .receiving(let request) = state {
                account = request.account
            } else {
                account = Account(
                    runtime: runtime, requestID: runtime.requestIDs.next(), method: "-", path: "-",
                    startedAt: .now(), startedAtWall: runtime.now())
            }
            answerAndClose(answer, account: account, on: context.channel)
        }
    }

    /// The last answer on a connection that cannot be trusted further: audited, written,
    /// then closed once it is out.
    private func answerAndClose(_ answer: OpenAIError, account: Account, on channel: any Channel) {
        account.settle(CallOutcome(status: answer.status, errorCode: answer.code))
        finishRequest()
        keepAlive = false
        state = .discarding
        writeJSONResponse(answer.body, status: answer.status, on: channel, requestID: account.requestID, close: true)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: - Dispatch

    private func dispatch(context: ChannelHandlerContext, request: Request) {
        switch request.route {
        case .openAI(let endpoint):
            forward(context: context, request: request, endpoint: endpoint)
        case .anthropicMessages:
            forward(context: context, request: request, endpoint: .chatCompletions, dialect: .anthropic)
        case .listModels:
            switch ListModels.answer(
                headers: request.head.headers, peer: context.channel.remoteAddress, runtime: runtime)
            {
            case .success(let body):
                respond(channel: context.channel, request: request, status: 200, body: body)
            case .failure(let refusal):
                respond(
                    channel: context.channel, request: request, status: refusal.error.status,
                    body: AgentRoute.callerDialect(of: request.head.uri).body(refusal.error),
                    errorCode: refusal.error.code, refusal: refusal)
            }
        case .health:
            respond(channel: context.channel, request: request, status: 200, body: Array(#"{"status":"ok"}"#.utf8))
        case .ready:
            let readiness = Readiness(runtime: runtime)
            respond(channel: context.channel, request: request, status: readiness.status, body: readiness.body)
        case .methodNotAllowed(let allowed):
            respondError(
                channel: context.channel, request: request,
                OpenAIError(
                    status: 405, message: "\(request.head.method.rawValue) is not allowed here; use \(allowed)",
                    type: "invalid_request_error", code: "method_not_allowed"), extraHeaders: [("allow", allowed)])
        case .notMetered(let endpoint):
            let path = AgentRoute.path(of: request.head.uri)
            let method = request.head.method.rawValue
            // Only an explicit pass-through in the policy lets such a call through, never an upgrade.
            guard !endpoint.upgrade,
                let checked = PassThroughCall.check(
                    method: method, path: path, headers: request.head.headers, peer: context.channel.remoteAddress,
                    runtime: runtime)
            else {
                respondError(channel: context.channel, request: request, endpoint.error)
                return
            }
            switch checked {
            case .failure(let refusal):
                refuse(
                    refusal, channel: context.channel, request: request,
                    dialect: AgentRoute.callerDialect(of: request.head.uri))
            case .success(let admitted):
                request.account.admit(admitted.call)
                let relay = PassThroughRelay(
                    channel: context.channel, admitted: admitted, account: request.account, runtime: runtime
                ) { [self] ending in
                    self.responseEnded(ending)
                }
                state = .responding(relay)
                relay.start(
                    PassThroughCall.request(
                        admitted, method: method, uri: request.head.uri, headers: request.head.headers,
                        body: request.body, settings: runtime.settings))
            }
        }
    }

    private func forward(
        context: ChannelHandlerContext, request: Request, endpoint: OpenAIEndpoint, dialect: CallerDialect = .openAI
    ) {
        var bytes = request.body.map { Array($0.readableBytesView) } ?? []
        var messagesRequest: JSONValue?
        if dialect == .anthropic {
            // A Messages call is checked and routed as the chat call it amounts to.
            do throws(RequestBodyError) {
                let parsed = try AnthropicIngress.parse(bytes, maxDepth: runtime.settings.maxJSONDepth)
                bytes = try AnthropicIngress.chatBody(from: parsed)
                messagesRequest = parsed
            } catch {
                respondError(
                    channel: context.channel, request: request,
                    OpenAIError(
                        status: 400, message: error.message, type: "invalid_request_error",
                        code: error.code, param: error.param))
                return
            }
        }
        let candidate: Authorize.Candidate
        switch Authorize.screen(
            endpoint: endpoint, headers: request.head.headers, peer: context.channel.remoteAddress, body: bytes,
            runtime: runtime,
            callerDialect: dialect, messagesRequest: messagesRequest)
        {
        case .failure(let refusal):
            refuse(refusal, channel: context.channel, request: request, dialect: dialect)
            return
        case .success(let screened):
            candidate = screened
        }
        let guardrails = candidate.guardrails
        guard !guardrails.isEmpty else {
            admitAndStart(candidate, channel: context.channel, request: request, regate: false)
            return
        }
        // The guardrails are asked off the event loop's back; their verdict comes back to it.
        state = .guarding(request)
        let eventLoop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        let runtime = runtime
        let account = request.account
        guardTask = Task {
            let outcome = await Guard.run(
                guardrails, candidate: candidate, requestID: account.requestID, runtime: runtime, on: eventLoop)
            eventLoop.execute { handler.value.guarded(outcome, account: account) }
        }
    }

    /// The guardrails' verdict on the call `account` belongs to, back on the event loop.
    private func guarded(_ outcome: Guard.Outcome, account: Account) {
        // The caller went away meanwhile: the call was settled then.
        guard case .guarding(let request) = state, request.account === account, let channel else { return }
        guardTask = nil
        account.noteGuardrails(outcome.decisions)
        switch outcome.result {
        case .failure(let refusal):
            refuse(refusal, channel: channel, request: request, dialect: AgentRoute.callerDialect(of: request.head.uri))
        case .success(let candidate):
            admitAndStart(candidate, channel: channel, request: request, regate: true)
        }
    }

    private func admitAndStart(
        _ candidate: Authorize.Candidate, channel: any Channel, request: Request, regate: Bool
    ) {
        let permit: Authorize.Permit
        switch Authorize.admit(candidate, runtime: runtime, regate: regate) {
        case .failure(let refusal):
            refuse(refusal, channel: channel, request: request, dialect: candidate.callerDialect)
            return
        case .success(let granted):
            permit = granted
        }
        request.account.admit(permit)
        let call = RoutedCall(channel: channel, permit: permit, account: request.account, runtime: runtime) {
            [self] ending in
            self.responseEnded(ending)
        }
        state = .responding(call)
        call.start()
    }

    private func refuse(_ refusal: Authorize.Refusal, channel: any Channel, request: Request, dialect: CallerDialect) {
        runtime.metrics.denied(alias: refusal.alias, team: refusal.caller?.team, reason: refusal.error.code)
        respond(
            channel: channel, request: request, status: refusal.error.status, body: dialect.body(refusal.error),
            extraHeaders: refusal.headers, errorCode: refusal.error.code, refusal: refusal)
    }

    // MARK: - Answers given here

    private func respond(
        channel: any Channel, request: Request, status: Int, body: [UInt8],
        extraHeaders: [(String, String)] = [], errorCode: String? = nil, refusal: Authorize.Refusal? = nil
    ) {
        // Accounted before the answer leaves, as every call is: a caller that saw its
        // answer can count on its usage being spooled.
        // Successful probes are not audited: kubelet asks every few seconds.
        if status >= 400 || (request.route != .health && request.route != .ready) {
            request.account.settle(CallOutcome(status: status, refusal: refusal, errorCode: errorCode))
        }
        writeJSONResponse(
            body, status: status, on: channel, requestID: request.account.requestID,
            close: !keepAlive, extraHeaders: extraHeaders)
        responseEnded(.complete)
    }

    private func respondError(
        channel: any Channel, request: Request, _ error: OpenAIError, extraHeaders: [(String, String)] = []
    ) {
        respond(
            channel: channel, request: request, status: error.status,
            body: AgentRoute.callerDialect(of: request.head.uri).body(error),
            extraHeaders: extraHeaders, errorCode: error.code)
    }

    private func refuseTooLarge(channel: any Channel, request: Request) {
        keepAlive = false  // the rest of the body is never read, so the connection cannot be reused
        state = .discarding
        let limit = runtime.settings.maxRequestBodyBytes
        respondError(
            channel: channel, request: request,
            OpenAIError(
                status: 413, message: "the request body exceeds the limit of \(limit) bytes",
                type: "invalid_request_error", code: "request_too_large"))
    }

    /// Ends the current response (the relay or a local answer has written head and body).
    private func responseEnded(_ ending: ResponseEnding) {
        let wasDiscarding: Bool
        if case .discarding = state { wasDiscarding = true } else { wasDiscarding = false }
        finishRequest()
        if wasDiscarding { state = .discarding }
        guard let channel else { return }
        switch ending {
        case .abort:
            channel.close(promise: nil)
        case .complete where keepAlive && !wasDiscarding:
            channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        case .complete, .completeAndClose:
            channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        channel = context.channel
        armReadDeadline()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        readDeadline?.cancel()
        channel = nil
    }

    /// Each request must arrive whole within `request_read_timeout_seconds` of the
    /// connection starting to wait for it. A caller trickling bytes (slowloris) or a body
    /// gets 408; a connection idle between requests is closed quietly. One timer per
    /// connection re-arms itself, rather than one per request.
    private func armReadDeadline(in delay: TimeAmount? = nil) {
        guard let channel else { return }
        let timeout = readTimeout
        readDeadline = channel.eventLoop.assumeIsolated().scheduleTask(in: delay ?? timeout) { [self] in
            self.readDeadline = nil
            guard let since = self.waitingSince else {
                self.armReadDeadline()  // responding: the clock restarts when it ends
                return
            }
            let waited = NIODeadline.now() - since
            if waited < timeout {
                self.armReadDeadline(in: timeout - waited)
            } else {
                self.readDeadlinePassed()
            }
        }
    }

    private var readTimeout: TimeAmount {
        .nanoseconds(Int64(runtime.settings.requestReadTimeoutSeconds * 1e9))
    }

    private func readDeadlinePassed() {
        guard let channel else { return }
        switch state {
        case .receiving(let request):
            let answer = OpenAIError(
                status: 408,
                message: "the request did not arrive within \(runtime.settings.requestReadTimeoutSeconds)s",
                type: "invalid_request_error", code: "request_timeout")
            answerAndClose(answer, account: request.account, on: channel)
        case .idle:
            channel.close(promise: nil)
        case .responding, .discarding, .guarding:
            armReadDeadline()
        }
    }

    private func requestOpenLeave() {
        if requestOpen {
            requestOpen = false
            runtime.inFlight.leave()
        }
    }

    private func finishRequest() {
        requestOpenLeave()
        state = .idle
        waitingSince = .now()
    }
}

/// How a response ended, which decides what happens to the connection.
enum ResponseEnding {
    /// Fully written: the connection may carry the next request (if the caller keeps it alive).
    case complete
    /// Fully written, but the connection must close after it.
    case completeAndClose
    /// Cut short after part of the body went out: close without a final chunk, so the
    /// caller cannot mistake the truncated body for a whole one.
    case abort
}

@available(*, unavailable)
extension AgentConnectionHandler: Sendable {}
