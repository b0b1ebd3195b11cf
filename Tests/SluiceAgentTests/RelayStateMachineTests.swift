import Foundation
import NIOCore
import NIOHTTP1
import SluiceAPI
import SluiceHTTP2
import SluicePolicy
import Testing

@testable import SluiceAgent

/// The relay's decisions as plain values: every state, every upstream and caller event,
/// and the action each transition returns. ``AgentStreamFaultTests`` and the dialect tests
/// run the same paths end to end through real sockets.
@Suite("Relay state machine")
struct RelayStateMachineTests {
    static let now: Int64 = 1_790_000_000
    static let secret = "provider-secret-0123456789"

    static func machine(
        caller: CallerDialect = .openAI, provider: ProviderDialect = .openAI, includeUsage: Bool = false
    ) -> RelayStateMachine {
        RelayStateMachine(
            context: .init(
                callerDialect: caller, deploymentDialect: provider, endpoint: "https://llm.example.test",
                aliasName: "team-model", callerRequestedUsage: includeUsage, promptBytes: 400,
                scrubber: CredentialScrubber(secrets: [secret]), requestID: "req-7",
                rateLimitFields: [("x-ratelimit-limit-requests", "60")]))
    }

    static let jsonHead: [(name: String, value: String)] = [
        ("content-type", "application/json"), ("content-length", "190"), ("set-cookie", "a=b"),
        ("x-ratelimit-remaining-tokens", "9"), ("openai-processing-ms", "12"),
    ]
    static let streamHead: [(name: String, value: String)] = [("content-type", "text/event-stream; charset=utf-8")]

    static let chatAnswer =
        #"{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","#
        + #""content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"#
        + #""total_tokens":15}}"#
    static let chunkEvent =
        #"data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}"#
        + "\n\n"
    static let usageEvent =
        #"data: {"id":"c1","object":"chat.completion.chunk","choices":[],"#
        + #""usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"# + "\n\n"
    static let done = "data: [DONE]\n\n"

    static let anthropicMessage =
        #"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","#
        + #""text":"hello"}],"stop_reason":"end_turn","usage":{"input_tokens":20,"output_tokens":4}}"#

    static func stream(_ events: [(name: String, data: String)]) -> String {
        events.map { "event: \($0.name)\ndata: \($0.data)\n\n" }.joined()
    }

