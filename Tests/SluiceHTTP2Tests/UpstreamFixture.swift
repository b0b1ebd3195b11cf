import NIOPosix
import SluiceHTTP2
import SluiceTestSupport

/// A mock provider and an `UpstreamClient` sharing one event loop, for one test.
struct UpstreamFixture {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let certificate: TestCertificate
    let mock: MockProvider
    let client: UpstreamClient
    let port: Int

    /// - Parameters:
    ///   - certificate: what the mock presents (a fresh localhost one by default).
    ///   - transport: how the mock serves; TLS with `certificate` by default.
    init(
        certificate: TestCertificate? = nil,
        transport: (TestCertificate) -> MockProvider.Transport = { .tls($0.serverConfiguration) }
    ) async throws {
        let certificate = try certificate ?? TestCertificate()
        self.certificate = certificate
        mock = try MockProvider(configuration: .init(transport: transport(certificate)), group: group)
        port = try await mock.start()
        client = UpstreamClient(group: group)
    }

    /// The mock as an https origin trusting `trustRoots` (by default exactly the mock's certificate).
    func tlsOrigin(host: String = "127.0.0.1", trustRoots: TLSTrustRoots? = nil) -> UpstreamOrigin {
        UpstreamOrigin(
            scheme: .https, host: host, port: port, trustRoots: trustRoots ?? .caFile(certificate.certificatePath))
    }

    /// The mock as a plain http origin.
    var plainOrigin: UpstreamOrigin { UpstreamOrigin(scheme: .http, host: "127.0.0.1", port: port) }

    func stop() async throws {
        client.shutdown()
        try await mock.stop()
        try await group.shutdownGracefully()
        certificate.directory.remove()
    }
}
