import Crypto
import Foundation
import SluiceAPI
import SluicePolicy
import _CryptoExtras

/// Who a verified service-account token says its bearer is.
public struct ServiceAccountIdentity: Sendable, Equatable {
    public var namespace: String
    public var serviceAccount: String
    /// The pod the token is bound to (a kubelet-projected token always is; one from
    /// `kubectl create token` without `--bound-object-kind` is not).
    public var podName: String?
    /// Unix seconds after which the token is no longer accepted.
    public var expiresAt: Int64

    public init(namespace: String, serviceAccount: String, podName: String?, expiresAt: Int64) {
        self.namespace = namespace
        self.serviceAccount = serviceAccount
        self.podName = podName
        self.expiresAt = expiresAt
    }

    /// `system:serviceaccount:<namespace>:<name>`, the user name the API server gives it.
    public var userName: String { "system:serviceaccount:\(namespace):\(serviceAccount)" }

    /// Reads `system:serviceaccount:<namespace>:<name>`; nil for any other user name.
    public static func names(fromUserName userName: String) -> (namespace: String, serviceAccount: String)? {
        let parts = userName.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "system", parts[1] == "serviceaccount",
            Identifier.isDNSLabel(String(parts[2])), !parts[3].isEmpty
        else { return nil }
        return (String(parts[2]), String(parts[3]))
    }
}

/// Why a service-account token was not accepted. ``reason`` is a short fixed code (for
/// counters and the error body); ``message`` explains it without any part of the token.
public struct TokenRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public var message: String

    public init(_ reason: String, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(reason): \(message)" }
}

/// Checks a projected service-account token offline: a JWT signed by one of the cluster's
/// keys (RS256 or ES256), from the configured issuer, for the configured audience, inside
/// its validity window, naming a service account. Pure: the time is passed in.
public struct ServiceAccountTokenVerifier: Sendable {
    public var issuer: String
    public var audience: String
    public var keys: JSONWebKeySet
    /// Clock difference tolerated on `exp`, `nbf` and `iat`, in seconds.
    public var leewaySeconds: Int64

    public init(issuer: String, audience: String, keys: JSONWebKeySet, leewaySeconds: Int64 = 30) {
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.leewaySeconds = leewaySeconds
    }

    /// Whether `credential` has a JWT's shape (three base64url parts): other credentials
    /// (issued `sat-…` tokens) are left to other authenticators.
    public static func looksLikeJWT(_ credential: String) -> Bool {
        credential.hasPrefix("eyJ") && credential.utf8.count(where: { $0 == UInt8(ascii: ".") }) == 2
    }

    /// The `exp` of a token without checking its signature: only for a token the API server
    /// has just said is authentic (TokenReview does not return the expiry).
    public static func unverifiedExpiry(of token: String) -> Int64? {
        ParsedJWT.unverifiedClaims(token)?["exp"]?.intValue.map(Int64.init)
    }

    /// The identity `token` proves at `now` (Unix seconds), or the refusal.
    public func verify(_ token: String, now: Int64) throws(TokenRefusal) -> ServiceAccountIdentity {
        try checkClaims(ParsedJWT.verifiedClaims(of: token, keys: keys, signer: "the cluster"), now: now)
    }

    /// The claims of a token whose signature is already known good (verified here, or by the
    /// API server's TokenReview), checked against issuer, audience and validity window.
    public func checkClaims(_ claims: JSONValue, now: Int64) throws(TokenRefusal) -> ServiceAccountIdentity {
        guard claims["iss"]?.stringValue == issuer else {
            throw TokenRefusal("wrong_issuer", "the token's issuer is not \(issuer)")
        }
        return try Self.identity(from: claims, audience: audience, now: now, leeway: leewaySeconds)
    }

    /// Audience, validity window and the `kubernetes.io` claim; shared with TokenReview, where
    /// the API server has checked the signature and issuer.
    public static func identity(
        from claims: JSONValue, audience: String, now: Int64, leeway: Int64
    ) throws(TokenRefusal) -> ServiceAccountIdentity {
        let expiry = try ParsedJWT.checkWindow(claims, audience: audience, now: now, leeway: leeway)
        let kubernetes = claims["kubernetes.io"]
        guard let namespace = kubernetes?["namespace"]?.stringValue,
            let account = kubernetes?["serviceaccount"]?["name"]?.stringValue,
            Identifier.isDNSLabel(namespace), !account.isEmpty,
            claims["sub"]?.stringValue == "system:serviceaccount:\(namespace):\(account)"
        else {
            throw TokenRefusal("not_a_service_account", "the token does not name a Kubernetes service account")
        }
        return ServiceAccountIdentity(
            namespace: namespace, serviceAccount: account, podName: kubernetes?["pod"]?["name"]?.stringValue,
            expiresAt: expiry)
    }
}

