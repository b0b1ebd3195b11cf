import NIOCore

/// Where a call goes: scheme, host and port, plus whom to trust for TLS.
public struct UpstreamOrigin: Hashable, Sendable, CustomStringConvertible {
    /// `https` is TLS with ALPN `h2` then `http/1.1`; `http` is cleartext HTTP/2 (h2c) with an
    /// HTTP/1.1 fallback.
    public enum Scheme: String, Sendable { case https, http }
    public var scheme: Scheme
    public var host: String
    public var port: Int
    public var trustRoots: TLSTrustRoots

    public init(scheme: Scheme, host: String, port: Int, trustRoots: TLSTrustRoots = .system) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.trustRoots = trustRoots
    }

    /// The `:authority` / `Host` value: the port is left out when it is the scheme's default.
    public var authority: String {
        let defaultPort = scheme == .https ? 443 : 80
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return port == defaultPort ? hostPart : "\(hostPart):\(port)"
    }

    public var description: String { "\(scheme.rawValue)://\(authority)" }
}

/// One request to send upstream. The body is complete: Sluice buffers (bounded) request
/// bodies so that a refused stream can be replayed on another connection.
public struct UpstreamRequest: Sendable {
    public var method: String
    public var path: String
    /// Header names must be lower-case (HTTP/2 requires it). Hop-by-hop headers are not allowed.
    public var headers: [(name: String, value: String)]
    public var body: ByteBuffer
    /// Longest wait for the first response byte after the request was sent.
    public var firstByteTimeout: TimeAmount
    /// Longest silence between two response frames once the response has started.
    public var idleTimeout: TimeAmount

    public init(
        method: String, path: String, headers: [(name: String, value: String)], body: ByteBuffer,
        firstByteTimeout: TimeAmount = .seconds(60), idleTimeout: TimeAmount = .seconds(60)
    ) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.firstByteTimeout = firstByteTimeout
        self.idleTimeout = idleTimeout
    }
}

/// The status line and headers of an upstream answer (header names lower-case).
public struct UpstreamResponseHead: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var httpVersion: UpstreamProtocol

    /// The first value of header `name` (lower-case), if the answer has it.
    public func header(_ name: String) -> String? {
        headers.first(where: { $0.name == name })?.value
    }
}

/// The wire protocol a connection ended up speaking.
public enum UpstreamProtocol: String, Sendable {
    case http2 = "h2"
    case http1 = "http/1.1"
}

/// Why an upstream call failed. Messages never carry credentials or payload bytes.
public struct UpstreamError: Error, Sendable, CustomStringConvertible {
    /// What failed; the raw value is the error code callers, audit lines and metrics see.
    public enum Kind: String, Sendable {
        case connectFailed = "upstream_connect_failed"
        case tlsFailed = "upstream_tls_failed"
        case connectTimeout = "upstream_connect_timeout"
        case firstByteTimeout = "upstream_first_byte_timeout"
        case idleTimeout = "upstream_idle_timeout"
        case streamReset = "upstream_stream_reset"
        case connectionClosed = "upstream_connection_closed"
        case protocolError = "upstream_protocol_error"
        case refused = "upstream_refused"
        case peerNotHTTP2 = "upstream_not_http2"
        case overloaded = "upstream_queue_full"
        case cancelled = "cancelled"
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// True for timeouts, which callers answer with 504 rather than 502.
    public var isTimeout: Bool {
        kind == .connectTimeout || kind == .firstByteTimeout || kind == .idleTimeout
    }

    /// The peer never processed the request (GOAWAY above it, REFUSED_STREAM, or not an
    /// HTTP/2 peer), so it is safe to send it again.
    var isUnprocessed: Bool { kind == .refused || kind == .peerNotHTTP2 }

    public var description: String { "\(kind.rawValue): \(message)" }
}

/// Receives one call's response. Every method runs on the event loop the call was started
/// on, so an implementation may keep its state loop-bound without locks.
public protocol UpstreamResponseDelegate: AnyObject {
    func upstreamReceivedHead(_ head: UpstreamResponseHead)
    /// A piece of the body. Call ``UpstreamCall/consumed(_:)`` once these bytes have left
    /// the process (written to the client): only then is flow-control window returned.
    func upstreamReceivedBody(_ chunk: ByteBuffer)
    func upstreamFinished()
    func upstreamFailed(_ error: UpstreamError)
}
