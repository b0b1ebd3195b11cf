import Foundation
import NIOCore
import NIOPosix
import SluiceAgent
import SluiceTestSupport
import Synchronization
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
    struct DeliberateFailure: Error {}

    @Test("a test body that fails still shuts its agent, mock and event loops down")
    func harnessCleansUpAfterFailure() async throws {
        let seen = Mutex<(AgentHarness, AgentServer)?>(nil)
        await #expect(throws: DeliberateFailure.self) {
            try await AgentHarness.with { harness in
                let server = try #require(harness.agent?.server)
                #expect(server.isListening)
                seen.withLock { $0 = (harness, server) }
                #expect(try await harness.chat().status == 200)
                throw DeliberateFailure()
            }
        }
        let (harness, server) = try #require(seen.withLock { $0 })
        #expect(harness.isShutDown && harness.runtime == nil)
        // The listening socket is closed. (Connecting to the old port would prove nothing:
        // another test running in parallel may have been given the same port since.)
        #expect(!server.isListening)
    }

    @Test("a caller hanging up mid-stream resets the upstream stream and records partial usage")
    func callerHangsUp() async throws {
        try await AgentHarness.with(aliases: ["long": "mock+chunks=200+chunk_delay_ms=20"]) { harness in
            let handler = HangUpAfterFirstBytes(eventLoop: harness.group.next())
            let channel = try await ClientBootstrap(group: harness.group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
                }
                .connect(host: "127.0.0.1", port: harness.agentPort).get()
            let body = #"{"model":"long","stream":true,"messages":[]}"#
            let request =
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
            try await channel.writeAndFlush(channel.allocator.buffer(string: request))
            try await handler.gotBytes.futureResult.get()

            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["status"] as? Int == 499)
            #expect(record["error"] as? String == "client_disconnected")
            #expect(record["stream_completed"] as? Bool == false)
            #expect((record["completion_tokens"] as? Int ?? 0) >= 1)
            await harness.mock.waitForAbandonedStreams(1)
            #expect(harness.mock.streamsAbandoned == 1)
        }
    }

    @Test("the admin port answers the kubelet's probes: /healthz, and /readyz as the caller port does")
    func probesOnAdminPort() async throws {
        try await AgentHarness.with { harness in
            let health = try await TestHTTPClient.get("/healthz", port: harness.metricsPort, group: harness.group)
            #expect(health.status == 200 && health.text == #"{"status":"ok"}"#)
            let ready = try await TestHTTPClient.get("/readyz", port: harness.metricsPort, group: harness.group)
            let callerReady = try await TestHTTPClient.get("/readyz", port: harness.agentPort, group: harness.group)
            #expect(ready.status == 200 && ready.text.contains(#""status":"ready""#))
            #expect(ready.status == callerReady.status)
            let other = try await TestHTTPClient.get("/v1/models", port: harness.metricsPort, group: harness.group)
            #expect(other.status == 404)
        }
    }

    @Test("SIGTERM-style shutdown lets in-flight streams finish, then stops accepting")
    func drainsInFlight() async throws {
        try await AgentHarness.with(aliases: ["long": "mock+chunks=20+chunk_delay_ms=25"]) { harness in
            let inFlight = Task { try await harness.chat(model: "long", stream: true) }
            await harness.mock.waitForRequests(1)
            let server = try #require(harness.agent?.server)
            try await harness.stopAgent()
            let response = try await inFlight.value
            #expect(response.status == 200)
            #expect(response.text.contains("data: [DONE]"))
            // Its listening socket is closed. (Its old port may since have been given to a
            // test running in parallel, so connecting to it would prove nothing.)
            #expect(!server.isListening)
        }
    }
}
