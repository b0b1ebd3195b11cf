import Crypto
import Foundation
import _CryptoExtras

/// A stand-in for a cluster's service-account token issuer: it holds test signing keys
/// (RSA-2048 for RS256, P-256 for ES256), publishes them as a JWKS document, and signs
/// projected-token-shaped JWTs with whatever claims a test needs, good or bad.
public struct TestTokenIssuer: Sendable {
    public let issuer: String
    public let rsaKeyID: String
    public let ecKeyID: String
    private let rsaKey: _RSA.Signing.PrivateKey
    private let ecKey: Data

    public init(issuer: String = "https://kubernetes.default.svc.cluster.local", keyID: String = "test-key-1") throws {
        self.issuer = issuer
        rsaKeyID = keyID
        ecKeyID = keyID + "-ec"
        rsaKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        ecKey = P256.Signing.PrivateKey().rawRepresentation
    }

    public enum Algorithm: Sendable { case rs256, es256 }

    /// The JWKS document holding this issuer's public keys.
    public var keySetJSON: String {
        let (modulus, exponent) = Self.modulusAndExponent(of: rsaKey.publicKey)
        let ec = try! P256.Signing.PrivateKey(rawRepresentation: ecKey).publicKey.rawRepresentation
        return """
            {"keys":[{"use":"sig","kty":"RSA","kid":"\(rsaKeyID)","alg":"RS256","n":"\(Self.base64URL(modulus))",\
            "e":"\(Self.base64URL(exponent))"},\
            {"use":"sig","kty":"EC","kid":"\(ecKeyID)","crv":"P-256","x":"\(Self.base64URL(ec.prefix(32)))",\
            "y":"\(Self.base64URL(ec.suffix(32)))"}]}
            """
    }

    /// A projected service-account token: bound to `pod` (unless nil), valid from `issuedAt`
    /// for `lifetime` seconds, for `audience`, signed with `algorithm`. `keyID` and `issuer`
    /// override what the header and claims say (to forge mismatches).
    public func token(
        namespace: String, serviceAccount: String, pod: String? = "pod-1", audience: String = "sluice",
        issuedAt: Int64 = Int64(Date().timeIntervalSince1970), lifetime: Int64 = 3600, algorithm: Algorithm = .rs256,
        keyID: String? = nil, issuer: String? = nil
    ) throws -> String {
        let podClaim = pod.map { #","pod":{"name":"\#($0)","uid":"0000-\#($0)"}"# } ?? ""
        let claims = """
            {"aud":["\(audience)"],"exp":\(issuedAt + lifetime),"iat":\(issuedAt),"iss":"\(issuer ?? self.issuer)",\
            "kubernetes.io":{"namespace":"\(namespace)"\(podClaim),\
            "serviceaccount":{"name":"\(serviceAccount)","uid":"1111-\(serviceAccount)"}},\
            "nbf":\(issuedAt),"sub":"system:serviceaccount:\(namespace):\(serviceAccount)"}
            """
        return try sign(claims: claims, algorithm: algorithm, keyID: keyID)
    }

    /// Any claims, signed: for tokens that are well signed but wrong in content.
    public func sign(claims: String, algorithm: Algorithm = .rs256, keyID: String? = nil) throws -> String {
        let header =
            algorithm == .rs256
            ? #"{"alg":"RS256","kid":"\#(keyID ?? rsaKeyID)"}"# : #"{"alg":"ES256","kid":"\#(keyID ?? ecKeyID)"}"#
        let signingInput = Self.base64URL(Data(header.utf8)) + "." + Self.base64URL(Data(claims.utf8))
        let signature: Data
        switch algorithm {
        case .rs256:
            signature = try rsaKey.signature(for: Data(signingInput.utf8), padding: .insecurePKCS1v1_5)
                .rawRepresentation
        case .es256:
            signature = try P256.Signing.PrivateKey(rawRepresentation: ecKey).signature(for: Data(signingInput.utf8))
                .rawRepresentation
        }
        return signingInput + "." + Self.base64URL(signature)
    }

    public static func base64URL(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// n and e from the key's PKCS#1 DER (`SEQUENCE { INTEGER n, INTEGER e }`), without
    /// leading zero bytes, as a JWK writes them.
    private static func modulusAndExponent(of key: _RSA.Signing.PublicKey) -> (Data, Data) {
        let der = [UInt8](key.pkcs1DERRepresentation)
        var index = 0
        func readLength() -> Int {
            let first = der[index]
            index += 1
            guard first & 0x80 != 0 else { return Int(first) }
            var length = 0
            for _ in 0..<Int(first & 0x7F) {
                length = length << 8 | Int(der[index])
                index += 1
            }
            return length
        }
        index += 1  // SEQUENCE
        _ = readLength()
        func readInteger() -> Data {
            index += 1  // INTEGER
            let length = readLength()
            var bytes = der[index..<index + length]
            index += length
            while bytes.first == 0, bytes.count > 1 { bytes = bytes.dropFirst() }
            return Data(bytes)
        }
        let modulus = readInteger()
        return (modulus, readInteger())
    }
}
