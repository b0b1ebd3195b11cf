import NIOCore
import NIOHTTP1
import SluiceAPI
import SluiceHTTP2
import SluicePolicy

/// Step 7 (stream back): relays one attempt's upstream answer to the caller as it arrives.
///
/// - Streams pass event by event through ``OpenAIStreamFilter`` (which reads usage and
///   hides what Sluice added), or through a ``TranslatedStream`` for Anthropic and Gemini
///   deployments; never buffered whole. For a Messages caller the OpenAI events then go
///   through ``OpenAIToAnthropicStream`` (an Anthropic deployment's pass as they are).
/// - Other successful answers pass through byte for byte with a bounded copy kept to read
///   usage, or are read whole (bounded) and rebuilt in the caller's dialect.
/// - Upstream errors are buffered (bounded) and scrubbed of credentials. Before anything
///   reached the caller the ``AttemptOwner`` may retry or fall back instead; otherwise they
///   go on with their status, in the caller's dialect.
///
/// Flow-control window goes back upstream only once a write to the caller completes.
/// All methods run on the caller's connection event loop.
final class ResponseRelay: UpstreamResponseDelegate {
    /// Largest non-streamed answer copied for usage extraction; bigger ones are still relayed.
    static let usageCaptureLimit = 8 << 20
    /// Largest upstream error body kept (they are short; anything longer is cut).
    static let errorBodyLimit = 64 << 10

    private enum Mode {
        case awaitingHead
        case events(SSEDecoder, OpenAIStreamFilter)
        /// An Anthropic or Gemini stream, translated event by event into OpenAI chunks.
        case translatedEvents(SSEDecoder, TranslatedStream)
        case passthrough(capture: [UInt8], overflowed: Bool)
        /// An Anthropic or Gemini answer, read whole (bounded) and translated once complete.
        case translatedBody([UInt8])
        case upstreamError(status: Int, headers: [(name: String, value: String)], body: [UInt8])
        case finished
    }

    private let channel: any Channel
    private let permit: Authorize.Permit
    /// The alias this attempt serves: the caller's, or a fallback.
    private let alias: ModelAlias
    private let deployment: Deployment
    /// 1 for the first attempt at the call, 2 for the first retry or fallback, and so on.
    private let attempt: Int
    private let account: Account
    private let runtime: AgentRuntime
    private let owner: any AttemptOwner
    /// The usage recorded for this attempt, passed to the owner when it ends.
    private var recordedUsage: TokenUsage?
    /// A Messages caller served by an Anthropic deployment: answers pass through as they are.
    private let native: Bool
    /// A Messages caller's stream from any other dialect: the OpenAI events this relay
    /// produces, turned into Anthropic's on their way out.
    private var egress: OpenAIToAnthropicStream?
    var call: UpstreamCall?
    private var mode = Mode.awaitingHead {
        didSet {
            // The call holds this relay until its final event; dropping it here too means
            // no cycle survives a finished request whichever side ends first.
            if case .finished = mode { call = nil }
        }
    }
    private var timeToFirstByte: TimeAmount?
    private var httpVersion: UpstreamProtocol?
    private var outstandingWrites = 0

    init(
        channel: any Channel, permit: Authorize.Permit, alias: ModelAlias, deployment: Deployment, attempt: Int,
        account: Account,
        runtime: AgentRuntime, owner: any AttemptOwner
    ) {
        self.channel = channel
        self.permit = permit
        self.alias = alias
        self.deployment = deployment
        self.attempt = attempt
        self.account = account
        self.runtime = runtime
        self.owner = owner
        native = permit.callerDialect == .anthropic && deployment.dialect == .anthropic
    }

    // MARK: - Upstream events