    static let anthropicStream = stream([
        (
            "message_start",
            #"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","#
                + #""model":"claude-x","content":[],"usage":{"input_tokens":20,"output_tokens":1}}}"#
        ),
        ("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
        (
            "content_block_delta",
            #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hello"}}"#
        ),
        ("content_block_stop", #"{"type":"content_block_stop","index":0}"#),
        (
            "message_delta",
            #"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}"#
        ),
        ("message_stop", #"{"type":"message_stop"}"#),
    ])

    static let geminiBlocked =
        #"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}"#

    // MARK: - Plain answers

    @Test("a plain OpenAI answer passes byte for byte; provider cookies and rate-limit headers do not")
    func passthrough() throws {
        var relay = Self.machine()
        let (status, headers) = try #require(
            relay.receivedHead(status: 200, headers: Self.jsonHead, now: Self.now).head)
        #expect(status == 200)
        #expect(headers["content-length"] == ["190"] && headers["openai-processing-ms"] == ["12"])
        #expect(headers["set-cookie"].isEmpty && headers["x-ratelimit-remaining-tokens"].isEmpty)
        #expect(headers["x-sluice-request-id"] == ["req-7"] && headers["x-ratelimit-limit-requests"] == ["60"])

        let body = Array(Self.chatAnswer.utf8)
        let first = relay.receivedBody(ByteBuffer(bytes: body[..<50]))
        let second = relay.receivedBody(ByteBuffer(bytes: body[50...]))
        #expect(first.written?.bytes == Array(body[..<50]) && first.written?.window == 50)
        #expect(second.written?.bytes == Array(body[50...]) && second.written?.window == body.count - 50)

        let ending = try #require(relay.finished(now: Self.now).ending)
        #expect(ending.status == 200 && ending.errorCode == nil && ending.failure == nil && ending.reply == nil)
        #expect(ending.usage == TokenUsage(promptTokens: 12, completionTokens: 3))
        #expect(!ending.cancelUpstream && ending.ending == .complete)
        #expect(relay.isFinished)
    }

    @Test("an answer too big to copy still passes, and its usage is estimated")
    func passthroughOverflow() throws {
        var relay = Self.machine()
        _ = relay.receivedHead(status: 200, headers: Self.jsonHead, now: Self.now)
        let big = ByteBuffer(repeating: UInt8(ascii: "x"), count: RelayStateMachine.usageCaptureLimit + 1)
        #expect(relay.receivedBody(big).written?.window == big.readableBytes)
        let ending = try #require(relay.finished(now: Self.now).ending)
        #expect(ending.usage == TokenUsage.estimate(promptBytes: 400, completionBytes: 0))
    }

    @Test("a plain answer cut mid-body aborts the caller's connection and counts as a connect failure")
    func passthroughCut() throws {
        var relay = Self.machine()
        _ = relay.receivedHead(status: 200, headers: Self.jsonHead, now: Self.now)
        _ = relay.receivedBody(ByteBuffer(string: "{\"id\":"))
        let ending = try #require(
            relay.failed(UpstreamError(.streamReset, "RST_STREAM"), now: Self.now).ending)
        #expect(ending.ending == .abort && ending.failure == .connect && ending.reply == nil)
        #expect(ending.status == 200 && ending.errorCode == "upstream_stream_reset" && ending.usage == nil)
    }

    // MARK: - Streams

    @Test("an OpenAI stream passes event by event; usage Sluice asked for is read and hidden")
    func openAIStream() throws {
        var relay = Self.machine()
        let (_, headers) = try #require(relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now).head)
        #expect(headers["cache-control"] == ["no-cache"] && headers["content-length"].isEmpty)

        // Half an event is held in the decoder: its window goes back at once.
        let event = Array(Self.chunkEvent.utf8)
        #expect(relay.receivedBody(ByteBuffer(bytes: event[..<20])).consumed == 20)
        let rest = relay.receivedBody(ByteBuffer(bytes: event[20...]))
        #expect(rest.written?.text == Self.chunkEvent && rest.written?.window == event.count - 20)
        // The usage-only chunk was added by Sluice, so the caller does not see it.
        #expect(relay.receivedBody(ByteBuffer(string: Self.usageEvent)).consumed == Self.usageEvent.utf8.count)
        #expect(relay.receivedBody(ByteBuffer(string: Self.done)).written?.text == Self.done)

        let ending = try #require(relay.finished(now: Self.now).ending)
        #expect(ending.streamCompleted == true && ending.errorCode == nil && ending.failure == nil)
        #expect(ending.usage == TokenUsage(promptTokens: 12, completionTokens: 3) && ending.reply == nil)
    }

    @Test("a caller that asked for usage gets the usage chunk")
    func openAIStreamIncludeUsage() {
        var relay = Self.machine(includeUsage: true)
        _ = relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now)
        #expect(relay.receivedBody(ByteBuffer(string: Self.usageEvent)).written?.text == Self.usageEvent)
    }

