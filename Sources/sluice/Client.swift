import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Talks to the admin API. The URL and token come from `SLUICE_URL` and
/// `SLUICE_ADMIN_TOKEN` (or the `--url`/`--token-file` options).
struct AdminClient {
    let baseURL: URL
    let token: String

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func fromEnvironment(url: String?, tokenFile: String?) throws -> AdminClient {
        let environment = ProcessInfo.processInfo.environment
        let text = url ?? environment["SLUICE_URL"] ?? "http://127.0.0.1:8080"
        guard let baseURL = URL(string: text), baseURL.scheme == "http" || baseURL.scheme == "https" else {
            throw Failure(description: "SLUICE_URL must be an http(s) URL such as http://127.0.0.1:8080")
        }
        var token = environment["SLUICE_ADMIN_TOKEN"] ?? ""
        if let tokenFile {
            guard let contents = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw Failure(description: "cannot read the token file \(tokenFile)")
            }
            token = contents.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard !token.isEmpty else {
            throw Failure(
                description: "set SLUICE_ADMIN_TOKEN to the control plane's admin token (or pass --token-file)")
        }
        return AdminClient(baseURL: baseURL, token: token)
    }

    /// `user@host` (SLUICE_ACTOR overrides it), as the control plane's audit trail records it.
    static let actor: String = {
        let environment = ProcessInfo.processInfo.environment
        return environment["SLUICE_ACTOR"] ?? "\(environment["USER"] ?? "unknown")@\(ProcessInfo.processInfo.hostName)"
    }()

    /// Sends a request and returns the JSON body; an error answer becomes a failure that
    /// carries the server's message.
    @discardableResult
    func send(_ method: String, _ path: String, body: Data? = nil) async throws -> Data {
        // `path` is already percent-encoded (`pathSegment`): it is set as it is, never encoded
        // again, or `%2F` in an alias or agent id would reach the server as `%252F`.
        guard var components = URLComponents(url: baseURL, resolvingAgainstBaseURL: false) else {
            throw Failure(description: "SLUICE_URL is not a valid URL")
        }
        let parts = path.split(separator: "?", maxSplits: 1)
        let basePath =
            components.percentEncodedPath.hasSuffix("/")
            ? String(components.percentEncodedPath.dropLast()) : components.percentEncodedPath
        components.percentEncodedPath = basePath + (parts.first.map(String.init) ?? "")
        if parts.count == 2 { components.percentEncodedQuery = String(parts[1]) }
        guard let url = components.url else { throw Failure(description: "cannot build a URL for \(path)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        // Every admin shares one token: this names who ran the command in the audit trail.
        request.setValue(Self.actor, forHTTPHeaderField: "Sluice-Actor")
        request.httpBody = body
        let (data, response): (Data, URLResponse)
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw Failure(
                description:
                    "cannot reach the control plane at \(baseURL.absoluteString): \(error.localizedDescription). Is "
                        + "sluice-control running, and SLUICE_URL right?"
            )
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            let message =
                (try? JSONSerialization.jsonObject(with: data) as? [String: Any])
                .flatMap { ($0["error"] as? [String: Any])?["message"] as? String }
                ?? String(decoding: data, as: UTF8.self)
            let hint = status == 401 ? " (check SLUICE_ADMIN_TOKEN)" : ""
            throw Failure(
                description: "\(method) \(path.split(separator: "?")[0]) failed with \(status): \(message)\(hint)")
        }
        return data
    }
}

/// One URL path segment: every byte outside `A-Z a-z 0-9 - . _ ~` percent-encoded, so an id
/// or alias holding `/`, `?` or `%` addresses exactly that entity.
func pathSegment(_ text: String) -> String {
    text.addingPercentEncoding(
        withAllowedCharacters: CharacterSet(
            charactersIn:
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? text
}

/// A service's path, `namespace/service` with each part encoded on its own.
func servicePath(_ name: String) -> String {
    name.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map { pathSegment(String($0)) }.joined(
        separator: "/")
}