    func upstreamReceivedHead(_ head: UpstreamResponseHead) {
        guard case .awaitingHead = mode else { return }
        timeToFirstByte = .now() - account.startedAt
        httpVersion = head.httpVersion
        if head.status >= 400 {
            mode = .upstreamError(status: head.status, headers: head.headers, body: [])
            return
        }
        let isEventStream = head.header("content-type")?.lowercased().hasPrefix("text/event-stream") ?? false
        if isEventStream, permit.callerDialect == .anthropic, !native {
            egress = OpenAIToAnthropicStream(model: alias.name)
        }
        if !isEventStream, permit.callerDialect == .anthropic {
            mode = .translatedBody([])  // rebuilt in the caller's dialect once whole
            return
        }
        if deployment.dialect == .anthropic || deployment.dialect == .gemini {
            guard isEventStream else {
                // Sent once translated: its length is not known before.
                mode = .translatedBody([])
                return
            }
            var headers = relayedHeaders(head.headers, keepLength: false)
            headers.replaceOrAdd(name: "cache-control", value: "no-cache")
            let created = runtime.now() / 1_000_000_000
            let usage = permit.request.callerRequestedUsage
            mode = .translatedEvents(
                SSEDecoder(),
                deployment.dialect == .gemini
                    ? .gemini(GeminiStreamTranslator(model: alias.name, created: created, callerRequestedUsage: usage))
                    : .anthropic(
                        AnthropicStreamTranslator(model: alias.name, created: created, callerRequestedUsage: usage)))
            sendHead(status: head.status, headers: headers)
            return
        }
        var headers = relayedHeaders(head.headers, keepLength: !isEventStream)
        if isEventStream {
            headers.replaceOrAdd(name: "cache-control", value: "no-cache")
            mode = .events(SSEDecoder(), OpenAIStreamFilter(callerRequestedUsage: permit.request.callerRequestedUsage))
        } else {
            mode = .passthrough(capture: [], overflowed: false)
        }
        sendHead(status: head.status, headers: headers)
    }

    func upstreamReceivedBody(_ chunk: ByteBuffer) {
        let size = chunk.readableBytes
        switch mode {
        case .events(var decoder, var filter):
            // Park mode elsewhere while the decoder mutates, so its buffer is not copied;
            // .awaitingHead is never observed and, unlike .finished, keeps the call.
            mode = .awaitingHead
            var forward: [UInt8] = []
            switch Self.decode(chunk, with: &decoder) {
            case .success(let events):
                for event in events { forward.append(contentsOf: filter.filter(event)) }
                mode = .events(decoder, filter)
            case .failure(let error):
                mode = .events(decoder, filter)
                call?.cancel()
                failStream(
                    code: "upstream_malformed_sse",
                    message: "the provider sent a malformed event stream: \(error.message)")
                return
            }
            if forward.isEmpty {
                call?.consumed(size)  // held in the decoder, which is bounded
            } else {
                writeBody(channel.allocator.buffer(bytes: forward), returningWindow: size)
            }
        case .translatedEvents(var decoder, var translator):
            mode = .awaitingHead
            var forward: [UInt8] = []
            let pushed = Self.decode(chunk, with: &decoder)
            mode = .translatedEvents(decoder, translator)
            guard case .success(let events) = pushed else {
                call?.cancel()
                failStream(code: "upstream_malformed_sse", message: "the provider sent a malformed event stream")
                return
            }
            for event in events { forward.append(contentsOf: translator.translate(event)) }
            mode = .translatedEvents(decoder, translator)
            if native {
                // Read for usage and errors; the caller gets the provider's own events.
                writeBody(chunk, returningWindow: size, convert: false)
            } else if forward.isEmpty {
                call?.consumed(size)
            } else {
                writeBody(channel.allocator.buffer(bytes: forward), returningWindow: size)
            }
        case .translatedBody(var body):
            guard body.count + size <= Self.usageCaptureLimit else {
                call?.cancel()
                answerFailure(
                    UpstreamError(.protocolError, "the provider's answer exceeds \(Self.usageCaptureLimit) bytes"),
                    failure: .serverError(status: 502))
                return
            }
            mode = .awaitingHead
            body.append(contentsOf: chunk.readableBytesView)
            mode = .translatedBody(body)
            call?.consumed(size)
        case .passthrough(var capture, var overflowed):
            if !overflowed {
                if capture.count + size <= Self.usageCaptureLimit {
                    capture.append(contentsOf: chunk.readableBytesView)
                } else {
                    overflowed = true
                    capture = []
                }
            }
            mode = .passthrough(capture: capture, overflowed: overflowed)
            writeBody(chunk, returningWindow: size)
        case .upstreamError(let status, let headers, var body):
            if body.count < Self.errorBodyLimit {
                body.append(contentsOf: chunk.readableBytesView.prefix(Self.errorBodyLimit - body.count))
            }
            mode = .upstreamError(status: status, headers: headers, body: body)
            call?.consumed(size)
        case .awaitingHead, .finished:
            call?.consumed(size)
        }
    }

