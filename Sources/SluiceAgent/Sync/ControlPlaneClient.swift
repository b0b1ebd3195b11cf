import NIOConcurrencyHelpers
import NIOCore
import SluiceHTTP2
import SluicePolicy

/// Talks to the control plane's agent API over the agent's own upstream client (HTTP/1.1
/// or HTTP/2, TLS or not), authenticated with the agent token. Answers are read whole,
/// up to a bound.
public final class ControlPlaneClient: Sendable {
    /// A control plane answer.
    public struct Response: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        /// The first value of header `name` (lower-case), if the answer has it.
        public func header(_ name: String) -> String? { headers.first(where: { $0.name == name })?.value }
    }

    /// Why a call to the control plane did not get an answer (the token never appears).
    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public let baseURL: Endpoint
    private let origin: UpstreamOrigin
    /// Where the bearer token comes from: a fixed one, or the agent's token file.
    private enum Credential: Sendable {
        case fixed(Secret)
        case file(AgentTokenFile)
    }
    private let credential: Credential
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
        try self.init(url: url, credential: .fixed(token), caFile: caFile, upstream: upstream, group: group)
    }

    /// A client presenting the token in `tokenFile`, re-read as it rotates: on a 401 the file
    /// is read again and, when it holds a new token, the call is made once more with it.
    public convenience init(
        url: String, tokenFile: AgentTokenFile, caFile: String?, upstream: UpstreamClient, group: any EventLoopGroup
    ) throws(ConfigError) {
        try self.init(url: url, credential: .file(tokenFile), caFile: caFile, upstream: upstream, group: group)
    }

    private init(
        url: String, credential: Credential, caFile: String?, upstream: UpstreamClient, group: any EventLoopGroup
    ) throws(ConfigError) {
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
    public func post(_ path: String, json: [UInt8], timeout: TimeAmount) async throws(Failure) -> Response {
        try await send("POST", path, headers: [("content-type", "application/json")], body: json, timeout: timeout)
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
        let eventLoop = group.next()
        let request = UpstreamRequest(
            method: method, path: baseURL.basePath + path, headers: allHeaders,
            body: ByteBuffer(bytes: body), firstByteTimeout: timeout, idleTimeout: timeout)
        // Cancelling the task (graceful shutdown during a long-poll) cancels the call. The
        // continuation is resumed exactly once, by the answer or by the cancellation.
        let pending = NIOLockedValueBox<PendingCall>(PendingCall())
        let result: Result<Response, Failure> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let alreadyCancelled = pending.withLockedValue { state in
                    state.continuation = continuation
                    return state.cancelled
                }
                if alreadyCancelled {
                    pending.withLockedValue { $0.take() }?.resume(returning: .failure(.init(message: "cancelled")))
                    return
                }
                eventLoop.execute {
                    let collector = ResponseCollector(limit: Self.maxResponseBytes) { result in
                        pending.withLockedValue { $0.take() }?.resume(returning: result)
                    }
                    let call = self.upstream.execute(request, to: self.origin, on: eventLoop, delegate: collector)
                    collector.call = call
                    let cancelled = pending.withLockedValue { state in
                        state.call = call
                        return state.cancelled
                    }
                    if cancelled { call.cancel() }
                }
            }
        } onCancel: {
            let (call, continuation) = pending.withLockedValue { state in
                state.cancelled = true
                return (state.call, state.take())
            }
            call?.cancel()
            continuation?.resume(returning: .failure(.init(message: "cancelled")))
        }
        return try result.get()
    }
}

/// One call's continuation and handle, shared by the answer and a cancellation.
private struct PendingCall {
    var continuation: CheckedContinuation<Result<ControlPlaneClient.Response, ControlPlaneClient.Failure>, Never>?
    var call: UpstreamCall?
    var cancelled = false

    mutating func take() -> CheckedContinuation<Result<ControlPlaneClient.Response, ControlPlaneClient.Failure>, Never>?
    {
        defer { continuation = nil }
        return continuation
    }
}

/// Gathers one answer on its event loop and hands it over once, whole or failed.
private final class ResponseCollector: UpstreamResponseDelegate {
    private let limit: Int
    private var done: ((Result<ControlPlaneClient.Response, ControlPlaneClient.Failure>) -> Void)?
    private var head: UpstreamResponseHead?
    private var body: [UInt8] = []
    var call: UpstreamCall?

    init(limit: Int, done: @escaping (Result<ControlPlaneClient.Response, ControlPlaneClient.Failure>) -> Void) {
        self.limit = limit
        self.done = done
    }

    func upstreamReceivedHead(_ head: UpstreamResponseHead) { self.head = head }

    func upstreamReceivedBody(_ chunk: ByteBuffer) {
        guard done != nil else { return }
        guard body.count + chunk.readableBytes <= limit else {
            call?.cancel()
            finish(.failure(.init(message: "the control plane's answer exceeds \(limit) bytes")))
            return
        }
        body.append(contentsOf: chunk.readableBytesView)
        call?.consumed(chunk.readableBytes)
    }

    func upstreamFinished() {
        guard let head else {
            finish(.failure(.init(message: "the control plane closed the stream without an answer")))
            return
        }
        finish(.success(.init(status: head.status, headers: head.headers, body: body)))
    }

    func upstreamFailed(_ error: UpstreamError) {
        finish(.failure(.init(message: error.description)))
    }

    private func finish(_ result: Result<ControlPlaneClient.Response, ControlPlaneClient.Failure>) {
        let done = self.done
        self.done = nil
        call = nil
        done?(result)
    }
}
