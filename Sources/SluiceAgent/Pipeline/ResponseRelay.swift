import NIOCore
import NIOHTTP1
import SluiceAPI
import SluiceHTTP2
import SluicePolicy

/// Step 7 (stream back): relays one attempt's upstream answer to the caller as it arrives.
///
/// What to do with each upstream event is decided by a ``RelayStateMachine``; this class
/// only executes its actions on the caller's channel, the upstream call, the ``Account``
/// and the ``AttemptOwner``:
/// - Streams pass event by event through ``OpenAIStreamFilter`` (which reads usage and
///   hides what Sluice added), or through a ``TranslatedStream`` for Anthropic and Gemini
///   deployments; never buffered whole. For a Messages caller the OpenAI events then go
///   through ``OpenAIToAnthropicStream`` (an Anthropic deployment's pass as they are).
/// - Other successful answers pass through byte for byte with a bounded copy kept to read
///   usage, or are read whole (bounded) and rebuilt in the caller's dialect.
/// - Upstream errors are buffered (bounded) and scrubbed of credentials. Before anything
///   reached the caller the owner may retry or fall back instead; otherwise they go on with
///   their status, in the caller's dialect.
///
/// Flow-control window goes back upstream only once a write to the caller completes.
/// All methods run on the caller's connection event loop.
final class ResponseRelay: UpstreamResponseDelegate {
    private let channel: any Channel
    /// The alias this attempt serves: the caller's, or a fallback.
    private let alias: ModelAlias
    private let deployment: Deployment
    /// 1 for the first attempt at the call, 2 for the first retry or fallback, and so on.
    private let attempt: Int
    private let account: Account
    private let runtime: AgentRuntime
    private let owner: any AttemptOwner
    /// The upstream stream; dropped when the attempt ends, so no cycle outlives the call
    /// whichever side finishes first.
    var call: UpstreamCall?
    private var machine: RelayStateMachine
    private var timeToFirstByte: TimeAmount?
    private var httpVersion: UpstreamProtocol?
    private var flushScheduled = false
    /// What the caller is sent, kept for the guardrails that check answers; nil when none do.
    private var completion: CompletionTap?
    private let permit: Authorize.Permit

    init(
        channel: any Channel, permit: Authorize.Permit, alias: ModelAlias, deployment: Deployment, attempt: Int,
        account: Account, runtime: AgentRuntime, owner: any AttemptOwner
    ) {
        self.channel = channel
        self.alias = alias
        self.deployment = deployment
        self.attempt = attempt
        self.account = account
        self.runtime = runtime
        self.owner = owner
        self.permit = permit
        completion = CompletionTap(permit: permit)
        machine = RelayStateMachine(
            context: RelayStateMachine.Context(
                callerDialect: permit.callerDialect, deploymentDialect: deployment.dialect,
                endpoint: "\(deployment.endpoint)", aliasName: alias.name,
                // A translated Responses stream needs the chat stream's usage for its last event.
                callerRequestedUsage: permit.request.callerRequestedUsage || permit.request.endpoint == .responses,
                promptBytes: permit.request.body.count,
                scrubber: permit.policy.scrubber, requestID: account.requestID,
                rateLimitFields: RateLimitHeaders.fields(for: permit.admission.reservation.status),
                allocator: channel.allocator, responsesAPI: permit.request.endpoint == .responses,
                embeddings: permit.request.endpoint == .embeddings,
                base64Embeddings: permit.request.endpoint == .embeddings
                    && permit.request.string("encoding_format") == "base64"))
    }

    private var nowSeconds: Int64 { runtime.now() / 1_000_000_000 }

    // MARK: - Events

    func upstreamReceivedHead(_ head: UpstreamResponseHead) {
        if timeToFirstByte == nil {
            timeToFirstByte = .now() - account.startedAt
            httpVersion = head.httpVersion
        }
        run(machine.receivedHead(status: head.status, headers: head.headers, now: nowSeconds))
    }

