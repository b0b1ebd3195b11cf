import Crypto
import Foundation
import SluicePolicy

/// A policy document as signed bytes: the control plane signs the exact JSON it serves with
/// its Ed25519 key, and an agent verifies those bytes before decoding them, so nothing that
/// was not signed is ever interpreted.
public struct SignedBundle: Codable, Sendable, Equatable {
    /// The document's JSON, base64.
    public var payload: String
    /// Ed25519 signature over the payload bytes, base64.
    public var signature: String
    /// Identifies the signing key (first 8 bytes of SHA-256 of the public key, hex), so keys
    /// can be rotated.
    public var keyID: String

    enum CodingKeys: String, CodingKey {
        case payload, signature
        case keyID = "key_id"
    }

    /// Signs `document` with `key`.
    public static func sign(_ document: PolicyDocument, with key: Curve25519.Signing.PrivateKey) throws -> SignedBundle
    {
        let bytes = try WireCoding.encoder.encode(document)
        let signature = try key.signature(for: bytes)
        return SignedBundle(
            payload: bytes.base64EncodedString(), signature: signature.base64EncodedString(),
            keyID: keyIdentifier(key.publicKey))
    }

    /// Verifies the signature with `publicKey`, then decodes the document.
    public func verified(with publicKey: Curve25519.Signing.PublicKey) throws(WireError) -> PolicyDocument {
        guard let bytes = Data(base64Encoded: payload), let signatureBytes = Data(base64Encoded: signature) else {
            throw WireError("the bundle's payload or signature is not base64")
        }
        guard keyID == Self.keyIdentifier(publicKey) else {
            throw WireError(
                "the bundle is signed by key \(keyID.prefix(16)),"
                    + " not the configured one (\(Self.keyIdentifier(publicKey)))"
            )
        }
        guard publicKey.isValidSignature(signatureBytes, for: bytes) else {
            throw WireError("the bundle's signature does not verify")
        }
        do {
            return try WireCoding.decoder.decode(PolicyDocument.self, from: bytes)
        } catch {
            throw WireError("the bundle's payload is not a policy document: \(error)")
        }
    }

    /// A short id for a signing key (the first 8 bytes of its SHA-256, hex), shown in bundles
    /// and logs so a rotated key is told apart without printing it.
    public static func keyIdentifier(_ publicKey: Curve25519.Signing.PublicKey) -> String {
        SHA256.hash(data: publicKey.rawRepresentation).prefix(8).map { String(format: "%02x", $0) }.joined()
    }
}

/// JSON settings shared by both ends: sorted keys so equal documents are equal bytes.
public enum WireCoding {
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static var decoder: JSONDecoder { JSONDecoder() }
}

extension PolicyDocument {
    /// A non-secret fingerprint of the key pepper, so an agent can tell it holds the one the
    /// control plane hashed keys with.
    public static func pepperFingerprint(of pepper: Secret) -> String {
        SHA256.hash(data: Array(("sluice-key-pepper:" + pepper.reveal()).utf8)).prefix(8).map {
            String(format: "%02x", $0)
        }.joined()
    }
}

extension SignedBundle {
    /// Everything an agent checks before a bundle may replace its policy: the bytes parse,
    /// the signature verifies with `publicKey`, the version is above `currentVersion` (a
    /// bundle may never roll policy back), and the pepper the keys were hashed with is the
    /// one this agent holds (else no key would ever match).
    public static func open(
        _ bytes: [UInt8], publicKey: Curve25519.Signing.PublicKey, above currentVersion: Int64?,
        pepper: Secret?
    ) throws(WireError) -> PolicyDocument {
        let bundle: SignedBundle
        do {
            bundle = try WireCoding.decoder.decode(SignedBundle.self, from: Data(bytes))
        } catch {
            throw WireError("the bundle is not signed-bundle JSON (truncated or damaged)")
        }
        let document = try bundle.verified(with: publicKey)
        if let currentVersion, document.version <= currentVersion {
            throw WireError(
                "the bundle's version \(document.version) is not above the version in force (\(currentVersion)): "
                    + "refusing to roll back"
            )
        }
        if let expected = document.keyPepperFingerprint, !document.keys.isEmpty {
            guard let pepper else {
                throw WireError("the bundle holds keys but this agent has no key pepper (set SLUICE_KEY_PEPPER)")
            }
            guard PolicyDocument.pepperFingerprint(of: pepper) == expected else {
                throw WireError(
                    "this agent's key pepper (fingerprint \(PolicyDocument.pepperFingerprint(of: pepper))) is not "
                        + "the control plane's (\(expected))"
                )
            }
        }
        return document
    }
}
