import NIOCore
import NIOHTTP1
import SluiceAPI
import SluiceHTTP2
import SluicePolicy

/// Something answering the caller that must hear when the caller goes away.
protocol CallerBoundCall: AnyObject {
    func clientDisconnected()
}

extension RoutedCall: CallerBoundCall {}

/// Relays a pass-through call's answer (see ``PassThroughCall``): a success streams to the
/// caller as it arrives (window returned as writes complete), keeping a bounded copy of a
/// JSON answer to read its `usage`; an error status is read whole (bounded), scrubbed of
/// credentials and sent on. Runs on the caller's event loop.
final class PassThroughRelay: UpstreamResponseDelegate, CallerBoundCall {
    /// The most of a JSON answer kept to read usage from; a longer answer is relayed whole
    /// and counted without usage.
    static let usageCopyLimit = 1 << 20
    /// The most of an error answer relayed (it is read whole to scrub it).
    static let errorBodyLimit = 64 << 10

    private let channel: any Channel
    private let admitted: PassThroughCall.Admitted
    private let account: Account
    private let runtime: AgentRuntime
    private let onComplete: (ResponseEnding) -> Void
    var call: UpstreamCall?
    private var status = 0
    private var headSent = false
    private var errorBody: [UInt8]?
    /// The answer so far, for usage; nil once it is not JSON or too long.
    private var usageCopy: [UInt8]?
    private var timeToFirstByte: TimeAmount?
    private var httpVersion: String?
    private var finished = false
    private var flushScheduled = false

    init(
        channel: any Channel, admitted: PassThroughCall.Admitted, account: Account, runtime: AgentRuntime,
        onComplete: @escaping (ResponseEnding) -> Void
    ) {
        self.channel = channel
        self.admitted = admitted
        self.account = account
        self.runtime = runtime
        self.onComplete = onComplete
    }

    func start(_ request: UpstreamRequest) {
        call = runtime.upstream.execute(
            request, to: DeploymentRouter.origin(of: admitted.deployment), on: channel.eventLoop, delegate: self)
    }

    // MARK: - Upstream events

    func upstreamReceivedHead(_ head: UpstreamResponseHead) {
        guard !finished else { return }
        timeToFirstByte = .now() - account.startedAt
        httpVersion = head.httpVersion.rawValue
        status = head.status
        if status >= 400 {
            errorBody = []
            return
        }
        var headers = HTTPHeaders()
        for (name, value) in head.headers where PassThroughCall.returnedResponseHeaders.contains(name) {
            headers.add(name: name, value: value)
        }
        headers.add(name: "x-sluice-request-id", value: account.requestID)
        if head.header("content-type")?.contains("json") == true { usageCopy = [] }
        channel.write(
            HTTPServerResponsePart.head(
                HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)),
            promise: nil)
        headSent = true
        scheduleFlush()
    }

    func upstreamReceivedBody(_ chunk: ByteBuffer) {
        guard !finished else { return }
        if var body = errorBody {
            errorBody = nil
            let room = Self.errorBodyLimit - body.count
            if room > 0 { body.append(contentsOf: chunk.readableBytesView.prefix(room)) }
            errorBody = body
            call?.consumed(chunk.readableBytes)
            return
        }
        if var copy = usageCopy {
            usageCopy = nil
            if copy.count + chunk.readableBytes <= Self.usageCopyLimit {
                copy.append(contentsOf: chunk.readableBytesView)
                usageCopy = copy
            }
        }
        let bytes = chunk.readableBytes
        let call = self.call
        let promise = channel.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { result in
            if case .success = result { call?.consumed(bytes) }
        }
        channel.write(HTTPServerResponsePart.body(.byteBuffer(chunk)), promise: promise)
        scheduleFlush()
    }

    func upstreamFinished() {
        guard !finished else { return }
        if let body = errorBody {
            // The provider's own error, with its status; credentials scrubbed.
            let scrubbed = admitted.call.policy.scrubber.scrub(body)
            writeJSONResponse(
                scrubbed, status: status, on: channel, requestID: account.requestID, close: false)
            end(status: status, usage: nil, errorCode: "upstream_http_\(status)", ending: .complete)
            return
        }
        // A JSON answer that reports usage is priced; any other success still counts as a request.
        let usage = usageCopy.flatMap { copy in copy.withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) } }
        end(status: status, usage: usage ?? TokenUsage(promptTokens: 0, completionTokens: 0), ending: .complete)
    }

    func upstreamFailed(_ error: UpstreamError) {
        guard !finished else { return }
        guard !headSent else {
            // Part of the answer went out: close without an end, so the caller cannot take
            // a cut body for a whole one.
            end(status: status, usage: nil, errorCode: error.kind.rawValue, ending: .abort)
            return
        }
        let answer = OpenAIError(
            status: error.isTimeout ? 504 : 502,
            message: "the pass-through \"\(admitted.passThrough.name)\" to \(admitted.deployment.endpoint) failed:"
                + " \(error.message)",
            type: "api_error", code: error.kind.rawValue)
        writeJSONResponse(answer.body, status: answer.status, on: channel, requestID: account.requestID, close: false)
        end(status: answer.status, usage: nil, errorCode: answer.code, ending: .complete)
    }

    func clientDisconnected() {
        guard !finished else { return }
        call?.cancel()
        finished = true
        call = nil
        account.settle(
            CallOutcome(
                status: 499, deployment: admitted.deployment, servedBy: admitted.alias, attempts: 1,
                httpVersion: httpVersion, timeToFirstByte: timeToFirstByte, errorCode: "client_disconnected"))
    }

    // MARK: -

    private func end(status: Int, usage: TokenUsage?, errorCode: String? = nil, ending: ResponseEnding) {
        finished = true
        call = nil
        account.settle(
            CallOutcome(
                status: status, deployment: admitted.deployment, servedBy: admitted.alias, attempts: 1,
                httpVersion: httpVersion, usage: usage, timeToFirstByte: timeToFirstByte, errorCode: errorCode))
        onComplete(ending)
    }

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        let channel = self.channel
        channel.eventLoop.assumeIsolated().execute { [self] in
            self.flushScheduled = false
            channel.flush()
        }
    }
}
