/// How a TLS client decides whom to trust.
public enum TLSTrustRoots: Sendable, Hashable {
    /// The system CA store. OpenSSL honours `SSL_CERT_FILE` and `SSL_CERT_DIR` here.
    case system
    /// Only the CA certificates in this PEM file (LiteLLM's `ssl_verify: <path>`).
    case caFile(String)
}

/// Settings for an outbound TLS connection. Verification is never optional.
public struct TLSClientConfiguration: Sendable, Hashable {
    public var trustRoots: TLSTrustRoots
    /// Protocols offered in ALPN, most preferred first.
    public var applicationProtocols: [String]

    public init(trustRoots: TLSTrustRoots = .system, applicationProtocols: [String] = ["h2", "http/1.1"]) {
        self.trustRoots = trustRoots
        self.applicationProtocols = applicationProtocols
    }
}

/// Settings for an inbound TLS listener (the agent as a shared gateway, the mock provider).
public struct TLSServerConfiguration: Sendable, Hashable {
    public var certificateChainFile: String
    public var privateKeyFile: String
    /// Protocols this server accepts in ALPN, most preferred first.
    public var applicationProtocols: [String]

    public init(
        certificateChainFile: String, privateKeyFile: String, applicationProtocols: [String] = ["h2", "http/1.1"]
    ) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.applicationProtocols = applicationProtocols
    }
}

/// Fired through the pipeline once the TLS handshake has succeeded and the peer was verified.
public struct TLSHandshakeCompleted: Sendable, Hashable {
    /// The protocol ALPN settled on, or nil when the peer chose none.
    public var negotiatedProtocol: String?
}

/// A TLS failure. The message comes from OpenSSL's error queue and never holds payload bytes.
public struct TLSError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "TLS: \(message)" }
}
