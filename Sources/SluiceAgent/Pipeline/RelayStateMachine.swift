import NIOCore
import NIOHTTP1
import SluiceAPI
import SluiceHTTP2
import SluicePolicy

/// The decisions of one upstream attempt's relay, as a value: what the provider's answer is
/// (a stream to filter or translate, a body to pass or rebuild, an error to read), what goes
/// to the caller, when flow-control window goes back, and how the attempt ends.
///
/// Every upstream or caller event is a `mutating` transition that returns one ``Action``;
/// ``ResponseRelay`` executes it on the channel. Nothing here does I/O or reads a clock, so
/// every path is tested as plain values. The states, and the action each transition returns,
/// are drawn in docs/architecture.md ("A call's relay").
struct RelayStateMachine {
    /// Largest non-streamed answer copied for usage extraction; bigger ones are still relayed.
    static let usageCaptureLimit = 8 << 20
    /// Largest upstream error body kept (they are short; anything longer is cut).
    static let errorBodyLimit = 64 << 10

    /// What the relay knows of its call, fixed for the attempt.
    struct Context {
        var callerDialect: CallerDialect
        var deploymentDialect: ProviderDialect
        /// The deployment's endpoint, named in errors (never a credential).
        var endpoint: String
        /// The alias this attempt serves (the caller's, or a fallback): translated answers name it.
        var aliasName: String
        /// The caller asked for usage in its stream (`stream_options.include_usage`).
        var callerRequestedUsage: Bool
        /// Size of the caller's request body, for a usage estimate when the provider gives none.
        var promptBytes: Int
        var scrubber: CredentialScrubber
        var requestID: String
        /// The caller's own limits as they stood at admission, sent as `x-ratelimit-*` headers.
        var rateLimitFields: [(String, String)]
        var allocator = ByteBufferAllocator()
        /// The call is to the Responses API: its stream passes as it is, read for usage.
        var responsesAPI = false
        /// An embeddings call, and whether the caller asked for base64 vectors (Gemini's
        /// answers are rebuilt in that encoding).
        var embeddings = false
        var base64Embeddings = false

        /// A Messages caller served by an Anthropic deployment: answers pass through as they are.
        var native: Bool { callerDialect == .anthropic && deploymentDialect == .anthropic }
        var speaksOpenAI: Bool { deploymentDialect == .openAI || deploymentDialect == .azure }
    }

    /// What the relay must do after a transition.
    enum Action {
        /// Nothing now.
        case none
        /// Give this many bytes of window back upstream now: they are held (bounded) or dropped.
        case consumed(Int)
        /// Send the response head to the caller.
        case sendHead(status: Int, headers: HTTPHeaders)
        /// Write to the caller; window for `returningWindow` upstream bytes goes back once written.
        case write(ByteBuffer, returningWindow: Int)
        /// Nothing reached the caller yet: ask the call whether it retries or falls back, then
        /// report the answer with ``retryTaken()`` or ``retryDeclined(at:)``.
        case offerRetry(AttemptFailure)
        /// The attempt is over: execute the ending, then drop the upstream call.
        case end(Ending)
    }

    /// How an attempt ends: in this order, cancel the upstream stream, write the last reply,
    /// settle the call and tell the owner.
    struct Ending {
        var cancelUpstream = false
        var reply: Reply?
        /// The status the caller got (499 when it went away).
        var status: Int
        var usage: TokenUsage?
        var streamCompleted: Bool?
        var errorCode: String?
        var ending: ResponseEnding = .complete
        /// Set when the attempt failed in a way routing counts.
        var failure: AttemptFailure?
    }

    /// The last thing written to the caller.
    enum Reply {
        /// The end of a stream whose head is already out (a tail, a closing or an error event).
        case streamTail(ByteBuffer)
        /// A whole answer or error: head and body.
        case whole(status: Int, headers: HTTPHeaders, body: ByteBuffer)
    }

    /// What the relay does when the call declines to retry.
    enum Declined {
        /// Pass the provider's error answer on, in the caller's dialect.
        case relayError(status: Int, body: [UInt8], failure: AttemptFailure)
        /// Answer a transport failure (connect, timeout, reset) with 502 or 504.
        case answerFailure(UpstreamError, failure: AttemptFailure)
        /// A Gemini answer whose prompt was blocked, offered as a content-policy fallback:
        /// translated and answered after all.
        case translateBody([UInt8])
    }

