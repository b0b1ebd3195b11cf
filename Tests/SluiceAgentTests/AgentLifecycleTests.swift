import Foundation
import NIOCore
import NIOPosix
import SluiceTestSupport
import Testing

/// Reads until the first body bytes arrive, then drops the connection.
final class HangUpAfterFirstBytes: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let gotBytes: EventLoopPromise<Void>
    init(eventLoop: any EventLoop) { gotBytes = eventLoop.makePromise() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if unwrapInboundIn(data).readableBytesView.contains(UInt8(ascii: "{")) {
            gotBytes.succeed(())
            context.close(promise: nil)
        }
    }
}

@Suite("Agent lifecycle: disconnects and graceful shutdown")
struct AgentLifecycleTests {
    @Test("a caller hanging up mid-stream resets the upstream stream and records partial usage")
    func callerHangsUp() async throws {
        let harness = try await AgentHarness(aliases: ["long": "mock+chunks=200+chunk_delay_ms=20"])
        let handler = HangUpAfterFirstBytes(eventLoop: harness.group.next())
        let channel = try await ClientBootstrap(group: harness.group)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) } }
            .connect(host: "127.0.0.1", port: harness.agentPort).get()
        let body = #"{"model":"long","stream":true,"messages":[]}"#
        let request = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        try await channel.writeAndFlush(channel.allocator.buffer(string: request))
        try await handler.gotBytes.futureResult.get()

        let record = try #require(await harness.auditRecords(1).first)
        #expect(record["status"] as? Int == 499)
        #expect(record["error"] as? String == "client_disconnected")
        #expect(record["stream_completed"] as? Bool == false)
        #expect((record["completion_tokens"] as? Int ?? 0) >= 1)
        await harness.mock.waitForAbandonedStreams(1)
        #expect(harness.mock.streamsAbandoned == 1)
        try await harness.shutdown()
    }

    @Test("SIGTERM-style shutdown lets in-flight streams finish, then stops accepting")
    func drainsInFlight() async throws {
        let harness = try await AgentHarness(aliases: ["long": "mock+chunks=20+chunk_delay_ms=25"])
        let inFlight = Task { try await harness.chat(model: "long", stream: true) }
        await harness.mock.waitForRequests(1)
        let port = harness.agentPort
        try await harness.stopAgent()
        let response = try await inFlight.value
        #expect(response.status == 200)
        #expect(response.text.contains("data: [DONE]"))
        await #expect(throws: (any Error).self) {
            _ = try await TestHTTPClient.get("/healthz", port: port, group: harness.group)
        }
        try await harness.shutdownAfterStop()
    }
}
