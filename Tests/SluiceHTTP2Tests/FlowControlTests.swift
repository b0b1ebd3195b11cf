import NIOCore
import NIOPosix
import SluiceHTTP2
import SluiceTestSupport
import Testing

/// Holds received bytes unconsumed until told, so the test controls the window.
final class WithholdingDelegate: UpstreamResponseDelegate, @unchecked Sendable {
    // Touched only on the call's event loop.
    var received = 0
    var unconsumed = 0
    var autoConsume = false
    var call: UpstreamCall?
    let threshold: Int
    let reached: EventLoopPromise<Void>
    let finished: EventLoopPromise<Int>

    init(threshold: Int, eventLoop: any EventLoop) {
        self.threshold = threshold
        reached = eventLoop.makePromise()
        finished = eventLoop.makePromise()
    }

    func upstreamReceivedHead(_ head: UpstreamResponseHead) {}

    func upstreamReceivedBody(_ chunk: ByteBuffer) {
        received += chunk.readableBytes
        if autoConsume {
            call?.consumed(chunk.readableBytes)
        } else {
            unconsumed += chunk.readableBytes
        }
        if received >= threshold { reached.succeed(()) }
    }

    func release() {
        autoConsume = true
        call?.consumed(unconsumed)
        unconsumed = 0
    }

    func upstreamFinished() { finished.succeed(received) }
    func upstreamFailed(_ error: UpstreamError) { finished.fail(error) }
}

@Suite("Flow control: window is returned only as the caller consumes")
struct FlowControlTests {
    @Test("a stream whose caller does not consume stops at its window; others on the connection still flow")
    func backPressure() async throws {
        let fixture = try await UpstreamFixture()
        let (client, mock, origin) = (fixture.client, fixture.mock, fixture.tlsOrigin())
        let loop = fixture.group.next()
        let body = ByteBuffer(string: #"{"model":"mock+big_body=4000000","messages":[]}"#)

        let slow = WithholdingDelegate(threshold: 512 * 1024, eventLoop: loop)
        try await loop.submit {
            slow.call = client.execute(
                UpstreamRequest(method: "POST", path: "/v1/chat/completions", headers: [], body: body),
                to: origin, on: loop, delegate: slow)
        }.get()
        try await slow.reached.futureResult.get()

        // A second call on the same connection completes while the first is stalled. Its
        // answer is ordered after any DATA the peer was allowed to send for the first.
        let quick = CollectingDelegate(eventLoop: loop)
        try await loop.submit {
            quick.call = client.execute(
                UpstreamRequest(
                    method: "POST", path: "/v1/chat/completions", headers: [],
                    body: ByteBuffer(string: #"{"model":"mock"}"#)),
                to: origin, on: loop, delegate: quick)
        }.get()
        let (head, _) = try await quick.result.get().get()
        #expect(head.status == 200)
        #expect(mock.connectionsOpened == 1)

        let stalledAt = try await loop.submit { slow.received }.get()
        #expect(stalledAt <= 1 << 20, "received \(stalledAt) bytes beyond the 1 MiB stream window")
        #expect(stalledAt >= 512 * 1024)

        try await loop.submit { slow.release() }.get()
        let total = try await slow.finished.futureResult.get()
        #expect(total > 4_000_000)

        try await fixture.stop()
    }
}
