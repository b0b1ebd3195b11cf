import Foundation
import NIOCore
import SluiceAPI
import SluiceHTTP2
import SluicePolicy

/// The few calls the control plane makes to the Kubernetes API server: TokenReview, a
/// Deployment lookup, and reading the cluster's service-account key set. It presents its own
/// service-account token (read again on every call: the kubelet rotates it) and trusts the
/// cluster CA. Answers are read whole, bounded.
public final class KubernetesAPIClient: Sendable {
    private let server: Endpoint
    private let origin: UpstreamOrigin
    private let tokenFile: String
    private let upstream: UpstreamClient
    private let group: any EventLoopGroup
    /// A TokenReview or a Deployment is a few KiB; a key set a few more.
    static let maxResponseBytes = 1 << 20

    public init(
        server: String, tokenFile: String, caFile: String?, upstream: UpstreamClient, group: any EventLoopGroup
    ) throws(ControlStartError) {
        do {
            self.server = try Endpoint(parsing: server)
        } catch {
            throw ControlStartError("api_server: \(error.message)")
        }
        origin = Self.origin(of: self.server, caFile: caFile)
        self.tokenFile = tokenFile
        self.upstream = upstream
        self.group = group
    }

    private static func origin(of endpoint: Endpoint, caFile: String?) -> UpstreamOrigin {
        UpstreamOrigin(
            scheme: endpoint.scheme == .https ? .https : .http, host: endpoint.host, port: endpoint.port,
            trustRoots: caFile.map { .caFile($0) } ?? .system)
    }

    /// What the API server said of a token.
    public enum Review: Sendable, Equatable {
        /// Authentic, for our audience: the user name and the pod it is bound to, if any.
        case authenticated(userName: String, podName: String?)
        /// Not authentic (expired, revoked, wrong audience, its pod deleted), with the API
        /// server's reason.
        case refused(String)
    }

    /// `POST /apis/authentication.k8s.io/v1/tokenreviews` for `token` and `audience`.
    public func review(token: String, audience: String) async throws(FetchFailure) -> Review {
        let body: JSONValue = .object([
            ("apiVersion", .string("authentication.k8s.io/v1")), ("kind", .string("TokenReview")),
            ("spec", .object([("token", .string(token)), ("audiences", .array([.string(audience)]))])),
        ])
        let response = try await send(
            "POST", "/apis/authentication.k8s.io/v1/tokenreviews", json: body.bytes)
        guard response.status == 201 || response.status == 200,
            let answer = try? JSONValue.parseObject(response.body), let status = answer["status"]
        else {
            throw FetchFailure(message: "TokenReview answered HTTP \(response.status)")
        }
        guard status["authenticated"]?.boolValue == true, let userName = status["user"]?["username"]?.stringValue
        else {
            // The API server's error says why (expired, invalid bearer token, …); it never
            // repeats the token.
            return .refused(String((status["error"]?.stringValue ?? "not authenticated").prefix(200)))
        }
        if let audiences = status["audiences"]?.arrayValue?.compactMap(\.stringValue), !audiences.contains(audience) {
            return .refused("the token is not for audience \(audience)")
        }
        let podName = status["user"]?["extra"]?["authentication.kubernetes.io/pod-name"]?.arrayValue?.first?
            .stringValue
        return .authenticated(userName: userName, podName: podName)
    }

    /// Whether Deployment `name` exists in `namespace` (`GET …/deployments/NAME`).
    public func deploymentExists(namespace: String, name: String) async throws(FetchFailure) -> Bool {
        let response = try await send("GET", "/apis/apps/v1/namespaces/\(namespace)/deployments/\(name)", json: nil)
        switch response.status {
        case 200: return true
        case 404: return false
        default: throw FetchFailure(message: "the Deployment lookup answered HTTP \(response.status)")
        }
    }

    /// Any call on the API server, answered whole: `body` is sent with `contentType`
    /// (`application/json`, or `application/json-patch+json` for a PATCH).
    public func call(
        _ method: String, _ path: String, body: JSONValue? = nil, contentType: String = "application/json"
    ) async throws(FetchFailure) -> FetchedResponse {
        try await send(method, path, json: body?.bytes, contentType: contentType)
    }

    /// The body of `GET url` (a key set), with this client's token when `url` is on the API
    /// server and without it anywhere else.
    public func fetchDocument(_ url: String) async throws(FetchFailure) -> [UInt8] {
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(parsing: url)
        } catch {
            throw FetchFailure(message: "key_set_url: \(error.message)")
        }
        let sameServer = endpoint.host == server.host && endpoint.port == server.port
        let response = try await send(
            "GET", endpoint.basePath.isEmpty ? "/" : endpoint.basePath, json: nil,
            to: sameServer ? origin : Self.origin(of: endpoint, caFile: nil), withToken: sameServer)
        guard response.status == 200 else {
            throw FetchFailure(message: "\(url) answered HTTP \(response.status)")
        }
        return response.body
    }

    private func send(
        _ method: String, _ path: String, json: [UInt8]?, contentType: String = "application/json",
        to target: UpstreamOrigin? = nil, withToken: Bool = true
    ) async throws(FetchFailure) -> FetchedResponse {
        var headers: [(name: String, value: String)] = [("accept", "application/json")]
        if json != nil { headers.append(("content-type", contentType)) }
        if withToken, let token = try? String(contentsOfFile: tokenFile, encoding: .utf8) {
            let trimmed = token.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { headers.append(("authorization", "Bearer " + trimmed)) }
        }
        let prefix = target == nil ? server.basePath : ""
        let request = UpstreamRequest(
            method: method, path: prefix + path, headers: headers, body: ByteBuffer(bytes: json ?? []),
            firstByteTimeout: .seconds(10), idleTimeout: .seconds(10))
        return try await upstream.fetch(
            request, to: target ?? origin, on: group.next(), limit: Self.maxResponseBytes, subject: "the API server")
    }
}
