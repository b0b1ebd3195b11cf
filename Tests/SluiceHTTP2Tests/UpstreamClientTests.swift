import Foundation
import NIOCore
import NIOPosix
import SluiceHTTP2
import SluiceTestSupport
import Testing

@Suite("UpstreamClient against the mock provider (swift-nio-http2)")
struct UpstreamClientTests {
    static func chatBody(model: String, stream: Bool = false) -> ByteBuffer {
        ByteBuffer(string: #"{"model":"\#(model)","stream":\#(stream),"messages":[{"role":"user","content":"hi"}]}"#)
    }

    func send(_ client: UpstreamClient, origin: UpstreamOrigin, model: String, stream: Bool = false,
              loop: any EventLoop, firstByteTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount = .seconds(10))
        async throws -> Result<(UpstreamResponseHead, [UInt8]), UpstreamError> {
        let delegate = CollectingDelegate(eventLoop: loop)
        let request = UpstreamRequest(method: "POST", path: "/v1/chat/completions",
                                      headers: [("content-type", "application/json")],
                                      body: Self.chatBody(model: model, stream: stream),
                                      firstByteTimeout: firstByteTimeout, idleTimeout: idleTimeout)
        let call = try await loop.submit {
            client.execute(request, to: origin, on: loop, delegate: delegate)
        }.get()
        try await loop.submit { delegate.call = call }.get()
        return try await delegate.result.get()
    }

    @Test("h2 over TLS with a verified self-signed certificate", arguments: [false, true])
    func tlsHTTP2(stream: Bool) async throws {
        let certificate = try TestCertificate()
        defer { certificate.directory.remove() }
        let mock = try MockProvider(configuration: .init(transport: .tls(certificate.serverConfiguration)))
        let port = try await mock.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = UpstreamClient(group: group)
        let origin = UpstreamOrigin(scheme: .https, host: "127.0.0.1", port: port, trustRoots: .caFile(certificate.certificatePath))

        let result = try await send(client, origin: origin, model: "mock", stream: stream, loop: group.next())
        let (head, body) = try result.get()
        #expect(head.status == 200)
        #expect(head.httpVersion == .http2)
        let text = String(decoding: body, as: UTF8.self)
        #expect(text.contains("Sluice"))
        #expect(mock.requests.first?.httpVersion == "h2")
        client.shutdown()
        try await mock.stop()
        try await group.shutdownGracefully()
    }

    @Test("TLS fails closed when the certificate names another host")
    func wrongHost() async throws {
        let certificate = try TestCertificate(subjectAltNames: "DNS:api.other.example")
        defer { certificate.directory.remove() }
        let mock = try MockProvider(configuration: .init(transport: .tls(certificate.serverConfiguration)))
        let port = try await mock.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = UpstreamClient(group: group)
        for host in ["127.0.0.1", "localhost"] {
            let origin = UpstreamOrigin(scheme: .https, host: host, port: port, trustRoots: .caFile(certificate.certificatePath))
            let result = try await send(client, origin: origin, model: "mock", loop: group.next())
            guard case .failure(let error) = result else {
                Issue.record("a certificate for another host was accepted for \(host)")
                continue
            }
            #expect(error.kind == .tlsFailed)
        }
        #expect(mock.requests.isEmpty)
        client.shutdown()
        try await mock.stop()
        try await group.shutdownGracefully()
    }

    @Test("https falls back to HTTP/1.1 when ALPN does not offer h2")
    func alpnHTTP1() async throws {
        let certificate = try TestCertificate()
        defer { certificate.directory.remove() }
        var settings = certificate.serverConfiguration
        settings.applicationProtocols = ["http/1.1"]
        let mock = try MockProvider(configuration: .init(transport: .tls(settings)))
        let port = try await mock.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = UpstreamClient(group: group)
        let origin = UpstreamOrigin(scheme: .https, host: "localhost", port: port, trustRoots: .caFile(certificate.certificatePath))
        for stream in [false, true] {
            let (head, body) = try await send(client, origin: origin, model: "mock", stream: stream, loop: group.next()).get()
            #expect(head.status == 200)
            #expect(head.httpVersion == .http1)
            #expect(String(decoding: body, as: UTF8.self).contains("Sluice"))
        }
        #expect(mock.requests.map(\.httpVersion) == ["http/1.1", "http/1.1"])
        #expect(mock.connectionsOpened == 1)  // kept alive and reused
        client.shutdown()
        try await mock.stop()
        try await group.shutdownGracefully()
    }

    @Test("the system trust store honours SSL_CERT_FILE")
    func systemStoreHonoursEnvironment() async throws {
        let certificate = try TestCertificate()
        defer { certificate.directory.remove() }
        let mock = try MockProvider(configuration: .init(transport: .tls(certificate.serverConfiguration)))
        let port = try await mock.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Read by OpenSSL when the origin's context is built; no other test uses .system.
        setenv("SSL_CERT_FILE", certificate.certificatePath, 1)
        defer { unsetenv("SSL_CERT_FILE") }
        let client = UpstreamClient(group: group)
        let origin = UpstreamOrigin(scheme: .https, host: "127.0.0.1", port: port, trustRoots: .system)
        let (head, _) = try await send(client, origin: origin, model: "mock", loop: group.next()).get()
        #expect(head.status == 200)
        client.shutdown()
        try await mock.stop()
        try await group.shutdownGracefully()
    }

    @Test("TLS fails closed when the certificate is not trusted")
    func untrustedCertificate() async throws {
        let certificate = try TestCertificate()
        let other = try TestCertificate()
        defer { certificate.directory.remove(); other.directory.remove() }
        let mock = try MockProvider(configuration: .init(transport: .tls(certificate.serverConfiguration)))
        let port = try await mock.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = UpstreamClient(group: group)
        let origin = UpstreamOrigin(scheme: .https, host: "127.0.0.1", port: port, trustRoots: .caFile(other.certificatePath))
        let result = try await send(client, origin: origin, model: "mock", loop: group.next())
        guard case .failure(let error) = result else {
            Issue.record("an untrusted certificate was accepted")
            return
        }
        #expect(error.kind == .tlsFailed)
        #expect(error.message.contains("certificate verify failed") || error.message.contains("verification"))
        #expect(mock.requests.isEmpty)
        client.shutdown()
        try await mock.stop()
        try await group.shutdownGracefully()
    }
}

/// Holds its call strongly, as the agent's relay does.
final class CallHoldingDelegate: UpstreamResponseDelegate, @unchecked Sendable {
    var call: UpstreamCall?
    let done: EventLoopPromise<Void>
    init(eventLoop: any EventLoop) { done = eventLoop.makePromise() }
    func upstreamReceivedHead(_ head: UpstreamResponseHead) {}
    func upstreamReceivedBody(_ chunk: ByteBuffer) { call?.consumed(chunk.readableBytes) }
    func upstreamFinished() { done.succeed(()) }
    func upstreamFailed(_ error: UpstreamError) { done.fail(error) }
}

@Suite("Call lifetime")
struct CallLifetimeTests {
    @Test("a finished call and a delegate that holds it are both freed")
    func noCycle() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let mock = try MockProvider(configuration: .init(transport: .plaintext), group: group)
        let port = try await mock.start()
        let client = UpstreamClient(group: group)
        let loop = group.next()
        let origin = UpstreamOrigin(scheme: .http, host: "127.0.0.1", port: port)
        weak var weakDelegate: CallHoldingDelegate?
        weak var weakCall: UpstreamCall?
        do {
            let delegate = CallHoldingDelegate(eventLoop: loop)
            try await loop.submit {
                delegate.call = client.execute(UpstreamRequest(method: "POST", path: "/v1/chat/completions", headers: [],
                                                               body: ByteBuffer(string: #"{"model":"mock"}"#)),
                                               to: origin, on: loop, delegate: delegate)
            }.get()
            weakCall = try await loop.submit { delegate.call }.get()
            weakDelegate = delegate
            try await delegate.done.futureResult.get()
        }
        try await loop.submit {}.get()  // let the stream-close bookkeeping run
        #expect(weakDelegate == nil)
        #expect(weakCall == nil)
        client.shutdown()
        try await mock.stop()
        try await group.shutdownGracefully()
    }
}