    @Test("a stream that ends without [DONE] is incomplete and fails the attempt")
    func streamIncomplete() throws {
        var relay = Self.machine()
        _ = relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now)
        _ = relay.receivedBody(ByteBuffer(string: Self.chunkEvent))
        let ending = try #require(relay.finished(now: Self.now).ending)
        #expect(ending.streamCompleted == false && ending.errorCode == "upstream_stream_incomplete")
        #expect(ending.failure == .serverError(status: 502))
        #expect(ending.usage?.estimated == true)
    }

    @Test("an error object inside a 200 stream fails the attempt but is not retried")
    func streamErrorEvent() throws {
        var relay = Self.machine()
        _ = relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now)
        let error = #"data: {"error":{"message":"overloaded","type":"server_error"}}"# + "\n\n"
        #expect(relay.receivedBody(ByteBuffer(string: error + Self.done)).written != nil)
        let ending = try #require(relay.finished(now: Self.now).ending)
        #expect(ending.streamCompleted == false && ending.errorCode == "upstream_stream_error_event")
    }

    @Test("a stream reset mid-way ends with an error event in the caller's dialect")
    func streamResetMidway() throws {
        for caller in [CallerDialect.openAI, .anthropic] {
            var relay = Self.machine(caller: caller)
            _ = relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now)
            _ = relay.receivedBody(ByteBuffer(string: Self.chunkEvent))
            let ending = try #require(
                relay.failed(UpstreamError(.streamReset, "RST_STREAM INTERNAL_ERROR"), now: Self.now).ending)
            #expect(ending.cancelUpstream && ending.streamCompleted == false)
            #expect(ending.errorCode == "upstream_stream_reset" && ending.failure == .serverError(status: 502))
            let tail = try #require(ending.reply?.tailText)
            #expect(tail.contains("upstream_stream_reset") && tail.contains("upstream failed mid-stream"))
            #expect(tail.hasPrefix(caller == .anthropic ? "event: error" : "data: "))
        }
    }

    @Test("a stream reset after its last event counts as complete, with no error event")
    func streamResetAfterLastByte() throws {
        var relay = Self.machine()
        _ = relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now)
        _ = relay.receivedBody(ByteBuffer(string: Self.chunkEvent + Self.usageEvent + Self.done))
        let ending = try #require(
            relay.failed(UpstreamError(.streamReset, "RST_STREAM NO_ERROR"), now: Self.now).ending)
        #expect(ending.streamCompleted == true && ending.errorCode == nil && ending.failure == nil)
        #expect(ending.reply == nil && ending.usage == TokenUsage(promptTokens: 12, completionTokens: 3))
    }

    @Test("a malformed event stream stops the upstream and ends the caller's stream with an error event")
    func malformedStream() throws {
        var relay = Self.machine()
        _ = relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now)
        // One event larger than the decoder's bound.
        let huge = ByteBuffer(string: "data: " + String(repeating: "x", count: (1 << 20) + 1))
        let ending = try #require(relay.receivedBody(huge).ending)
        #expect(ending.cancelUpstream && ending.errorCode == "upstream_malformed_sse")
        #expect(ending.reply?.tailText?.contains("malformed event stream") == true)
        #expect(relay.receivedBody(ByteBuffer(string: Self.done)).consumed == Self.done.utf8.count)
        #expect(relay.finished(now: Self.now).isNone)
    }

    @Test("an Anthropic stream becomes OpenAI chunks named by the alias, with Anthropic's usage")
    func anthropicStreamTranslated() throws {
        var relay = Self.machine(provider: .anthropic)
        _ = relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now)
        let written = try #require(relay.receivedBody(ByteBuffer(string: Self.anthropicStream)).written)
        #expect(written.text.contains("chat.completion.chunk") && written.text.contains("\"team-model\""))
        #expect(written.text.contains("\(Self.now)") && written.window == Self.anthropicStream.utf8.count)
        let ending = try #require(relay.finished(now: Self.now).ending)
        #expect(ending.streamCompleted == true && ending.usage == TokenUsage(promptTokens: 20, completionTokens: 4))
    }

    @Test("a Messages caller served by Anthropic gets the provider's own events, read for usage")
    func nativeStream() throws {
        var relay = Self.machine(caller: .anthropic, provider: .anthropic)
        _ = relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now)
        let written = try #require(relay.receivedBody(ByteBuffer(string: Self.anthropicStream)).written)
        #expect(written.text == Self.anthropicStream)
        let ending = try #require(relay.finished(now: Self.now).ending)
        #expect(ending.reply == nil && ending.usage == TokenUsage(promptTokens: 20, completionTokens: 4))
    }

    @Test("a Messages caller served by an OpenAI stream gets Anthropic's events")
    func messagesCallerOpenAIStream() throws {
        var relay = Self.machine(caller: .anthropic)
        _ = relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now)
        let written = try #require(relay.receivedBody(ByteBuffer(string: Self.chunkEvent)).written)
        #expect(written.text.contains("event: message_start") && written.text.contains("text_delta"))
        let closing = try #require(relay.receivedBody(ByteBuffer(string: Self.done)).written)
        #expect(closing.text.contains("event: message_stop"))
    }

    @Test("an overloaded_error event inside Anthropic's 200 stream counts against the deployment")
    func anthropicStreamErrorEvent() throws {
        var relay = Self.machine(provider: .anthropic)
        _ = relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now)
        let overloaded = Self.stream([
            ("error", #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
        ])
        #expect(relay.receivedBody(ByteBuffer(string: overloaded)).written?.text.contains("overloaded_error") == true)
        let ending = try #require(relay.finished(now: Self.now).ending)
        #expect(ending.streamCompleted == false && ending.failure == .serverError(status: 529))
    }

    // MARK: - Whole answers rebuilt

    @Test("an Anthropic answer is read whole and rebuilt as a chat completion")
    func anthropicBodyTranslated() throws {
        var relay = Self.machine(provider: .anthropic)
        #expect(relay.receivedHead(status: 200, headers: Self.jsonHead, now: Self.now).isNone)
        let size = Self.anthropicMessage.utf8.count
        #expect(relay.receivedBody(ByteBuffer(string: Self.anthropicMessage)).consumed == size)
        let ending = try #require(relay.finished(now: Self.now).ending)
        let (status, headers, body) = try #require(ending.reply?.whole)
        #expect(status == 200 && headers["content-length"] == [String(body.count)])
        #expect(headers["x-sluice-request-id"] == ["req-7"] && headers["x-ratelimit-limit-requests"] == ["60"])
        let answer = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        #expect(answer["object"] as? String == "chat.completion" && answer["model"] as? String == "team-model")
        #expect(ending.usage == TokenUsage(promptTokens: 20, completionTokens: 4))
    }

    @Test("a Messages caller of an OpenAI deployment gets a Messages answer")
    func messagesCallerPlainAnswer() throws {
        var relay = Self.machine(caller: .anthropic)
        #expect(relay.receivedHead(status: 200, headers: Self.jsonHead, now: Self.now).isNone)
        _ = relay.receivedBody(ByteBuffer(string: Self.chatAnswer))
        let ending = try #require(relay.finished(now: Self.now).ending)
        let body = try #require(ending.reply?.whole?.body)
        let message = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        #expect(message["type"] as? String == "message" && ending.usage?.promptTokens == 12)
    }

    @Test("an answer not in its API's shape is a 502 naming the protocol error")
    func malformedTranslatedBody() throws {
        var relay = Self.machine(provider: .anthropic)
        _ = relay.receivedHead(status: 200, headers: Self.jsonHead, now: Self.now)
        _ = relay.receivedBody(ByteBuffer(string: "<html>gateway</html>"))
        let ending = try #require(relay.finished(now: Self.now).ending)
        #expect(ending.status == 502 && ending.errorCode == "upstream_protocol_error")
        #expect(ending.failure == .serverError(status: 502))
        #expect(ending.reply?.wholeText?.contains("not in its API's shape") == true)
    }

    @Test("a translated answer over the capture bound stops the upstream with a 502")
    func translatedBodyTooBig() throws {
        var relay = Self.machine(provider: .gemini)
        _ = relay.receivedHead(status: 200, headers: Self.jsonHead, now: Self.now)
        let big = ByteBuffer(repeating: UInt8(ascii: " "), count: RelayStateMachine.usageCaptureLimit + 1)
        let ending = try #require(relay.receivedBody(big).ending)
        #expect(ending.cancelUpstream && ending.status == 502 && ending.errorCode == "upstream_protocol_error")
        #expect(relay.failed(UpstreamError(.cancelled, "cancelled"), now: Self.now).isNone)
    }

    @Test("a transport failure after a translated answer began is answered, never retried")
    func translatedBodyCut() throws {
        var relay = Self.machine(provider: .anthropic)
        _ = relay.receivedHead(status: 200, headers: Self.jsonHead, now: Self.now)
        _ = relay.receivedBody(ByteBuffer(string: "{\"id\":"))
        let ending = try #require(
            relay.failed(UpstreamError(.connectionClosed, "connection lost"), now: Self.now).ending)
        #expect(ending.status == 502 && ending.errorCode == "upstream_connection_closed")
    }

    @Test("a Gemini prompt block is offered as a content-policy fallback, and answered when declined")
    func geminiPromptBlocked() throws {
        var relay = Self.machine(provider: .gemini)
        _ = relay.receivedHead(status: 200, headers: Self.jsonHead, now: Self.now)
        _ = relay.receivedBody(ByteBuffer(string: Self.geminiBlocked))
        #expect(relay.finished(now: Self.now).offered == .contentPolicy)

        var taken = relay
        taken.retryTaken()
        #expect(taken.isFinished && taken.callerDisconnected().isNone)

        let ending = try #require(relay.retryDeclined(at: Self.now).ending)
        #expect(ending.status == 200 && ending.reply?.wholeText?.contains("content_filter") == true)
    }

    // MARK: - Errors and retries

    @Test("a 429 is offered for retry with its Retry-After, and the attempt then says nothing more")
    func rateLimitedRetried() {
        var relay = Self.machine()
        #expect(relay.receivedHead(status: 429, headers: [("retry-after", " 2")], now: Self.now).isNone)
        #expect(relay.receivedBody(ByteBuffer(string: "{}")).consumed == 2)
        #expect(relay.finished(now: Self.now).offered == .rateLimited(retryAfterSeconds: 2))
        relay.retryTaken()
        #expect(relay.isFinished)
        #expect(relay.receivedBody(ByteBuffer(string: "late")).consumed == 4)
        #expect(relay.failed(UpstreamError(.streamReset, "late reset"), now: Self.now).isNone)
        #expect(relay.callerDisconnected().isNone)
    }

    @Test("a declined OpenAI error passes to an OpenAI caller as it is, credentials scrubbed")
    func upstreamErrorPassedOn() throws {
        var relay = Self.machine()
        _ = relay.receivedHead(status: 401, headers: Self.jsonHead, now: Self.now)
        let error =
            #"{"error":{"message":"Incorrect API key provided: \#(Self.secret) or sk-proj-abcdefghijklmnop","#
            + #""type":"invalid_request_error","code":"invalid_api_key"}}"#
        _ = relay.receivedBody(ByteBuffer(string: error))
        #expect(relay.finished(now: Self.now).offered == .deploymentRefused(status: 401))
        let ending = try #require(relay.retryDeclined(at: Self.now).ending)
        let text = try #require(ending.reply?.wholeText)
        #expect(ending.status == 401 && ending.errorCode == "upstream_http_401")
        #expect(!text.contains(Self.secret) && !text.contains("sk-proj") && text.contains("invalid_api_key"))
    }

    @Test("an Anthropic error reaches a chat caller in OpenAI's shape, its type counted")
    func upstreamErrorTranslated() throws {
        var relay = Self.machine(provider: .anthropic)
        _ = relay.receivedHead(status: 529, headers: Self.jsonHead, now: Self.now)
        _ = relay.receivedBody(
            ByteBuffer(string: #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#))
        #expect(relay.finished(now: Self.now).offered == .serverError(status: 529))
        let ending = try #require(relay.retryDeclined(at: Self.now).ending)
        #expect(ending.errorCode == "upstream_overloaded_error" && ending.status == 529)
        let body = try #require(ending.reply?.whole?.body)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        #expect((json["error"] as? [String: Any])?["code"] as? String == "overloaded_error")
    }

    @Test("an error body that is no error of its dialect is replaced by one naming the status")
    func upstreamErrorUnreadable() throws {
        var relay = Self.machine(provider: .gemini)
        _ = relay.receivedHead(status: 503, headers: [], now: Self.now)
        _ = relay.receivedBody(ByteBuffer(string: "<html>Service Unavailable</html>"))
        _ = relay.finished(now: Self.now)
        let ending = try #require(relay.retryDeclined(at: Self.now).ending)
        #expect(ending.errorCode == "upstream_http_503")
        #expect(ending.reply?.wholeText?.contains("answered HTTP 503") == true)
    }

    @Test("an upstream error body is kept only up to its bound")
    func upstreamErrorBounded() throws {
        var relay = Self.machine()
        _ = relay.receivedHead(status: 500, headers: [], now: Self.now)
        let big = ByteBuffer(repeating: UInt8(ascii: "e"), count: RelayStateMachine.errorBodyLimit * 2)
        #expect(relay.receivedBody(big).consumed == big.readableBytes)
        guard case .upstreamError(_, _, let kept) = relay.state else {
            Issue.record("expected the error state, got \(relay.state)")
            return
        }
        #expect(kept.count == RelayStateMachine.errorBodyLimit)
    }

    @Test("a failure before any head is offered for retry; declined, it is a 502 or a 504 for a timeout")
    func failedBeforeHead() throws {
        var connect = Self.machine()
        #expect(connect.failed(UpstreamError(.connectFailed, "refused"), now: Self.now).offered == .connect)
        let refused = try #require(connect.retryDeclined(at: Self.now).ending)
        #expect(refused.status == 502 && refused.errorCode == "upstream_connect_failed" && refused.failure == .connect)
        #expect(refused.reply?.wholeText?.contains("upstream https://llm.example.test failed: refused") == true)

        var slow = Self.machine(caller: .anthropic)
        #expect(slow.failed(UpstreamError(.firstByteTimeout, "no first byte"), now: Self.now).offered == .timeout)
        let timedOut = try #require(slow.retryDeclined(at: Self.now).ending)
        #expect(timedOut.status == 504 && timedOut.failure == .timeout)
        #expect(timedOut.reply?.wholeText?.contains("\"type\":\"error\"") == true)
    }

    @Test("a reset after an error head is offered with the error's own failure")
    func failedAfterErrorHead() throws {
        var relay = Self.machine()
        _ = relay.receivedHead(status: 503, headers: [], now: Self.now)
        #expect(
            relay.failed(UpstreamError(.streamReset, "reset"), now: Self.now).offered == .serverError(status: 503))
        let ending = try #require(relay.retryDeclined(at: Self.now).ending)
        #expect(ending.status == 502 && ending.errorCode == "upstream_stream_reset")
    }

    @Test("how routing reads an error answer")
    func failureClassification() {
        func failure(_ status: Int, _ body: String = "{}", retryAfter: String? = nil) -> AttemptFailure {
            RelayStateMachine.failure(
                status: status, headers: retryAfter.map { [("retry-after", $0)] } ?? [], body: Array(body.utf8))
        }
        #expect(failure(429, retryAfter: "1.5") == .rateLimited(retryAfterSeconds: 1.5))
        #expect(failure(429, retryAfter: "soon") == .rateLimited(retryAfterSeconds: nil))
        #expect(failure(500) == .serverError(status: 500) && failure(529) == .serverError(status: 529))
        #expect(failure(403) == .deploymentRefused(status: 403))
        #expect(
            failure(400, #"{"error":{"code":"context_length_exceeded","message":"too long"}}"#)
                == .contextWindowExceeded)
        #expect(failure(404) == .rejected(status: 404))
    }

    // MARK: - The caller

    @Test("a caller gone mid-stream stops the upstream; usage is what the stream showed")
    func callerGoneMidStream() throws {
        var relay = Self.machine()
        _ = relay.receivedHead(status: 200, headers: Self.streamHead, now: Self.now)
        _ = relay.receivedBody(ByteBuffer(string: Self.chunkEvent + Self.usageEvent))
        let ending = try #require(relay.callerDisconnected().ending)
        #expect(ending.cancelUpstream && ending.ending == .abort && ending.status == 499)
        #expect(ending.errorCode == "client_disconnected" && ending.streamCompleted == false)
        #expect(ending.usage == TokenUsage(promptTokens: 12, completionTokens: 3) && ending.failure == nil)
        #expect(relay.finished(now: Self.now).isNone && relay.callerDisconnected().isNone)
    }

    @Test("a caller gone before the head is charged the prompt estimate")
    func callerGoneBeforeHead() throws {
        var relay = Self.machine()
        let ending = try #require(relay.callerDisconnected().ending)
        #expect(ending.cancelUpstream && ending.status == 499 && ending.streamCompleted == nil)
        #expect(ending.usage == TokenUsage.estimate(promptBytes: 400, completionBytes: 0))
        #expect(relay.receivedHead(status: 200, headers: Self.jsonHead, now: Self.now).isNone)
    }
}