    func upstreamReceivedBody(_ chunk: ByteBuffer) {
        run(machine.receivedBody(chunk))
    }

    func upstreamFinished() {
        run(machine.finished(now: nowSeconds))
    }

    func upstreamFailed(_ error: UpstreamError) {
        run(machine.failed(error, now: nowSeconds))
    }

    /// The caller went away: stop the upstream and record what was used so far.
    func clientDisconnected() {
        if let pending = completion?.pending {
            // The answer was whole and waiting on a guardrail: it is settled as it stands.
            completion?.check?.cancel()
            completion = nil
            var ending = pending
            ending.status = 499
            ending.errorCode = "client_disconnected"
            ending.ending = .abort
            settle(ending)
            return
        }
        run(machine.callerDisconnected())
    }

    // MARK: - Actions

    private func run(_ action: RelayStateMachine.Action) {
        switch action {
        case .none:
            break
        case .consumed(let bytes):
            if bytes > 0 { call?.consumed(bytes) }
        case .sendHead(let status, let headers):
            sendHead(status: status, headers: headers)
        case .write(let buffer, let window):
            write(buffer, returningWindow: window)
        case .offerRetry(let failure):
            if owner.attemptFailed(failure) {
                machine.retryTaken()
                call = nil
            } else {
                run(machine.retryDeclined(at: nowSeconds))
            }
        case .end(let ending):
            end(ending)
        }
    }

    private func end(_ ending: RelayStateMachine.Ending) {
        if ending.cancelUpstream { call?.cancel() }
        switch ending.reply {
        case .streamTail(let buffer):
            write(buffer, returningWindow: 0)
        case .whole(let status, let headers, let body):
            sendHead(status: status, headers: headers)
            write(body, returningWindow: 0)
        case nil:
            break
        }
        guard var tap = completion, (200..<300).contains(ending.status), ending.ending != .abort else {
            // Nothing to check (or nothing whole): whatever was held goes out as it is.
            completion?.release(on: channel)
            completion = nil
            return settle(ending)
        }
        call = nil
        tap.pending = ending
        let text = tap.text
        let truncated = tap.truncated
        let guardrails = tap.guardrails
        let (permit, runtime, requestID) = (permit, runtime, account.requestID)
        let eventLoop = channel.eventLoop
        if !tap.hold {
            // Checked after delivery: the call ends now; the verdict gets its own audit line.
            completion = nil
            settle(ending)
            let account = account
            Task {
                let decisions = await Guard.checkCompletion(
                    guardrails, permit: permit, text: text, truncated: truncated, requestID: requestID,
                    runtime: runtime, on: eventLoop)
                account.noteCompletionCheck(decisions, status: ending.status)
            }
            return
        }
        let relay = NIOLoopBound(self, eventLoop: eventLoop)
        tap.check = Task {
            let decisions = await Guard.checkCompletion(
                guardrails, permit: permit, text: text, truncated: truncated, requestID: requestID,
                runtime: runtime, on: eventLoop)
            eventLoop.execute { relay.value.completionChecked(decisions) }
        }
        completion = tap
    }

    /// The guardrails' verdict on a held answer: delivered as it was, or replaced by the refusal.
    private func completionChecked(_ decisions: [GuardrailDecision]) {
        guard var tap = completion, var ending = tap.pending else { return }  // the caller went away
        completion = nil
        account.noteGuardrails(decisions)
        if let denial = decisions.lazy.compactMap(\.denial).first {
            let refusal = Authorize.refusal(denial, caller: permit.admission.caller, alias: alias.name)
            writeJSONResponse(
                permit.callerDialect.body(refusal.error), status: refusal.error.status, on: channel,
                requestID: account.requestID, close: false, extraHeaders: refusal.headers)
            scheduleFlush()
            // The provider produced the answer: its usage is charged all the same.
            ending.status = refusal.error.status
            ending.errorCode = refusal.error.code
            ending.streamCompleted = nil
        } else {
            tap.release(on: channel)
            scheduleFlush()
        }
        settle(ending)
    }

