import NIOHTTP1
import Testing

@testable import SluiceAgent

/// Which key a caller presented, read from its headers byte by byte.
@Suite("Presented key")
struct PresentedKeyTests {
    static let names = ["authorization", "x-api-key"]

    static func key(_ fields: [(String, String)]) -> String? {
        Identify.presentedKey(in: HTTPHeaders(fields), from: names)
    }

    @Test("a bearer token is found whatever the scheme's case and the spaces around it")
    func bearer() {
        #expect(Self.key([("Authorization", "Bearer sk-one")]) == "sk-one")
        #expect(Self.key([("authorization", "bearer sk-one")]) == "sk-one")
        #expect(Self.key([("authorization", "BEARER sk-one")]) == "sk-one")
        #expect(Self.key([("authorization", "  Bearer   sk-one  ")]) == "sk-one")
        #expect(Self.key([("authorization", "Bearer ключ-1")]) == "ключ-1")
    }

    @Test("Authorization without the Bearer scheme presents nothing; the next header is read")
    func authorizationNeedsScheme() {
        #expect(Self.key([("authorization", "sk-bare")]) == nil)
        #expect(Self.key([("authorization", "Basic c2stb25l")]) == nil)
        #expect(Self.key([("authorization", "Bearer\u{0}sk-one")]) == nil)
        #expect(Self.key([("authorization", "Bearer")]) == nil)
        #expect(Self.key([("authorization", "Bearer    ")]) == nil)
        #expect(Self.key([("authorization", "sk-bare"), ("x-api-key", "sk-two")]) == "sk-two")
    }

    @Test("other headers carry the key bare or with a scheme, and the first header named wins")
    func otherHeaders() {
        #expect(Self.key([("X-API-Key", " sk-two ")]) == "sk-two")
        #expect(Self.key([("x-api-key", "Bearer sk-two")]) == "sk-two")
        #expect(Self.key([("x-api-key", "sk-two"), ("authorization", "Bearer sk-one")]) == "sk-one")
        #expect(Self.key([("x-api-key", "   ")]) == nil)
        #expect(Self.key([("x-other", "sk-three")]) == nil)
    }
}
