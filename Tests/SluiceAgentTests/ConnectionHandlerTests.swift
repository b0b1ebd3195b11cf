import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import SluiceHTTP2
import SluicePolicy
import Testing

@testable import SluiceAgent

/// `AgentConnectionHandler` behind the real HTTP/1.1 server pipeline, in an
/// `EmbeddedChannel`: raw request bytes in, response bytes and the audit line out, with no
/// socket and no provider (every request here is answered by the agent itself).
@Suite("Agent connection handler in an EmbeddedChannel")
struct ConnectionHandlerTests {
    /// A runtime on a small policy, the channel, and what the agent audited.
    final class Fixture {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let audit = MemoryAuditSink()
        let runtime: AgentRuntime
        let channel = EmbeddedChannel()

        init(maxBodyBytes: Int = 1024) throws {
            let configuration = try ConfigLoader(environment: [:]).load(
                yaml: """
                    model_list:
                      - model_name: gpt-test
                        litellm_params: {model: openai/mock, api_base: "https://127.0.0.1:9/v1", api_key: sk-test-0123}
                    sluice_settings:
                      max_request_body_bytes: \(maxBodyBytes)
                    """)
            runtime = try AgentRuntime(
                configuration: configuration,
                identity: ServiceIdentity(service: "checkout", namespace: "shop", pod: "p"),
                upstream: UpstreamClient(group: group), audit: audit)
            try AgentServer.addCallerHandlers(to: channel.pipeline.syncOperations, runtime: runtime)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        /// Sends raw bytes as the caller would.
        func send(_ text: String) throws {
            try channel.writeInbound(channel.allocator.buffer(string: text))
        }

        /// Every byte the agent wrote back so far.
        func written() throws -> String {
            var text = ""
            while let part = try channel.readOutbound(as: IOData.self) {
                if case .byteBuffer(let buffer) = part { text += String(buffer: buffer) }
            }
            return text
        }

        func finish() throws {
            _ = try? channel.finish()
            try group.syncShutdownGracefully()
        }
    }

    @Test("a declared body over the limit gets 413 before it is read, and the connection closes")
    func bodyTooLarge() throws {
        let fixture = try Fixture(maxBodyBytes: 100)
        defer { try? fixture.finish() }
        try fixture.send(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "Content-Length: 5000\r\n\r\n{\"model\":")
        let answer = try fixture.written()
        #expect(answer.hasPrefix("HTTP/1.1 413"))
        #expect(answer.contains("connection: close") && answer.contains(#""code":"request_too_large""#))
        #expect(!fixture.channel.isActive)
        #expect(fixture.audit.all.count == 1 && fixture.audit.all[0].contains(#""status":413"#))
        #expect(fixture.runtime.inFlight.count == 0)
    }

    @Test("bytes that are not HTTP get 400 naming the fault, and the connection closes")
    func malformed() throws {
        let fixture = try Fixture()
        defer { try? fixture.finish() }
        try? fixture.send("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        let answer = try fixture.written()
        #expect(answer.hasPrefix("HTTP/1.1 400"))
        #expect(answer.contains(#""code":"malformed_http""#))
        #expect(!fixture.channel.isActive)
        #expect(fixture.audit.all.count == 1)
    }

    @Test("pipelined requests are answered one after another, in order, on one connection")
    func pipelined() throws {
        let fixture = try Fixture()
        defer { try? fixture.finish() }
        try fixture.send(
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
                + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = try fixture.written()
        let statuses = answer.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
        #expect(statuses == ["200", "404", "200"])
        #expect(fixture.channel.isActive)
        // Probes that succeed are not audited; the unknown route is.
        #expect(fixture.audit.all.count == 1 && fixture.audit.all[0].contains(#""status":404"#))
        #expect(fixture.runtime.inFlight.count == 0)
    }

    @Test("a caller gone mid-body is audited as 499 and leaves nothing in flight")
    func callerGoneMidBody() throws {
        let fixture = try Fixture()
        defer { try? fixture.finish() }
        try fixture.send(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "Content-Length: 50\r\n\r\n{\"model\":")
        #expect(fixture.runtime.inFlight.count == 1)
        fixture.channel.pipeline.fireChannelInactive()
        #expect(fixture.audit.all.count == 1 && fixture.audit.all[0].contains(#""status":499"#))
        #expect(fixture.audit.all[0].contains("client_disconnected"))
        #expect(fixture.runtime.inFlight.count == 0)
    }

    @Test("a refused call is answered in the OpenAI shape, keeps the connection, and reserves nothing")
    func refusedKeepsConnection() throws {
        let fixture = try Fixture()
        defer { try? fixture.finish() }
        let body = #"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"api_base":"https://evil"}"#
        try fixture.send(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
        let answer = try fixture.written()
        #expect(answer.hasPrefix("HTTP/1.1 400") && answer.contains(#""error":{"#))
        #expect(answer.contains(#""param":"api_base""#))
        #expect(fixture.channel.isActive)
        #expect(fixture.runtime.inFlight.count == 0)
        AgentHarness.checkSettlements(fixture.runtime)
    }
}
