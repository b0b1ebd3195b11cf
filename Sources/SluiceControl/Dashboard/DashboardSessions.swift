import Crypto
import Foundation
import SluicePolicy
import Synchronization

/// Who a dashboard session belongs to: an admin (the admin token) sees everything and may
/// revoke keys; a viewer (the viewer token) sees the same pages and changes nothing.
public enum DashboardRole: String, Sendable {
    case admin, viewer
}

/// Dashboard sessions without server state, so any replica accepts a session another one
/// issued: the cookie is `v1.ROLE.EXPIRY.NONCE.MAC`, the MAC an HMAC-SHA256 under a key
/// derived from the admin token. Rotating the admin token therefore ends every session.
/// Logging out ends a session on the replica that took the logout at once (its nonce is
/// remembered until it would have expired anyway) and in every browser that used it.
///
/// CSRF tokens are MACs of the session's nonce (after login) or of a login cookie's nonce
/// (the login form), so a form posted from another site, which cannot read either cookie,
/// cannot carry a valid one.
public final class DashboardSessions: Sendable {
    /// One verified session.
    public struct Session: Sendable, Equatable {
        public var role: DashboardRole
        /// Unix seconds.
        public var expiresAt: Int64
        var nonce: String
    }

    /// The session cookie's name.
    static let cookieName = "sluice_session"
    /// The login form's cookie (its CSRF pair), valid for the form's lifetime only.
    static let loginCookieName = "sluice_login"

    /// The MAC key, as bytes (a SymmetricKey is not Sendable).
    private let key: [UInt8]
    private let adminToken: Secret
    private let viewerToken: Secret?
    /// Seconds a session lasts from login.
    let lifetime: Int64
    private let loggedOut = Mutex<[String: Int64]>([:])

    public init(adminToken: Secret, viewerToken: Secret?, lifetime: Int64 = 8 * 3600) {
        self.adminToken = adminToken
        self.viewerToken = viewerToken
        self.lifetime = lifetime
        let tokenKey = SymmetricKey(data: Array(adminToken.reveal().utf8))
        key = Array(HMAC<SHA256>.authenticationCode(for: Array("sluice dashboard sessions v1".utf8), using: tokenKey))
    }

    /// The role a presented token opens, compared in constant time; nil for any other text.
    func role(forToken token: String) -> DashboardRole? {
        if constantTimeEqual(token, adminToken.reveal()) { return .admin }
        if let viewerToken, constantTimeEqual(token, viewerToken.reveal()) { return .viewer }
        return nil
    }

    /// A new session's cookie value.
    func issue(_ role: DashboardRole, now: Int64) -> String {
        let body = "v1.\(role.rawValue).\(now + lifetime).\(Self.randomNonce())"
        return body + "." + mac(body)
    }

    /// The session a cookie value proves, or nil when it is forged, expired or logged out.
    func verify(_ cookie: String, now: Int64) -> Session? {
        let parts = cookie.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "v1", let role = DashboardRole(rawValue: String(parts[1])),
            let expiresAt = Int64(parts[2]), expiresAt > now
        else { return nil }
        let body = parts[0..<4].joined(separator: ".")
        guard constantTimeEqual(String(parts[4]), mac(body)) else { return nil }
        let nonce = String(parts[3])
        guard loggedOut.withLock({ $0[nonce] == nil }) else { return nil }
        return Session(role: role, expiresAt: expiresAt, nonce: nonce)
    }

    /// Ends `session` on this replica (the browser forgets the cookie too).
    func logOut(_ session: Session, now: Int64) {
        loggedOut.withLock { ended in
            ended = ended.filter { $0.value > now }
            ended[session.nonce] = session.expiresAt
        }
    }

    /// The CSRF token every form of `session` carries.
    func csrfToken(for session: Session) -> String { mac("csrf." + session.nonce) }

    func checkCSRF(_ token: String?, for session: Session) -> Bool {
        guard let token else { return false }
        return constantTimeEqual(token, csrfToken(for: session))
    }

    /// A login form's cookie nonce and the CSRF token its form carries.
    func loginForm() -> (cookie: String, csrf: String) {
        let nonce = Self.randomNonce()
        return (nonce, mac("login." + nonce))
    }

    func checkLoginCSRF(_ token: String?, cookie: String?) -> Bool {
        guard let token, let cookie, !cookie.isEmpty else { return false }
        return constantTimeEqual(token, mac("login." + cookie))
    }

    private func mac(_ text: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: key))
            .map { String(format: "%02x", $0) }.joined()
    }

    private static func randomNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in String(UInt64.random(in: .min ... .max, using: &generator), radix: 36) }
            .joined(separator: "-")
    }
}