    enum State {
        /// The attempt is sent; no head yet. Nothing has reached the caller.
        case awaitingHead
        /// An OpenAI event stream, filtered event by event.
        case events(SSEDecoder, OpenAIStreamFilter)
        /// An Anthropic or Gemini stream, translated event by event into OpenAI chunks (or,
        /// for a native Messages caller, read for usage while it passes as it is).
        case translatedEvents(SSEDecoder, TranslatedStream)
        /// A plain answer passing byte for byte, with a bounded copy kept to read usage.
        case passthrough(capture: [UInt8], overflowed: Bool)
        /// An answer read whole (bounded) and rebuilt in the caller's dialect once complete.
        case translatedBody([UInt8])
        /// A 4xx/5xx answer, kept (bounded) until it ends. Nothing has reached the caller.
        case upstreamError(status: Int, headers: [(name: String, value: String)], body: [UInt8])
        /// The call was asked whether it retries; waiting for its answer.
        case offeringRetry(Declined)
        case finished
    }

    let context: Context
    private(set) var state = State.awaitingHead
    /// Turns the OpenAI chat events this relay produces into the caller's: Anthropic's, for
    /// a Messages caller served by any other dialect's stream, or the Responses API's, for a
    /// Responses caller served by a provider without that API.
    private var egress: StreamEgress?

    init(context: Context) {
        self.context = context
    }

    // MARK: - Upstream events

    /// The provider's response head arrived; `now` is the wall clock in Unix seconds, for the
    /// `created` field of translated chunks.
    mutating func receivedHead(status: Int, headers: [(name: String, value: String)], now: Int64) -> Action {
        guard case .awaitingHead = state else { return .none }
        if status >= 400 {
            state = .upstreamError(status: status, headers: headers, body: [])
            return .none
        }
        let contentType = headers.first { $0.name == "content-type" }?.value.lowercased()
        let isEventStream = contentType?.hasPrefix("text/event-stream") ?? false
        if isEventStream, context.callerDialect == .anthropic, !context.native {
            egress = .anthropic(OpenAIToAnthropicStream(model: context.aliasName))
        } else if isEventStream, context.responsesAPI, !context.speaksOpenAI {
            egress = .responses(ChatToResponsesStream(model: context.aliasName, created: now))
        }
        guard isEventStream else {
            if context.callerDialect == .anthropic || !context.speaksOpenAI {
                // Rebuilt in the caller's dialect once whole; its length is not known before.
                state = .translatedBody([])
                return .none
            }
            state = .passthrough(capture: [], overflowed: false)
            return .sendHead(status: status, headers: relayedHeaders(headers, keepLength: true))
        }
        var relayed = relayedHeaders(headers, keepLength: false)
        relayed.replaceOrAdd(name: "cache-control", value: "no-cache")
        let usage = context.callerRequestedUsage
        switch context.deploymentDialect {
        case .openAI, .azure:
            state = .events(
                SSEDecoder(),
                OpenAIStreamFilter(callerRequestedUsage: usage, responsesAPI: context.responsesAPI))
        case .anthropic:
            let translator = AnthropicStreamTranslator(
                model: context.aliasName, created: now, callerRequestedUsage: usage)
            state = .translatedEvents(SSEDecoder(), .anthropic(translator))
        case .gemini:
            let translator = GeminiStreamTranslator(model: context.aliasName, created: now, callerRequestedUsage: usage)
            state = .translatedEvents(SSEDecoder(), .gemini(translator))
        }
        return .sendHead(status: status, headers: relayed)
    }

