/// Virtual keys: the bearer tokens callers present to the agent instead of provider keys.
///
/// A key is `sk-sluice-` followed by 32 base62 characters (about 190 bits from the system
/// random source). The policy never holds a key: only its HMAC-SHA256 under a pepper
/// that lives in configuration, so a leaked policy file cannot be replayed as keys, and
/// a leaked pepper alone names no key.
public enum VirtualKey {
    public static let prefix = "sk-sluice-"
    static let bodyLength = 32
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// A fresh key. Rejection sampling keeps every character uniform.
    public static func generate<Generator: RandomNumberGenerator>(using generator: inout Generator) -> String {
        var body: [UInt8] = []
        body.reserveCapacity(bodyLength)
        while body.count < bodyLength {
            let byte = UInt8.random(in: .min ... .max, using: &generator)
            if byte < 248 { body.append(alphabet[Int(byte) % 62]) }  // 248 = 4 × 62
        }
        return prefix + String(decoding: body, as: UTF8.self)
    }

    /// A short, non-secret handle for listings and logs: the prefix and four characters.
    public static func displayPrefix(of key: String) -> String {
        String(key.prefix(prefix.count + 4))
    }
}

/// The 32-byte keyed hash of a virtual key, as stored in policy (`hmac-sha256:<hex>`).
public struct KeyHash: Sendable, Hashable {
    /// Four big-endian words: cheap to store, compare and index.
    let words: (UInt64, UInt64, UInt64, UInt64)

    init(words: (UInt64, UInt64, UInt64, UInt64)) { self.words = words }

    /// Reads 32 bytes big-endian; no allocation, as it runs for every keyed call.
    init(raw: UnsafeRawBufferPointer) {
        precondition(raw.count >= 32)
        func word(_ index: Int) -> UInt64 {
            UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
        }
        words = (word(0), word(1), word(2), word(3))
    }

    /// Parses `hmac-sha256:` and 64 hex digits.
    public init?(encoded: String) {
        guard encoded.hasPrefix("hmac-sha256:") else { return nil }
        let hex = Array(encoded.utf8.dropFirst("hmac-sha256:".count))
        guard hex.count == 64 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: 64, by: 2) {
            guard let high = hexValue(hex[index]), let low = hexValue(hex[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self = bytes.withUnsafeBytes { KeyHash(raw: $0) }
    }

    public var encoded: String {
        var text = "hmac-sha256:"
        for word in [words.0, words.1, words.2, words.3] {
            let hex = String(word, radix: 16)
            text += String(repeating: "0", count: 16 - hex.count) + hex
        }
        return text
    }

    /// Index for the lookup table; the full hash is then compared in constant time.
    var bucket: UInt64 { words.0 }

    /// Compares all 32 bytes without an early exit.
    func constantTimeEquals(_ other: KeyHash) -> Bool {
        let difference =
            (words.0 ^ other.words.0) | (words.1 ^ other.words.1) | (words.2 ^ other.words.2)
            | (words.3 ^ other.words.3)
        return difference == 0
    }

    public static func == (lhs: KeyHash, rhs: KeyHash) -> Bool { lhs.constantTimeEquals(rhs) }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// Hashes presented keys with the policy's pepper.
public struct KeyHasher: Sendable {
    /// Keyed with the pepper once: each hash feeds only the presented key.
    private let keyed: KeyedSHA256

    /// - Parameter pepper: at least 16 bytes of secret material from configuration.
    public init(pepper: Secret) {
        keyed = KeyedSHA256(key: Array(pepper.reveal().utf8))
    }

    /// The keyed hash of a presented key, compared in constant time with stored hashes.
    public func hash(_ presented: String) -> KeyHash {
        var presented = presented
        return presented.withUTF8 { KeyHash(words: keyed.code(UnsafeRawBufferPointer($0))) }
    }
}
