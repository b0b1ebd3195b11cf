import ArgumentParser
import Foundation
import SluiceHTTP2
import SluiceTestSupport

@main
struct MockProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-mock-provider",
        abstract: "An OpenAI-compatible provider for demos, tests and benchmarks (h2 over TLS, h2c, HTTP/1.1).",
        discussion:
            "Faults are chosen by the upstream model name, e.g. mock+status=429, mock+rst_after=3, mock+goaway_once,"
                + " mock+first_byte_delay_ms=2000, mock+malformed_sse, mock+chunks=50+chunk_delay_ms=20."
    )

    enum Mode: String, ExpressibleByArgument { case tls, plaintext, http1 }

    @Option(help: "Address to listen on, HOST:PORT (loopback only).")
    var listen = "127.0.0.1:8443"

    @Option(help: "tls (h2 or http/1.1 by ALPN), plaintext (h2c prior knowledge or HTTP/1.1), http1 (HTTP/1.1 only).")
    var mode = Mode.tls

    @Option(
        help: "With --mode tls: directory holding cert.pem and key.pem; a self-signed pair is made there if missing.")
    var certDir = ".state/mock-provider"

    @Option(help: "Chunks per streamed answer (and words per plain answer).")
    var chunks = 8

    @Option(help: "Delay between streamed chunks, in milliseconds.")
    var chunkDelayMs = 0

    func run() async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ValidationError("--listen must look like 127.0.0.1:8443")
        }
        let host = String(listen[..<colon])
        guard host.hasPrefix("127.") || host == "localhost" || host == "::1" else {
            throw ValidationError("the mock provider only listens on loopback")
        }
        let transport: MockProvider.Transport
        switch mode {
        case .tls:
            try FileManager.default.createDirectory(atPath: certDir, withIntermediateDirectories: true)
            let cert = certDir + "/cert.pem"
            let key = certDir + "/key.pem"
            if !FileManager.default.fileExists(atPath: cert) || !FileManager.default.fileExists(atPath: key) {
                try SelfSignedCertificate.generate(certificatePath: cert, privateKeyPath: key)
            }
            transport = .tls(TLSServerConfiguration(certificateChainFile: cert, privateKeyFile: key))
        case .plaintext:
            transport = .plaintext
        case .http1:
            transport = .http1Only
        }
        var configuration = MockProvider.Configuration(transport: transport)
        configuration.host = host
        configuration.port = port
        configuration.chunks = chunks
        configuration.chunkDelayMilliseconds = chunkDelayMs
        let provider = try MockProvider(configuration: configuration)
        let bound = try await provider.start()
        print("sluice-mock-provider listening on \(host):\(bound) (\(mode.rawValue))")
        if case .tls = mode { print("certificate: \(certDir)/cert.pem") }
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}