    func upstreamFinished() {
        switch mode {
        case .events(var decoder, let filter):
            let tail = decoder.remainder()
            if !tail.isEmpty { writeBody(channel.allocator.buffer(bytes: tail), returningWindow: 0) }
            let completed = filter.sawDone && !filter.sawErrorEvent
            let usage = filter.usage ?? estimatedUsage(completionBytes: filter.dataBytes)
            finish(
                status: 200, usage: usage, streamCompleted: completed,
                errorCode: filter.sawErrorEvent
                    ? "upstream_stream_error_event" : (filter.sawDone ? nil : "upstream_stream_incomplete"),
                failure: completed ? nil : .serverError(status: 502))
        case .translatedEvents(var decoder, let translator):
            _ = decoder.remainder()  // an unfinished event has nothing to translate
            let closing = translator.finish()
            if !closing.isEmpty { writeBody(channel.allocator.buffer(bytes: closing), returningWindow: 0) }
            let usage = translator.usage ?? estimatedUsage(completionBytes: translator.dataBytes)
            // An error event inside the 200 stream (Anthropic's `overloaded_error`) reached the
            // caller, so it is not retried; it counts against the deployment all the same.
            let failure: AttemptFailure? =
                translator.errorStatus.map { .serverError(status: $0) }
                ?? (translator.completed ? nil : .serverError(status: 502))
            finish(
                status: 200, usage: usage, streamCompleted: translator.completed, errorCode: translator.errorCode,
                failure: failure)
        case .translatedBody(let body):
            let created = runtime.now() / 1_000_000_000
            if deployment.dialect == .gemini, GeminiResponse.promptBlocked(body), owner.attemptFailed(.contentPolicy) {
                mode = .finished  // a content-policy fallback answers instead
                return
            }
            guard let translated = callerAnswer(from: body, created: created) else {
                answerFailure(
                    UpstreamError(.protocolError, "the provider's answer is not in its API's shape"),
                    failure: .serverError(status: 502))
                return
            }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(translated.body.count))
            headers.add(name: "x-sluice-request-id", value: account.requestID)
            for (name, value) in rateLimitFields { headers.add(name: name, value: value) }
            sendHead(status: 200, headers: headers)
            writeBody(channel.allocator.buffer(bytes: translated.body), returningWindow: 0)
            finish(
                status: 200, usage: translated.usage ?? estimatedUsage(completionBytes: body.count),
                streamCompleted: nil, errorCode: nil)
        case .passthrough(let capture, let overflowed):
            let usage = overflowed ? nil : capture.withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) }
            finish(
                status: 200, usage: usage ?? estimatedUsage(completionBytes: capture.count), streamCompleted: nil,
                errorCode: nil)
        case .upstreamError(let status, let headers, let body):
            let failure = Self.failure(status: status, headers: headers, body: body)
            if owner.attemptFailed(failure) {
                mode = .finished
                return
            }
            relayUpstreamError(status: status, body: body, failure: failure)
        case .awaitingHead, .finished:
            break
        }
    }

    func upstreamFailed(_ error: UpstreamError) {
        switch mode {
        case .awaitingHead, .upstreamError:
            // Nothing has reached the caller yet: the owner may try again elsewhere.
            var failure: AttemptFailure = error.isTimeout ? .timeout : .connect
            if case .upstreamError(let status, let headers, let body) = mode {
                failure = Self.failure(status: status, headers: headers, body: body)
            }
            if owner.attemptFailed(failure) {
                mode = .finished
                return
            }
            answerFailure(error, failure: failure)
        case .translatedBody:
            // The provider answered and may have charged for it: not tried again.
            answerFailure(error, failure: .serverError(status: 502))
        case .events, .translatedEvents:
            // The caller already has a 200 and a stream prefix: end it with an error event.
            failStream(code: error.kind.rawValue, message: "upstream failed mid-stream: \(error.message)")
        case .passthrough:
            // Part of a plain body is out; the only honest signal left is to cut the connection.
            record(status: 200, usage: nil, errorCode: error.kind.rawValue)
            mode = .finished
            ended(.abort, failure: .connect)
        case .finished:
            break
        }
    }

    /// A whole answer in the caller's dialect, and its usage: the provider's answer as it is
    /// where the dialects match, else translated (through OpenAI's shape).
    private func callerAnswer(from body: [UInt8], created: Int64) -> (body: [UInt8], usage: TokenUsage?)? {
        if native {
            guard let message = try? JSONValue.parseObject(body), message["type"]?.stringValue == "message" else {
                return nil
            }
            return (body, AnthropicResponse.usage(message["usage"]))
        }
        let openAI: (body: [UInt8], usage: TokenUsage?)?
        switch deployment.dialect {
        case .openAI, .azure: openAI = (body, body.withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) })
        case .anthropic: openAI = AnthropicResponse.chatCompletion(from: body, model: alias.name, created: created)
        case .gemini: openAI = GeminiResponse.chatCompletion(from: body, model: alias.name, created: created)
        }
        guard let openAI else { return nil }
        guard permit.callerDialect == .anthropic else { return openAI }
        return AnthropicIngress.message(fromChatCompletion: openAI.body, model: alias.name).map {
            ($0.body, openAI.usage ?? $0.usage)
        }
    }

    private func answerFailure(_ error: UpstreamError, failure: AttemptFailure) {
        let status = error.isTimeout ? 504 : 502
        sendError(
            OpenAIError(
                status: status, message: "upstream \(deployment.endpoint) failed: \(error.message)",
                type: "upstream_error", code: error.kind.rawValue))
        record(status: status, errorCode: error.kind.rawValue)
        mode = .finished
        ended(.complete, failure: failure)
    }

    /// How routing reads an upstream error answer.
    static func failure(status: Int, headers: [(name: String, value: String)], body: [UInt8]) -> AttemptFailure {
        switch status {
        case 429:
            let value = headers.first { $0.name == "retry-after" }?.value
            return .rateLimited(retryAfterSeconds: value.flatMap { Double($0.filter { $0 != " " }) })
        case 500...:
            return .serverError(status: status)
        case 401, 403:
            return .deploymentRefused(status: status)
        default:
            switch ProviderErrorCategory.of(status: status, body: body) {
            case .contextWindowExceeded: return .contextWindowExceeded
            case .contentPolicy: return .contentPolicy
            case .other: return .rejected(status: status)
            }
        }
    }

    /// The caller went away: stop the upstream and record what was used so far.
    func clientDisconnected() {
        switch mode {
        case .finished:
            return
        case .events(_, let filter):
            call?.cancel()
            let usage = filter.usage ?? estimatedUsage(completionBytes: filter.dataBytes)
            record(status: 499, usage: usage, streamCompleted: false, errorCode: "client_disconnected")
        case .translatedEvents(_, let translator):
            call?.cancel()
            let usage = translator.usage ?? estimatedUsage(completionBytes: translator.dataBytes)
            record(status: 499, usage: usage, streamCompleted: false, errorCode: "client_disconnected")
        default:
            call?.cancel()
            record(status: 499, usage: estimatedUsage(completionBytes: 0), errorCode: "client_disconnected")
        }
        mode = .finished
        ended(.abort, failure: nil)
    }

    /// The whole events in `chunk`, the rest kept in `decoder`.
    private static func decode(_ chunk: ByteBuffer, with decoder: inout SSEDecoder) -> Result<
        [SSEEvent], SSEDecodingError
    > {
        chunk.withUnsafeReadableBytes { bytes in
            Result { () throws(SSEDecodingError) in try decoder.push(bytes) }
        }
    }

    // MARK: - Writing to the caller

    private func sendHead(status: Int, headers: HTTPHeaders) {
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
    }

    /// Writes stream or body bytes to the caller; stream events go through ``egress`` first
    /// when the caller speaks Anthropic's dialect (`convert: false` for bytes already in it).
    private func writeBody(_ buffer: ByteBuffer, returningWindow bytes: Int, convert: Bool = true) {
        if convert, var egress {
            let converted = egress.convert(Array(buffer.readableBytesView))
            self.egress = egress
            guard !converted.isEmpty else {
                if bytes > 0 { call?.consumed(bytes) }
                return
            }
            writeConverted(channel.allocator.buffer(bytes: converted), returningWindow: bytes)
            return
        }
        writeConverted(buffer, returningWindow: bytes)
    }

    private func writeConverted(_ buffer: ByteBuffer, returningWindow bytes: Int) {
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

    private var flushScheduled = false

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

    private func finish(
        status: Int, usage: TokenUsage?, streamCompleted: Bool?, errorCode: String?, failure: AttemptFailure? = nil
    ) {
        mode = .finished
        record(status: status, usage: usage, streamCompleted: streamCompleted, errorCode: errorCode)
        ended(.complete, failure: failure)
    }

    private func record(status: Int, usage: TokenUsage? = nil, streamCompleted: Bool? = nil, errorCode: String? = nil) {
        recordedUsage = usage
        account.settle(
            CallOutcome(
                status: status, deployment: deployment, servedBy: alias, attempts: attempt,
                httpVersion: httpVersion?.rawValue, usage: usage, streamCompleted: streamCompleted,
                timeToFirstByte: timeToFirstByte, errorCode: errorCode))
    }

    private func ended(_ ending: ResponseEnding, failure: AttemptFailure?) {
        owner.attemptEnded(ending, timeToFirstByte: timeToFirstByte, usage: recordedUsage, failure: failure)
    }

    /// Ends a started stream with an SSE error event; usage is what the stream showed so far.
    private func failStream(code: String, message: String) {
        let event = permit.callerDialect.streamEvent(
            OpenAIError(status: 502, message: message, type: "upstream_error", code: code))
        writeBody(channel.allocator.buffer(bytes: event), returningWindow: 0, convert: false)
        var usage: TokenUsage?
        if case .events(_, let filter) = mode {
            usage = filter.usage ?? estimatedUsage(completionBytes: filter.dataBytes)
        } else if case .translatedEvents(_, let translator) = mode {
            usage = translator.usage ?? estimatedUsage(completionBytes: translator.dataBytes)
        }
        mode = .finished
        record(status: 200, usage: usage, streamCompleted: false, errorCode: code)
        ended(.complete, failure: .serverError(status: 502))
    }

    /// The provider's error, in the caller's dialect with status and type kept. Where the
    /// caller speaks the provider's own dialect it passes as it is (credentials scrubbed);
    /// otherwise it is read and rebuilt, and a body that is no error of that dialect is
    /// replaced by one naming the status.
    private func relayUpstreamError(status: Int, body: [UInt8], failure: AttemptFailure) {
        let scrubbed = permit.policy.scrubber.scrub(body)
        let speaksOpenAI = deployment.dialect == .openAI || deployment.dialect == .azure
        let error =
            switch deployment.dialect {
            case .anthropic: AnthropicResponse.error(from: scrubbed, status: status)
            case .gemini: GeminiResponse.error(from: scrubbed, status: status)
            case .openAI, .azure: OpenAIError.parse(scrubbed, status: status)
            }
        let fallback = OpenAIError(
            status: status, message: "upstream \(deployment.endpoint) answered HTTP \(status)", type: "upstream_error",
            code: "upstream_http_\(status)")
        let passesThrough = error != nil && (native || (speaksOpenAI && permit.callerDialect == .openAI))
        let payload = passesThrough ? scrubbed : permit.callerDialect.body(error ?? fallback)
        // OpenAI's codes are the provider's own business; other dialects' error types are few and worth counting by.
        let code = speaksOpenAI ? fallback.code : error.map { "upstream_\($0.code)" } ?? fallback.code
        writeJSONResponse(
            payload, status: status, on: channel, requestID: account.requestID, close: false,
            extraHeaders: rateLimitFields)
        mode = .finished
        record(status: status, errorCode: code)
        ended(.complete, failure: failure)
    }

    private func sendError(_ error: OpenAIError) {
        writeJSONResponse(
            permit.callerDialect.body(error), status: error.status, on: channel, requestID: account.requestID,
            close: false,
            extraHeaders: rateLimitFields)
    }

    /// The caller's own limits, as they stood at admission.
    private var rateLimitFields: [(String, String)] {
        RateLimitHeaders.fields(for: permit.admission.reservation.status)
    }

    /// Provider headers worth passing on (processing time, ids), minus hop-by-hop ones,
    /// cookies and the provider's rate-limit headers: the caller's limits are Sluice's, so
    /// those headers carry the caller's own tightest limit instead.
    private func relayedHeaders(_ upstream: [(name: String, value: String)], keepLength: Bool) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for header in upstream {
            switch header.name {
            case "connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-connection",
                "set-cookie", "alt-svc", "server":
                continue
            case "content-length":
                if keepLength { headers.add(name: header.name, value: header.value) }
            case _ where header.name.hasPrefix("x-ratelimit-"):
                continue
            default:
                headers.add(name: header.name, value: header.value)
            }
        }
        headers.add(name: "x-sluice-request-id", value: account.requestID)
        for (name, value) in rateLimitFields { headers.add(name: name, value: value) }
        return headers
    }

    private func estimatedUsage(completionBytes: Int) -> TokenUsage {
        TokenUsage.estimate(promptBytes: permit.request.body.count, completionBytes: completionBytes)
    }
}
