import Crypto
import Foundation
import SluiceAPI
import _CryptoExtras

/// The public keys a cluster signs service-account tokens with: its OIDC discovery document's
/// JWKS (`/openid/v1/jwks`), or the same document saved to a file. RSA (RS256) and P-256
/// (ES256) keys are used; keys of other types are counted and skipped, since a cluster's set
/// may hold keys for other purposes.
public struct JSONWebKeySet: Sendable {
    /// A verification key and its id (`kid`), if it has one.
    public enum Key: Sendable {
        case rsa(_RSA.Signing.PublicKey)
        /// The raw `x || y` point (checked on the curve when read): the key type itself is not
        /// `Sendable` in this version of swift-crypto.
        case p256([UInt8])
    }

    public private(set) var keys: [(id: String?, key: Key)]
    /// Keys in the document of a type or curve not used here.
    public private(set) var skipped: Int

    /// Reads a JWKS document. A set that is not JSON, has no `keys` array, or whose RSA or
    /// P-256 key is malformed is refused with the key's index; one with no usable key at all
    /// is refused too, since it could verify nothing.
    public static func parse(_ bytes: [UInt8]) throws(KubernetesConfigError) -> JSONWebKeySet {
        let root = try StrictFields.object(bytes, naming: "the key set")
        guard let entries = root["keys"]?.arrayValue else {
            throw KubernetesConfigError("keys: missing array")
        }
        var set = JSONWebKeySet(keys: [], skipped: 0)
        for (index, entry) in entries.enumerated() {
            let path = "keys[\(index)]"
            guard entry.objectValue != nil else { throw KubernetesConfigError("\(path): not an object") }
            let id = entry["kid"]?.stringValue
            if let use = entry["use"]?.stringValue, use != "sig" {
                set.skipped += 1
                continue
            }
            switch entry["kty"]?.stringValue {
            case "RSA":
                guard let modulus = entry["n"]?.stringValue.flatMap(Base64URL.decode),
                    let exponent = entry["e"]?.stringValue.flatMap(Base64URL.decode)
                else {
                    throw KubernetesConfigError("\(path): an RSA key needs n and e in base64url")
                }
                do {
                    set.keys.append((id, .rsa(try _RSA.Signing.PublicKey(n: modulus, e: exponent))))
                } catch {
                    throw KubernetesConfigError("\(path): not a usable RSA key (2048 bits or more): \(error)")
                }
            case "EC" where entry["crv"]?.stringValue == "P-256":
                guard let x = entry["x"]?.stringValue.flatMap(Base64URL.decode),
                    let y = entry["y"]?.stringValue.flatMap(Base64URL.decode), x.count == 32, y.count == 32
                else {
                    throw KubernetesConfigError("\(path): a P-256 key needs x and y of 32 bytes in base64url")
                }
                guard (try? P256.Signing.PublicKey(rawRepresentation: x + y)) != nil else {
                    throw KubernetesConfigError("\(path): not a point on P-256")
                }
                set.keys.append((id, .p256(x + y)))
            default:
                set.skipped += 1
            }
        }
        guard !set.keys.isEmpty else {
            throw KubernetesConfigError("keys: no RSA or P-256 signing key in the set")
        }
        return set
    }

    /// The keys a token whose header names `id` may be signed with: the key of that id, or
    /// every key when the token names none.
    func candidates(for id: String?) -> [Key] {
        guard let id else { return keys.map(\.key) }
        return keys.filter { $0.id == id }.map(\.key)
    }
}

/// Base64url without padding (RFC 7515 §2), as JWTs and JWKs use it; anything else
/// (padding, `+`, `/`, white space) is refused.
enum Base64URL {
    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let allowed = text.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
        }
        guard allowed, text.utf8.count % 4 != 1 else { return nil }
        var standard = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        while standard.utf8.count % 4 != 0 { standard.append("=") }
        return Data(base64Encoded: standard).map { Array($0) }
    }
}