    private func settle(_ ending: RelayStateMachine.Ending) {
        account.settle(
            CallOutcome(
                status: ending.status, deployment: deployment, servedBy: alias, attempts: attempt,
                httpVersion: httpVersion?.rawValue, usage: ending.usage, streamCompleted: ending.streamCompleted,
                timeToFirstByte: timeToFirstByte, errorCode: ending.errorCode))
        call = nil
        owner.attemptEnded(
            ending.ending, timeToFirstByte: timeToFirstByte, usage: ending.usage, failure: ending.failure)
    }

    private func sendHead(status: Int, headers: HTTPHeaders) {
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
        if completion?.holding == true {
            completion?.held.append(.head(head))
            return
        }
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
    }

    private func write(_ buffer: ByteBuffer, returningWindow bytes: Int) {
        if completion != nil {
            completion!.record(buffer)
            if completion!.holding {
                completion!.held.append(.body(.byteBuffer(buffer)))
                if bytes > 0 { call?.consumed(bytes) }
                if completion!.overflowed { releaseHeldAnswer() }
                return
            }
        }
        let call = self.call
        let promise = channel.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { result in
            // Window goes back only for bytes that really left; a failed write means the
            // caller is gone, which channelInactive handles.
            if case .success = result, bytes > 0 { call?.consumed(bytes) }
        }
        channel.write(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: promise)
        scheduleFlush()
    }

    /// A held answer grew past what is kept: it goes out now, as it stands, and the rest
    /// streams; the guardrails still check what was kept (with `completion_truncated`).
    private func releaseHeldAnswer() {
        completion?.release(on: channel)
        completion?.hold = false
        scheduleFlush()
    }

    /// One flush per event-loop tick: everything relayed from one upstream read (often
    /// head, body and end together) leaves in one system call, and nothing waits longer
    /// than the current tick.
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

/// The answer as sent to the caller, for guardrails that check completions: its bytes (up
/// to ``limit``), and, while some guardrail holds answers, the response parts not yet
/// written.
private struct CompletionTap {
    /// The most of an answer kept for checking, and held.
    static let limit = 1 << 20

    let guardrails: [Guardrail]
    let shape: CompletionText.Shape
    let streamed: Bool
    var hold: Bool
    var bytes: [UInt8] = []
    var truncated = false
    var held: [HTTPServerResponsePart] = []
    /// The attempt's ending, waiting on the guardrails' verdict.
    var pending: RelayStateMachine.Ending?
    var check: Task<Void, Never>?

    /// Nil when no guardrail checks this call's answer (or the answer has no text).
    init?(permit: Authorize.Permit) {
        guard !permit.completionGuardrails.isEmpty else { return nil }
        switch (permit.callerDialect, permit.request.endpoint) {
        case (.anthropic, _): shape = .anthropic
        case (_, .chatCompletions): shape = .chat
        case (_, .completions): shape = .completions
        case (_, .responses): shape = .responses
        case (_, .embeddings): return nil
        }
        guardrails = permit.completionGuardrails
        streamed = permit.request.stream
        hold = guardrails.contains { $0.completionCheck == .hold }
    }

    var holding: Bool { hold && pending == nil }
    var overflowed: Bool { truncated }
    var text: String { CompletionText.extract(bytes, shape: shape, streamed: streamed) }

    mutating func record(_ buffer: ByteBuffer) {
        guard !truncated else { return }
        guard bytes.count + buffer.readableBytes <= Self.limit else {
            truncated = true
            return
        }
        bytes.append(contentsOf: buffer.readableBytesView)
    }

    /// Writes what was held, in order.
    mutating func release(on channel: any Channel) {
        for part in held { channel.write(part, promise: nil) }
        held = []
    }
}
