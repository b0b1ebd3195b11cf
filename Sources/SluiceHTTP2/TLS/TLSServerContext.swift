import NIOCore

/// A server-side TLS setup (certificate, key, ALPN) that can be put into NIO pipelines.
/// The agent serves TLS as a shared gateway; the mock provider does, so tests run over real TLS.
public final class TLSServerContext: Sendable {
    private let context: SSLContext

    public init(configuration: TLSServerConfiguration) throws(TLSError) {
        self.context = try SSLContext(server: configuration)
    }

    /// Adds a TLS handler to `pipeline`. It fires ``TLSHandshakeCompleted`` once the
    /// client is through the handshake, carrying the protocol ALPN chose.
    public func addHandler(to pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(TLSHandler(context: context, role: .server))
    }
}