    /// A piece of the provider's body.
    mutating func receivedBody(_ chunk: ByteBuffer) -> Action {
        let size = chunk.readableBytes
        switch state {
        case .events(var decoder, var filter):
            // Park the state while the decoder mutates, so its buffer is not copied.
            state = .finished
            let decoded = Self.decode(chunk, with: &decoder)
            guard case .success(let events) = decoded else {
                state = .events(decoder, filter)
                let message = decoded.failureMessage.map { ": \($0)" } ?? ""
                return failStream(
                    code: "upstream_malformed_sse", message: "the provider sent a malformed event stream" + message)
            }
            var forward: [UInt8] = []
            for event in events { forward.append(contentsOf: filter.filter(event)) }
            state = .events(decoder, filter)
            return emit(forward, returningWindow: size)
        case .translatedEvents(var decoder, var translator):
            state = .finished
            let decoded = Self.decode(chunk, with: &decoder)
            guard case .success(let events) = decoded else {
                state = .translatedEvents(decoder, translator)
                return failStream(code: "upstream_malformed_sse", message: "the provider sent a malformed event stream")
            }
            var forward: [UInt8] = []
            for event in events { forward.append(contentsOf: translator.translate(event)) }
            state = .translatedEvents(decoder, translator)
            // A native caller gets the provider's own events; they were read for usage and errors.
            return context.native ? .write(chunk, returningWindow: size) : emit(forward, returningWindow: size)
        case .translatedBody(var body):
            guard body.count + size <= Self.usageCaptureLimit else {
                var ending = answerFailure(
                    UpstreamError(.protocolError, "the provider's answer exceeds \(Self.usageCaptureLimit) bytes"),
                    failure: .serverError(status: 502))
                ending.cancelUpstream = true
                return .end(ending)
            }
            state = .finished
            body.append(contentsOf: chunk.readableBytesView)
            state = .translatedBody(body)
            return .consumed(size)
        case .passthrough(var capture, var overflowed):
            state = .finished
            if !overflowed {
                if capture.count + size <= Self.usageCaptureLimit {
                    capture.append(contentsOf: chunk.readableBytesView)
                } else {
                    overflowed = true
                    capture = []
                }
            }
            state = .passthrough(capture: capture, overflowed: overflowed)
            return .write(chunk, returningWindow: size)
        case .upstreamError(let status, let headers, var body):
            if body.count < Self.errorBodyLimit {
                body.append(contentsOf: chunk.readableBytesView.prefix(Self.errorBodyLimit - body.count))
            }
            state = .upstreamError(status: status, headers: headers, body: body)
            return .consumed(size)
        case .awaitingHead, .offeringRetry, .finished:
            return .consumed(size)
        }
    }

