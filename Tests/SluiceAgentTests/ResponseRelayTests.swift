import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import SluiceAPI
import SluicePolicy
import Testing

@testable import SluiceAgent
@testable import SluiceHTTP2

/// ``ResponseRelay`` executing its state machine's actions on an `EmbeddedChannel` behind
/// the real HTTP/1.1 response encoder: upstream events in, the caller's bytes, the audit
/// line and what the call was told out. ``RelayStateMachineTests`` covers the decisions.
@Suite("Response relay in an EmbeddedChannel")
struct ResponseRelayTests {
    /// Records what the relay tells the call it is an attempt of.
    final class Owner: AttemptOwner {
        var takesRetry: Bool
        var offered: [AttemptFailure] = []
        var ended: [(ending: ResponseEnding, usage: TokenUsage?, failure: AttemptFailure?)] = []

        init(takesRetry: Bool) { self.takesRetry = takesRetry }

        func attemptFailed(_ failure: AttemptFailure) -> Bool {
            offered.append(failure)
            return takesRetry
        }

        func attemptEnded(
            _ ending: ResponseEnding, timeToFirstByte: TimeAmount?, usage: TokenUsage?, failure: AttemptFailure?
        ) {
            ended.append((ending, usage, failure))
        }
    }

    final class Fixture {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let audit = MemoryAuditSink()
        let channel = EmbeddedChannel()
        let owner: Owner
        let relay: ResponseRelay

        init(takesRetry: Bool = false) throws {
            let runtime = try AccountTests.runtime(audit: audit, group: group)
            try channel.pipeline.syncOperations.addHandler(HTTPResponseEncoder())
            let permit = try AccountTests.admit(runtime).get()
            let account = AccountTests.account(runtime)
            account.admit(permit)
            let alias = try #require(runtime.activePolicy.configuration.catalog.alias(named: "gpt-test"))
            owner = Owner(takesRetry: takesRetry)
            relay = ResponseRelay(
                channel: channel, permit: permit, alias: alias, deployment: alias.deployments[0], attempt: 1,
                account: account, runtime: runtime, owner: owner)
        }

        func head(_ status: Int, _ contentType: String, _ extra: [(name: String, value: String)] = []) {
            relay.upstreamReceivedHead(
                UpstreamResponseHead(
                    status: status, headers: [("content-type", contentType)] + extra, httpVersion: .http2))
        }

        func body(_ text: String) {
            relay.upstreamReceivedBody(ByteBuffer(string: text))
        }

        /// Every byte flushed to the caller so far.
        func written() throws -> String {
            var text = ""
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            return text
        }

        func finish() throws {
            _ = try? channel.finish()
            try group.syncShutdownGracefully()
        }
    }

    static let chunk =
        #"data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}"#
        + "\n\n"
    static let usage =
        #"data: {"id":"c","object":"chat.completion.chunk","choices":[],"#
        + #""usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}"# + "\n\n"

    @Test("a stream goes out chunked, in one flush per event-loop tick, and is settled once")
    func streamed() throws {
        let fixture = try Fixture()
        defer { try? fixture.finish() }
        fixture.head(200, "text/event-stream")
        fixture.body(Self.chunk)
        // Written but not yet flushed: the flush waits for the end of the tick.
        #expect(try fixture.written().isEmpty)
        fixture.channel.embeddedEventLoop.run()
        let first = try fixture.written()
        #expect(first.hasPrefix("HTTP/1.1 200 OK") && first.contains("transfer-encoding: chunked"))
        #expect(first.contains("cache-control: no-cache") && first.contains("\"content\":\"hi\""))

        fixture.body(Self.usage + "data: [DONE]\n\n")
        fixture.relay.upstreamFinished()
        fixture.channel.embeddedEventLoop.run()
        let rest = try fixture.written()
        #expect(rest.contains("data: [DONE]") && !rest.contains("prompt_tokens"))
        #expect(fixture.audit.all.count == 1)
        #expect(fixture.audit.all.first?.contains(#""status":200"#) == true)
        #expect(fixture.owner.ended.count == 1 && fixture.owner.ended.first?.ending == .complete)
        #expect(fixture.owner.ended.first?.usage == TokenUsage(promptTokens: 7, completionTokens: 2))
        #expect(fixture.relay.call == nil)
    }

    @Test("an error the call retries writes nothing and settles nothing; the attempt then stays silent")
    func retried() throws {
        let fixture = try Fixture(takesRetry: true)
        defer { try? fixture.finish() }
        fixture.head(429, "application/json", [("retry-after", "3")])
        fixture.body(#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#)
        fixture.relay.upstreamFinished()
        fixture.relay.upstreamFailed(UpstreamError(.streamReset, "late"))
        fixture.relay.clientDisconnected()
        fixture.channel.embeddedEventLoop.run()
        #expect(fixture.owner.offered == [.rateLimited(retryAfterSeconds: 3)])
        #expect(try fixture.written().isEmpty && fixture.audit.all.isEmpty && fixture.owner.ended.isEmpty)
    }

    @Test("an error the call does not retry goes to the caller with its status, and is settled once")
    func declined() throws {
        let fixture = try Fixture(takesRetry: false)
        defer { try? fixture.finish() }
        fixture.head(503, "application/json")
        fixture.body(#"{"error":{"message":"down for maintenance","type":"server_error"}}"#)
        fixture.relay.upstreamFinished()
        // The connection handler flushes with the end of the response.
        fixture.channel.flush()
        let answer = try fixture.written()
        #expect(answer.hasPrefix("HTTP/1.1 503") && answer.contains("x-sluice-request-id: r"))
        #expect(answer.contains("down for maintenance"))
        #expect(fixture.audit.all.count == 1 && fixture.audit.all[0].contains("upstream_http_503"))
        #expect(fixture.owner.ended.first?.failure == .serverError(status: 503))
    }

    @Test("a caller gone mid-stream is settled as 499 and the attempt ends in an abort")
    func callerGone() throws {
        let fixture = try Fixture()
        defer { try? fixture.finish() }
        fixture.head(200, "text/event-stream")
        fixture.body(Self.chunk)
        fixture.relay.clientDisconnected()
        fixture.body(Self.chunk)
        fixture.relay.upstreamFinished()
        #expect(fixture.audit.all.count == 1 && fixture.audit.all[0].contains(#""status":499"#))
        #expect(fixture.owner.ended.count == 1 && fixture.owner.ended.first?.ending == .abort)
    }
}
