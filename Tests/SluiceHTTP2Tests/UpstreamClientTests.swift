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

    func send(
        _ client: UpstreamClient, origin: UpstreamOrigin, model: String, stream: Bool = false,
        loop: any EventLoop, firstByteTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount = .seconds(10)
    )
        async throws -> Result<(UpstreamResponseHead, [UInt8]), UpstreamError>
    {
        let delegate = CollectingDelegate(eventLoop: loop)
        let request = UpstreamRequest(
            method: "POST", path: "/v1/chat/completions",
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
        let fixture = try await UpstreamFixture()
        let result = try await send(
            fixture.client, origin: fixture.tlsOrigin(), model: "mock", stream: stream, loop: fixture.group.next())
        let (head, body) = try result.get()
        #expect(head.status == 200)
        #expect(head.httpVersion == .http2)
        let text = String(decoding: body, as: UTF8.self)
        #expect(text.contains("Sluice"))
        #expect(fixture.mock.requests.first?.httpVersion == "h2")
        try await fixture.stop()
    }

    @Test("TLS fails closed when the certificate names another host")
    func wrongHost() async throws {
        let fixture = try await UpstreamFixture(
            certificate: try TestCertificate(subjectAltNames: "DNS:api.other.example"))
        for host in ["127.0.0.1", "localhost"] {
            let result = try await send(
                fixture.client, origin: fixture.tlsOrigin(host: host), model: "mock", loop: fixture.group.next())
            guard case .failure(let error) = result else {
                Issue.record("a certificate for another host was accepted for \(host)")
                continue
            }
            #expect(error.kind == .tlsFailed)
        }
        #expect(fixture.mock.requests.isEmpty)
        try await fixture.stop()
    }

    @Test("https falls back to HTTP/1.1 when ALPN does not offer h2")
    func alpnHTTP1() async throws {
        let fixture = try await UpstreamFixture { certificate in
            var settings = certificate.serverConfiguration
            settings.applicationProtocols = ["http/1.1"]
            return .tls(settings)
        }
        for stream in [false, true] {
            let (head, body) = try await send(
                fixture.client, origin: fixture.tlsOrigin(host: "localhost"), model: "mock", stream: stream,
                loop: fixture.group.next()
            ).get()
            #expect(head.status == 200)
            #expect(head.httpVersion == .http1)
            #expect(String(decoding: body, as: UTF8.self).contains("Sluice"))
        }
        #expect(fixture.mock.requests.map(\.httpVersion) == ["http/1.1", "http/1.1"])
        #expect(fixture.mock.connectionsOpened == 1)  // kept alive and reused
        try await fixture.stop()
    }

    @Test("the system trust store honours SSL_CERT_FILE")
    func systemStoreHonoursEnvironment() async throws {
        let fixture = try await UpstreamFixture()
        // Read by OpenSSL when the origin's context is built; no other test uses .system.
        setenv("SSL_CERT_FILE", fixture.certificate.certificatePath, 1)
        defer { unsetenv("SSL_CERT_FILE") }
        let origin = fixture.tlsOrigin(trustRoots: .system)
        let (head, _) = try await send(fixture.client, origin: origin, model: "mock", loop: fixture.group.next()).get()
        #expect(head.status == 200)
        try await fixture.stop()
    }

    @Test("TLS fails closed when the certificate is not trusted")
    func untrustedCertificate() async throws {
        let fixture = try await UpstreamFixture()
        let other = try TestCertificate()
        defer { other.directory.remove() }
        let origin = fixture.tlsOrigin(trustRoots: .caFile(other.certificatePath))
        let result = try await send(fixture.client, origin: origin, model: "mock", loop: fixture.group.next())
        guard case .failure(let error) = result else {
            Issue.record("an untrusted certificate was accepted")
            return
        }
        #expect(error.kind == .tlsFailed)
        #expect(error.message.contains("certificate verify failed") || error.message.contains("verification"))
        #expect(fixture.mock.requests.isEmpty)
        try await fixture.stop()
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
        let fixture = try await UpstreamFixture { _ in .plaintext }
        let loop = fixture.group.next()
        let client = fixture.client
        let origin = fixture.plainOrigin
        weak var weakDelegate: CallHoldingDelegate?
        weak var weakCall: UpstreamCall?
        do {
            let delegate = CallHoldingDelegate(eventLoop: loop)
            try await loop.submit {
                delegate.call = client.execute(
                    UpstreamRequest(
                        method: "POST", path: "/v1/chat/completions", headers: [],
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
        try await fixture.stop()
    }
}