    /// The provider's answer ended cleanly; `now` as for ``receivedHead(status:headers:now:)``.
    mutating func finished(now: Int64) -> Action {
        switch state {
        case .events(var decoder, let filter):
            state = .finished
            let tail = converted(decoder.remainder())
            let completed = filter.sawDone && !filter.sawErrorEvent
            let errorCode =
                filter.sawErrorEvent
                ? "upstream_stream_error_event" : (filter.sawDone ? nil : "upstream_stream_incomplete")
            return .end(
                Ending(
                    reply: tail.isEmpty ? nil : .streamTail(buffer(tail)), status: 200,
                    usage: filter.usage ?? estimatedUsage(completionBytes: filter.dataBytes),
                    streamCompleted: completed,
                    errorCode: errorCode, failure: completed ? nil : .serverError(status: 502)))
        case .translatedEvents(var decoder, let translator):
            state = .finished
            _ = decoder.remainder()  // an unfinished event has nothing to translate
            let closing = context.native ? [] : converted(translator.finish())
            // An error event inside the 200 stream (Anthropic's `overloaded_error`) reached the
            // caller, so it is not retried; it counts against the deployment all the same.
            let failure: AttemptFailure? =
                translator.errorStatus.map { .serverError(status: $0) }
                ?? (translator.completed ? nil : .serverError(status: 502))
            return .end(
                Ending(
                    reply: closing.isEmpty ? nil : .streamTail(buffer(closing)), status: 200,
                    usage: translator.usage ?? estimatedUsage(completionBytes: translator.dataBytes),
                    streamCompleted: translator.completed, errorCode: translator.errorCode, failure: failure))
        case .translatedBody(let body):
            if context.deploymentDialect == .gemini, GeminiResponse.promptBlocked(body) {
                state = .offeringRetry(.translateBody(body))
                return .offerRetry(.contentPolicy)
            }
            return .end(translatedAnswer(body, now: now))
        case .passthrough(let capture, let overflowed):
            state = .finished
            let usage = overflowed ? nil : capture.withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) }
            return .end(
                Ending(
                    status: 200, usage: usage ?? estimatedUsage(completionBytes: capture.count), streamCompleted: nil,
                    errorCode: nil))
        case .upstreamError(let status, let headers, let body):
            let failure = Self.failure(status: status, headers: headers, body: body)
            state = .offeringRetry(.relayError(status: status, body: body, failure: failure))
            return .offerRetry(failure)
        case .awaitingHead, .offeringRetry, .finished:
            return .none
        }
    }

    /// The upstream stream failed: reset, connection lost, timed out.
    mutating func failed(_ error: UpstreamError, now: Int64) -> Action {
        switch state {
        case .awaitingHead:
            // Nothing has reached the caller yet: the call may try again elsewhere.
            let failure: AttemptFailure = error.isTimeout ? .timeout : .connect
            state = .offeringRetry(.answerFailure(error, failure: failure))
            return .offerRetry(failure)
        case .upstreamError(let status, let headers, let body):
            let failure = Self.failure(status: status, headers: headers, body: body)
            state = .offeringRetry(.answerFailure(error, failure: failure))
            return .offerRetry(failure)
        case .translatedBody:
            // The provider answered and may have charged for it: not tried again.
            return .end(answerFailure(error, failure: .serverError(status: 502)))
        case .events(_, let filter) where filter.sawDone && !filter.sawErrorEvent:
            // Reset after the last event: the caller has the whole stream.
            return finished(now: now)
        case .translatedEvents(_, let translator) where translator.completed && translator.errorStatus == nil:
            return finished(now: now)
        case .events, .translatedEvents:
            // The caller already has a 200 and a stream prefix: end it with an error event.
            return failStream(code: error.kind.rawValue, message: "upstream failed mid-stream: \(error.message)")
        case .passthrough:
            // Part of a plain body is out; the only honest signal left is to cut the connection.
            state = .finished
            return .end(
                Ending(status: 200, usage: nil, errorCode: error.kind.rawValue, ending: .abort, failure: .connect))
        case .offeringRetry, .finished:
            return .none
        }
    }

    // MARK: - The call's answers and the caller

    /// The call took the failure over (a retry or fallback follows): this attempt says no more.
    mutating func retryTaken() {
        guard case .offeringRetry = state else { return }
        state = .finished
    }

    /// The call will not retry: the failure goes to the caller.
    mutating func retryDeclined(at now: Int64) -> Action {
        guard case .offeringRetry(let declined) = state else { return .none }
        switch declined {
        case .relayError(let status, let body, let failure):
            state = .finished
            return .end(upstreamErrorAnswer(status: status, body: body, failure: failure))
        case .answerFailure(let error, let failure):
            return .end(answerFailure(error, failure: failure))
        case .translateBody(let body):
            return .end(translatedAnswer(body, now: now))
        }
    }

    /// The caller went away: stop the upstream and account for what was used so far.
    mutating func callerDisconnected() -> Action {
        let usage: TokenUsage
        var streamCompleted: Bool?
        switch state {
        case .finished:
            return .none
        case .events(_, let filter):
            usage = filter.usage ?? estimatedUsage(completionBytes: filter.dataBytes)
            streamCompleted = false
        case .translatedEvents(_, let translator):
            usage = translator.usage ?? estimatedUsage(completionBytes: translator.dataBytes)
            streamCompleted = false
        case .awaitingHead, .passthrough, .translatedBody, .upstreamError, .offeringRetry:
            usage = estimatedUsage(completionBytes: 0)
        }
        state = .finished
        return .end(
            Ending(
                cancelUpstream: true, status: 499, usage: usage, streamCompleted: streamCompleted,
                errorCode: "client_disconnected", ending: .abort))
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

    // MARK: - Endings

    /// Ends a started stream with an error event; usage is what the stream showed so far.
    private mutating func failStream(code: String, message: String) -> Action {
        var usage: TokenUsage?
        if case .events(_, let filter) = state {
            usage = filter.usage ?? estimatedUsage(completionBytes: filter.dataBytes)
        } else if case .translatedEvents(_, let translator) = state {
            usage = translator.usage ?? estimatedUsage(completionBytes: translator.dataBytes)
        }
        state = .finished
        let event = context.callerDialect.streamEvent(
            OpenAIError(status: 502, message: message, type: "upstream_error", code: code))
        return .end(
            Ending(
                cancelUpstream: true, reply: .streamTail(buffer(event)), status: 200, usage: usage,
                streamCompleted: false, errorCode: code, failure: .serverError(status: 502)))
    }

    /// A transport failure before anything reached the caller, answered with 502 or 504.
    private mutating func answerFailure(_ error: UpstreamError, failure: AttemptFailure) -> Ending {
        state = .finished
        let status = error.isTimeout ? 504 : 502
        let answer = OpenAIError(
            status: status, message: "upstream \(context.endpoint) failed: \(error.message)", type: "upstream_error",
            code: error.kind.rawValue)
        return Ending(
            reply: json(context.callerDialect.body(answer), status: status), status: status,
            errorCode: error.kind.rawValue, failure: failure)
    }

    /// A whole answer read and rebuilt in the caller's dialect, or a 502 when it is not in
    /// its API's shape.
    private mutating func translatedAnswer(_ body: [UInt8], now: Int64) -> Ending {
        state = .finished
        guard let translated = callerAnswer(from: body, created: now) else {
            return answerFailure(
                UpstreamError(.protocolError, "the provider's answer is not in its API's shape"),
                failure: .serverError(status: 502))
        }
        return Ending(
            reply: json(translated.body, status: 200), status: 200,
            usage: translated.usage ?? estimatedUsage(completionBytes: body.count), streamCompleted: nil,
            errorCode: nil)
    }

    /// A whole answer in the caller's dialect, and its usage: the provider's answer as it is
    /// where the dialects match, else translated (through OpenAI's shape).
    private func callerAnswer(from body: [UInt8], created: Int64) -> (body: [UInt8], usage: TokenUsage?)? {
        if context.native {
            guard let message = try? JSONValue.parseObject(body), message["type"]?.stringValue == "message" else {
                return nil
            }
            return (body, AnthropicResponse.usage(message["usage"]))
        }
        let model = context.aliasName
        let openAI: (body: [UInt8], usage: TokenUsage?)?
        switch context.deploymentDialect {
        case .openAI, .azure: openAI = (body, body.withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) })
        case .anthropic: openAI = AnthropicResponse.chatCompletion(from: body, model: model, created: created)
        case .gemini where context.embeddings:
            // Gemini reports no usage for embeddings: the caller is shown Sluice's estimate.
            let estimate = estimatedUsage(completionBytes: 0)
            return GeminiEmbeddings.list(
                from: body, model: model, base64: context.base64Embeddings,
                estimatedPromptTokens: estimate.promptTokens
            ).map { ($0, nil) }
        case .gemini: openAI = GeminiResponse.chatCompletion(from: body, model: model, created: created)
        }
        guard let openAI else { return nil }
        if context.responsesAPI, !context.speaksOpenAI {
            return ResponsesEgress.response(fromChatCompletion: openAI.body, model: model, created: created).map {
                ($0.body, openAI.usage ?? $0.usage)
            }
        }
        guard context.callerDialect == .anthropic else { return openAI }
        return AnthropicIngress.message(fromChatCompletion: openAI.body, model: model).map {
            ($0.body, openAI.usage ?? $0.usage)
        }
    }

    /// The provider's error, in the caller's dialect with status and type kept. Where the
    /// caller speaks the provider's own dialect it passes as it is (credentials scrubbed);
    /// otherwise it is read and rebuilt, and a body that is no error of that dialect is
    /// replaced by one naming the status.
    private func upstreamErrorAnswer(status: Int, body: [UInt8], failure: AttemptFailure) -> Ending {
        let scrubbed = context.scrubber.scrub(body)
        let error =
            switch context.deploymentDialect {
            case .anthropic: AnthropicResponse.error(from: scrubbed, status: status)
            case .gemini: GeminiResponse.error(from: scrubbed, status: status)
            case .openAI, .azure: OpenAIError.parse(scrubbed, status: status)
            }
        let fallback = OpenAIError(
            status: status, message: "upstream \(context.endpoint) answered HTTP \(status)", type: "upstream_error",
            code: "upstream_http_\(status)")
        let passesThrough =
            error != nil && (context.native || (context.speaksOpenAI && context.callerDialect == .openAI))
        let payload = passesThrough ? scrubbed : context.callerDialect.body(error ?? fallback)
        // OpenAI's codes are the provider's own business; other dialects' error types are few
        // and worth counting by.
        let code = context.speaksOpenAI ? fallback.code : error.map { "upstream_\($0.code)" } ?? fallback.code
        return Ending(reply: json(payload, status: status), status: status, errorCode: code, failure: failure)
    }

    // MARK: - Bytes for the caller

    /// Stream bytes for the caller, through ``egress`` when the caller's events differ from
    /// OpenAI chat's; window for bytes that produce nothing goes back at once.
    private mutating func emit(_ bytes: [UInt8], returningWindow window: Int) -> Action {
        let out = converted(bytes)
        return out.isEmpty ? .consumed(window) : .write(buffer(out), returningWindow: window)
    }

    private mutating func converted(_ bytes: [UInt8]) -> [UInt8] {
        guard !bytes.isEmpty, var egress else { return bytes }
        self.egress = nil  // one holder while it converts: no copy of its buffers
        let out = egress.convert(bytes)
        self.egress = egress
        return out
    }

    private func buffer(_ bytes: [UInt8]) -> ByteBuffer {
        context.allocator.buffer(bytes: bytes)
    }

    private func json(_ body: [UInt8], status: Int) -> Reply {
        .whole(
            status: status,
            headers: JSONResponse.headers(
                length: body.count, requestID: context.requestID, extra: context.rateLimitFields, close: false),
            body: buffer(body))
    }

    /// Provider headers worth passing on (processing time, ids), minus hop-by-hop ones,
    /// cookies and the provider's rate-limit headers: the caller's limits are Sluice's, so
    /// those headers carry the caller's own tightest limit instead.
    private func relayedHeaders(_ upstream: [(name: String, value: String)], keepLength: Bool) -> HTTPHeaders {
        // Built as one array sized up front and handed over whole: `HTTPHeaders.add` scans
        // each name again for ASCII, which upstream names (checked by nghttp2) and ours
        // need not pay, and the caller's encoder checks every name it writes anyway.
        var fields: [(String, String)] = []
        fields.reserveCapacity(upstream.count + 1 + context.rateLimitFields.count)
        for header in upstream {
            switch header.name {
            case "connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-connection",
                "set-cookie", "alt-svc", "server":
                continue
            case "content-length":
                if keepLength { fields.append((header.name, header.value)) }
            case _ where header.name.hasPrefix("x-ratelimit-"):
                continue
            default:
                fields.append((header.name, header.value))
            }
        }
        fields.append(("x-sluice-request-id", context.requestID))
        fields.append(contentsOf: context.rateLimitFields)
        return HTTPHeaders(fields)
    }

    private func estimatedUsage(completionBytes: Int) -> TokenUsage {
        TokenUsage.estimate(promptBytes: context.promptBytes, completionBytes: completionBytes)
    }

    /// The whole events in `chunk`, the rest kept in `decoder`.
    private static func decode(_ chunk: ByteBuffer, with decoder: inout SSEDecoder) -> Result<
        [SSEEvent], SSEDecodingError
    > {
        chunk.withUnsafeReadableBytes { bytes in
            Result { () throws(SSEDecodingError) in try decoder.push(bytes) }
        }
    }
}

extension Result where Failure == SSEDecodingError {
    fileprivate var failureMessage: String? {
        if case .failure(let error) = self { return error.message }
        return nil
    }
}

/// A translation of the relay's OpenAI chat stream into the caller's own events.
enum StreamEgress {
    case anthropic(OpenAIToAnthropicStream)
    case responses(ChatToResponsesStream)
    /// Held only while a translation runs, so its buffers are not copied.
    case parked

    mutating func convert(_ bytes: [UInt8]) -> [UInt8] {
        switch self {
        case .anthropic(var stream):
            self = .parked
            let out = stream.convert(bytes)
            self = .anthropic(stream)
            return out
        case .responses(var stream):
            self = .parked
            let out = stream.convert(bytes)
            self = .responses(stream)
            return out
        case .parked:
            return bytes
        }
    }
}
