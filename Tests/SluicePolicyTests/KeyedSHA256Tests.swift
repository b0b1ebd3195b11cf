import Crypto
import Testing

@testable import SluicePolicy

/// ``KeyedSHA256`` computes HMAC-SHA-256: RFC 4231's vectors, and swift-crypto's HMAC over
/// every length where SHA-256's padding changes shape.
@Suite("Keyed SHA-256")
struct KeyedSHA256Tests {
    static func hex(_ words: (UInt64, UInt64, UInt64, UInt64)) -> String {
        [words.0, words.1, words.2, words.3].map {
            let digits = String($0, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }.joined()
    }

    static func code(key: [UInt8], message: [UInt8]) -> String {
        message.withUnsafeBytes { hex(KeyedSHA256(key: key).code($0)) }
    }

    static func reference(key: [UInt8], message: [UInt8]) -> String {
        HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))
            .map { String(format: $0) }.joined()
    }

    @Test("RFC 4231 test cases 1, 2, 3, 4, 6 and 7")
    func rfc4231() {
        let cases: [(key: [UInt8], message: [UInt8], code: String)] = [
            (
                [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
            ),
            (
                Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            ),
            (
                [UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
            ),
            (
                Array(1...25), [UInt8](repeating: 0xcd, count: 50),
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"
            ),
            (
                [UInt8](repeating: 0xaa, count: 131),
                Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
            ),
            (
                [UInt8](repeating: 0xaa, count: 131),
                Array(
                    ("This is a test using a larger than block-size key and a larger than block-size data."
                        + " The key needs to be hashed before being used by the HMAC algorithm.").utf8),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
            ),
        ]
        for (key, message, code) in cases {
            #expect(Self.code(key: key, message: message) == code)
        }
    }

    @Test("the same codes as swift-crypto for keys of 0 to 130 bytes and messages of 0 to 200")
    func matchesSwiftCrypto() {
        var generator = SystemRandomNumberGenerator()
        var mismatches: [String] = []
        for keyLength in [0, 1, 16, 29, 55, 56, 63, 64, 65, 100, 128, 130] {
            let key = (0..<keyLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            let keyed = KeyedSHA256(key: key)
            for messageLength in 0...200 {
                let message = (0..<messageLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
                let ours = message.withUnsafeBytes { Self.hex(keyed.code($0)) }
                if ours != Self.reference(key: key, message: message) {
                    mismatches.append("key \(keyLength) bytes, message \(messageLength) bytes")
                }
            }
        }
        #expect(mismatches.isEmpty)
    }

    @Test("a virtual key's hash is the HMAC of its UTF-8 under the pepper")
    func keyHasher() {
        let pepper = "test-pepper-0123456789abcdef"
        let key = "sk-sluice-AbCdEfGhIjKlMnOpQrStUvWxYz012345"
        let hash = KeyHasher(pepper: Secret(pepper)).hash(key)
        #expect(hash.encoded == "hmac-sha256:" + Self.reference(key: Array(pepper.utf8), message: Array(key.utf8)))
    }
}

extension String {
    fileprivate init(format byte: UInt8) {
        let digits = String(byte, radix: 16)
        self = digits.count == 1 ? "0" + digits : digits
    }
}
