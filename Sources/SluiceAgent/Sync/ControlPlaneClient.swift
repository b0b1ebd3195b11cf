import NIOCore
import SluiceHTTP2
import SluicePolicy

/// Talks to the control plane's agent API over the agent's own upstream client (HTTP/1.1
/// or HTTP/2, TLS or not), authenticated with the agent token. Answers are read whole,
/// up to a bound.
public final class ControlPlaneClient: Sendable {
    /// A control plane answer, read whole.
    public typealias Response = FetchedResponse
    /// Why a call to the control plane did not get an answer (the token never appears).
    public typealias Failure = FetchFailure

    public let baseURL: Endpoint
    private let origin: UpstreamOrigin
    /// Where the bearer token comes from: a fixed one, or the agent's token file.
    private enum Credential: Sendable {
        case fixed(Secret)
        case file(AgentTokenFile)
    }
    private let credential: Credential
    private let claimedService: String?
    private let upstream: UpstreamClient
    private let group: any EventLoopGroup
    /// Largest answer read: a 10,000-key bundle is about 5 MiB.
    static let maxResponseBytes = 64 << 20

    /// - Parameter url: the control plane's base URL (`https://…` or `http://…`); refused with a
    ///   `ConfigError` naming `--control-plane` when it does not parse.
    /// - Parameter caFile: a PEM bundle to trust instead of the system roots.
    /// A client presenting a fixed token (an admin token, in tests and tools).
    public convenience init(
        url: String, token: Secret, caFile: String?, upstream: UpstreamClient, group: any EventLoopGroup
    ) throws(ConfigError) {
        try self.init(
            url: url, credential: .fixed(token), claimedService: nil, caFile: caFile, upstream: upstream, group: group)
    }

    /// A client presenting the token in `tokenFile`, re-read as it rotates: on a 401 the file
    /// is read again and, when it holds a new token, the call is made once more with it.
    /// `claimedService` (the bare service name) is sent as `Sluice-Service` on every call: a
    /// control plane that authenticates the token as a Kubernetes service account takes the
    /// namespace from the token and checks this name against its claim rules.
    public convenience init(
        url: String, tokenFile: AgentTokenFile, claimedService: String? = nil, caFile: String?,
        upstream: UpstreamClient, group: any EventLoopGroup
    ) throws(ConfigError) {
        try self.init(
            url: url, credential: .file(tokenFile), claimedService: claimedService, caFile: caFile,
            upstream: upstream, group: group)
    }

    private init(
        url: String, credential: Credential, claimedService: String?, caFile: String?, upstream: UpstreamClient,
        group: any EventLoopGroup
    ) throws(ConfigError) {
        self.claimedService = claimedService
        do {
            baseURL = try Endpoint(parsing: url)
        } catch {
            throw ConfigError("--control-plane: \(error.message)")
        }
        origin = UpstreamOrigin(
            scheme: baseURL.scheme == .https ? .https : .http, host: baseURL.host, port: baseURL.port,
            trustRoots: caFile.map { .caFile($0) } ?? .system)
        self.credential = credential
        self.upstream = upstream
        self.group = group
    }

    /// `GET path` with the agent token, the answer read whole (bounded); throws when none came.
    public func get(_ path: String, headers: [(name: String, value: String)] = [], timeout: TimeAmount)
        async throws(Failure) -> Response
    {
        try await send("GET", path, headers: headers, body: [], timeout: timeout)
    }

    /// `POST path` with a JSON body and the agent token, the answer read whole (bounded).
    public func post(
        _ path: String, json: [UInt8], headers: [(name: String, value: String)] = [], timeout: TimeAmount
    ) async throws(Failure) -> Response {
        try await send(
            "POST", path, headers: [("content-type", "application/json")] + headers, body: json, timeout: timeout)
    }

    private func send(
        _ method: String, _ path: String, headers: [(name: String, value: String)], body: [UInt8],
        timeout: TimeAmount
    ) async throws(Failure) -> Response {
        let response = try await send(method, path, headers: headers, body: body, timeout: timeout, token: token)
        if response.status == 401, case .file(let file) = credential, file.reload() {
            return try await send(method, path, headers: headers, body: body, timeout: timeout, token: token)
        }
        return response
    }

    private var token: Secret {
        switch credential {
        case .fixed(let token): token
        case .file(let file): file.current
        }
    }

    private func send(
        _ method: String, _ path: String, headers: [(name: String, value: String)], body: [UInt8],
        timeout: TimeAmount, token: Secret
    ) async throws(Failure) -> Response {
        var allHeaders = headers
        allHeaders.append(("authorization", "Bearer " + token.reveal()))
        allHeaders.append(("accept", "application/json"))
        allHeaders.append(("user-agent", "sluice-agent/0.1"))
        if let claimedService { allHeaders.append(("sluice-service", claimedService)) }
        let request = UpstreamRequest(
            method: method, path: baseURL.basePath + path, headers: allHeaders,
            body: ByteBuffer(bytes: body), firstByteTimeout: timeout, idleTimeout: timeout)
        return try await upstream.fetch(
            request, to: origin, on: group.next(), limit: Self.maxResponseBytes, subject: "the control plane")
    }
}
