import Foundation
import SluicePolicy
import Synchronization

/// The agent's credential for the control plane, read from its file, and read again every
/// minute and whenever the control plane answers 401. So a rotated token takes over without
/// a restart: a projected service-account token, which the kubelet replaces before it
/// expires, or an issued token an admin replaced. A file that cannot be read later keeps
/// the token in hand (the control plane says whether it still works).
public final class AgentTokenFile: Sendable {
    /// The token file (a projected token's path, or a file holding an issued `sat-…` token).
    public let path: String
    let refreshInterval: Duration
    private let state: Mutex<(token: Secret, readAt: ContinuousClock.Instant)>

    /// Reads the token once; throws ``ConfigError`` when the file is unreadable or empty.
    public init(path: String, refreshInterval: Duration = .seconds(60)) throws(ConfigError) {
        self.path = path
        self.refreshInterval = refreshInterval
        guard let token = Self.read(path) else { throw ConfigError("cannot read an agent token from \(path)") }
        state = Mutex((token, .now))
    }

    /// The token to present now, re-read when the last read is older than the interval.
    public var current: Secret {
        let (token, readAt) = state.withLock { ($0.token, $0.readAt) }
        guard ContinuousClock.now - readAt >= refreshInterval else { return token }
        reload()
        return state.withLock { $0.token }
    }

    /// Reads the file again; true when it now holds a different token.
    @discardableResult
    public func reload() -> Bool {
        let fresh = Self.read(path)
        return state.withLock { state in
            state.readAt = .now
            guard let fresh, fresh.reveal() != state.token.reveal() else { return false }
            state.token = fresh
            return true
        }
    }

    private static func read(_ path: String) -> Secret? {
        guard let bytes = try? DurableFiles.read(path, limit: 8192),
            let text = String(validating: bytes, as: UTF8.self)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !text.isEmpty
        else { return nil }
        return Secret(text)
    }
}