// MARK: - Reading actions

extension RelayStateMachine.Action {
    var head: (Int, HTTPHeaders)? {
        if case .sendHead(let status, let headers) = self { return (status, headers) }
        return nil
    }

    var written: (bytes: [UInt8], text: String, window: Int)? {
        guard case .write(let buffer, let window) = self else { return nil }
        return (Array(buffer.readableBytesView), String(buffer: buffer), window)
    }

    var consumed: Int? {
        if case .consumed(let bytes) = self { return bytes }
        return nil
    }

    var offered: AttemptFailure? {
        if case .offerRetry(let failure) = self { return failure }
        return nil
    }

    var ending: RelayStateMachine.Ending? {
        if case .end(let ending) = self { return ending }
        return nil
    }

    var isNone: Bool {
        if case .none = self { return true }
        return false
    }
}

extension RelayStateMachine.Reply {
    var tailText: String? {
        if case .streamTail(let buffer) = self { return String(buffer: buffer) }
        return nil
    }

    var wholeText: String? { whole.map { String(decoding: $0.body, as: UTF8.self) } }

    var whole: (status: Int, headers: HTTPHeaders, body: [UInt8])? {
        if case .whole(let status, let headers, let body) = self {
            return (status, headers, Array(body.readableBytesView))
        }
        return nil
    }
}

extension RelayStateMachine {
    var isFinished: Bool {
        if case .finished = state { return true }
        return false
    }
}
