import Crypto
import Foundation
import Hummingbird
import Logging
import SluiceHTTP2
import SluicePolicy

/// Where the control plane keeps its secrets and default database: a data directory with
/// the bundle signing key (created on first start, mode 0600), its public half for agents,
/// and the key pepper when none is given in the environment.
public struct ControlDataDirectory: Sendable {
    public let path: String

    public init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(
            atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// The Ed25519 signing key, created on first use. `signing-key.pub` holds the public
    /// half (base64) to give to agents.
    public func signingKey() throws -> Curve25519.Signing.PrivateKey {
        let file = "\(path)/signing-key"
        if let text = try? String(contentsOfFile: file, encoding: .utf8) {
            guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
                let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
            else {
                throw ControlStartError("\(file) is not a base64 Ed25519 private key")
            }
            return key
        }
        let key = Curve25519.Signing.PrivateKey()
        try writeSecret(key.rawRepresentation.base64EncodedString() + "\n", to: file)
        try (key.publicKey.rawRepresentation.base64EncodedString() + "\n").write(
            toFile: "\(path)/signing-key.pub", atomically: true, encoding: .utf8)
        return key
    }

    /// The key pepper: `SLUICE_KEY_PEPPER` when set, else `key-pepper` in the directory,
    /// created on first use. Agents must be given the same value.
    public func keyPepper(environment: [String: String]) throws -> Secret {
        if let value = environment["SLUICE_KEY_PEPPER"], !value.isEmpty {
            guard value.utf8.count >= 16 else { throw ControlStartError("SLUICE_KEY_PEPPER must be at least 16 bytes") }
            return Secret(value)
        }
        let file = "\(path)/key-pepper"
        if let text = try? String(contentsOfFile: file, encoding: .utf8) {
            return Secret(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        var generator = SystemRandomNumberGenerator()
        let pepper = (0..<4).map { _ in String(UInt64.random(in: .min ... .max, using: &generator), radix: 36) }.joined(
            separator: "-")
        try writeSecret(pepper + "\n", to: file)
        return Secret(pepper)
    }

    private func writeSecret(_ text: String, to file: String) throws {
        guard
            FileManager.default.createFile(
                atPath: file, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        else {
            throw ControlStartError("cannot write \(file)")
        }
    }
}

/// Why the control plane could not start; the message says what to do.
public struct ControlStartError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Builds the Hummingbird application serving `api` on `host:port`, over TLS when `tls` is
/// given. It runs as a swift-service-lifecycle service and stops accepting on graceful
/// shutdown, letting requests in progress (long-polls included) finish.
public func makeControlApplication(
    api: ControlAPI, host: String, port: Int, tls: TLSServerContext? = nil, logger: Logger,
    onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    Application(
        router: api.router(), server: tls.map { .http1(tls: $0) } ?? .http1(),
        configuration: .init(address: .hostname(host, port: port), serverName: "sluice-control"),
        onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
}