/// Verifies the JWTs an API gateway (Gloo, Envoy Gateway, Kong) puts on the requests it
/// forwards: signature against a JWKS, issuer, audience and validity window. What the
/// claims mean is the caller's business.
public struct GatewayTokenVerifier: Sendable {
    public var issuer: String
    public var audience: String
    public var keys: JSONWebKeySet
    public var leewaySeconds: Int64

    public init(issuer: String, audience: String, keys: JSONWebKeySet, leewaySeconds: Int64 = 30) {
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.leewaySeconds = leewaySeconds
    }

    /// The token's claims, once its signature, issuer, audience and validity hold at `now`
    /// (Unix seconds).
    public func verify(_ token: String, now: Int64) throws(TokenRefusal) -> JSONValue {
        let claims = try ParsedJWT.verifiedClaims(of: token, keys: keys, signer: "the gateway")
        guard claims["iss"]?.stringValue == issuer else {
            throw TokenRefusal("wrong_issuer", "the token's issuer is not \(issuer)")
        }
        _ = try ParsedJWT.checkWindow(claims, audience: audience, now: now, leeway: leewaySeconds)
        return claims
    }
}

extension ParsedJWT {
    /// The claims of `token` once its signature verifies with one of `keys`.
    static func verifiedClaims(of token: String, keys: JSONWebKeySet, signer: String) throws(TokenRefusal)
        -> JSONValue
    {
        let parsed = try ParsedJWT(token)
        let message =
            Array(token.utf8.prefix(while: { $0 != UInt8(ascii: ".") }))
            + [UInt8(ascii: ".")] + Array(parsed.payloadText.utf8)
        let candidates = keys.candidates(for: parsed.keyID)
        guard !candidates.isEmpty else {
            throw TokenRefusal("unknown_key", "the token is signed by a key \(signer) does not publish")
        }
        var verified = false
        for key in candidates where !verified {
            switch (parsed.algorithm, key) {
            case ("RS256", .rsa(let publicKey)):
                let signature = _RSA.Signing.RSASignature(rawRepresentation: parsed.signature)
                verified = publicKey.isValidSignature(signature, for: message, padding: .insecurePKCS1v1_5)
            case ("ES256", .p256(let point)):
                if let publicKey = try? P256.Signing.PublicKey(rawRepresentation: point),
                    let signature = try? P256.Signing.ECDSASignature(rawRepresentation: parsed.signature)
                {
                    verified = publicKey.isValidSignature(signature, for: message)
                }
            default:
                continue
            }
        }
        guard verified else {
            throw TokenRefusal("bad_signature", "the token's signature does not verify with \(signer)'s keys")
        }
        return parsed.claims
    }

    /// Audience and validity window (`exp` required, `nbf` honoured, with `leeway`);
    /// returns the expiry.
    static func checkWindow(_ claims: JSONValue, audience: String, now: Int64, leeway: Int64) throws(TokenRefusal)
        -> Int64
    {
        let audiences = claims["aud"]?.stringValue.map { [$0] } ?? claims["aud"]?.arrayValue?.compactMap(\.stringValue)
        guard let audiences, audiences.contains(audience) else {
            throw TokenRefusal("wrong_audience", "the token is not for audience \(audience)")
        }
        guard let expiry = claims["exp"]?.intValue.map(Int64.init) else {
            throw TokenRefusal("malformed", "the token has no exp claim")
        }
        guard now <= expiry + leeway else {
            throw TokenRefusal("expired", "the token expired \(now - expiry) s ago")
        }
        if let notBefore = claims["nbf"]?.intValue.map(Int64.init), now + leeway < notBefore {
            throw TokenRefusal("not_yet_valid", "the token is not valid for another \(notBefore - now) s")
        }
        return expiry
    }
}

/// A compact JWS split into its parts; nothing is trusted yet.
struct ParsedJWT {
    var algorithm: String
    var keyID: String?
    var claims: JSONValue
    var payloadText: Substring
    var signature: [UInt8]

    init(_ token: String) throws(TokenRefusal) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard token.utf8.count <= 16_384, parts.count == 3,
            let headerBytes = Base64URL.decode(parts[0]), let payloadBytes = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2]),
            let header = try? JSONValue.parseObject(headerBytes, maxDepth: 4),
            let claims = try? JSONValue.parseObject(payloadBytes, maxDepth: 8)
        else {
            throw TokenRefusal("malformed", "the credential is not a compact JWT")
        }
        guard let algorithm = header["alg"]?.stringValue, ["RS256", "ES256"].contains(algorithm) else {
            throw TokenRefusal("unsupported_algorithm", "the token is not signed with RS256 or ES256")
        }
        self.algorithm = algorithm
        keyID = header["kid"]?.stringValue
        self.claims = claims
        payloadText = parts[1]
        self.signature = signature
    }

    /// The claims of a token without checking its signature: only for a token the API
    /// server has just said is authentic, to learn its expiry.
    static func unverifiedClaims(_ token: String) -> JSONValue? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = Base64URL.decode(parts[1]) else { return nil }
        return try? JSONValue.parseObject(payload, maxDepth: 8)
    }
}
