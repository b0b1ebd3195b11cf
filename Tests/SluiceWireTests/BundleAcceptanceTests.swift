import Crypto
import Foundation
import SluicePolicy
import SluiceWire
import Testing

@Suite("Wire: what an agent accepts as its next policy, and the usage it spools")
struct BundleAcceptanceTests {
    let key = Curve25519.Signing.PrivateKey()
    let pepper = Secret("bundle-test-pepper-0123456789")

    func bundle(version: Int64, keys: Bool = false, signedBy signer: Curve25519.Signing.PrivateKey? = nil) throws
        -> [UInt8]
    {
        var document = PolicyDocument(
            version: version, issuedAt: 1_800_000_000,
            keyPepperFingerprint: PolicyDocument.pepperFingerprint(of: pepper))
        if keys {
            document.keys = [
                KeyDocument(id: "ci", hash: "hmac-sha256:" + String(repeating: "ab", count: 32), team: "ml")
            ]
        }
        return Array(try WireCoding.encoder.encode(try SignedBundle.sign(document, with: signer ?? key)))
    }

    func refusal(_ bytes: [UInt8], above: Int64? = nil, pepper: Secret? = nil) -> String? {
        do {
            _ = try SignedBundle.open(bytes, publicKey: key.publicKey, above: above, pepper: pepper ?? self.pepper)
            return nil
        } catch {
            return error.message
        }
    }

    @Test("a good bundle opens; tampered, truncated, foreign-signed and rolled-back ones are refused, each saying why")
    func refusals() throws {
        let good = try bundle(version: 7, keys: true)
        #expect(refusal(good, above: 6) == nil)

        var envelope = try #require(try JSONSerialization.jsonObject(with: Data(good)) as? [String: String])
        let encoded = try #require(envelope["payload"])
        var payload = try #require(Data(base64Encoded: encoded))
        payload[payload.count / 2] ^= 0x01
        envelope["payload"] = payload.base64EncodedString()
        let tampered = Array(try JSONSerialization.data(withJSONObject: envelope))
        #expect(refusal(tampered)?.contains("signature does not verify") == true)

        #expect(refusal(Array(good.prefix(good.count - 40)))?.contains("truncated") == true)
        #expect(
            refusal(try bundle(version: 8, signedBy: Curve25519.Signing.PrivateKey()))?.contains(
                "not the configured one") == true)
        #expect(refusal(good, above: 7)?.contains("roll back") == true)
        #expect(refusal(good, above: 9)?.contains("roll back") == true)
        #expect(refusal(good, pepper: Secret("another-pepper-0123456789"))?.contains("key pepper") == true)
        // Without keys the pepper does not matter.
        #expect(refusal(try bundle(version: 3), pepper: Secret("another-pepper-0123456789")) == nil)
    }

    @Test("a spooled record survives its own JSON line, names with quotes and control bytes included")
    func recordLine() throws {
        let record = UsageRecord(
            hour: 1_800_000_000 - 1_800_000_000 % 3600, team: "ml \"core\"\n", project: nil, service: "shop/checkout",
            keyID: "k\\1", model: "gpt\u{1}x", requests: 1, promptTokens: 12, completionTokens: 0,
            costPicoUSD: 12_000_000, denial: nil)
        let line = record.jsonLine
        #expect(line.last == UInt8(ascii: "\n") && line.dropLast().allSatisfy { $0 != UInt8(ascii: "\n") })
        #expect(try JSONDecoder().decode(UsageRecord.self, from: Data(line)) == record)
        let refused = UsageRecord(hour: 0, service: "s/a", model: "", requests: 0, denial: "invalid_api_key")
        #expect(try JSONDecoder().decode(UsageRecord.self, from: Data(refused.jsonLine)) == refused)
    }

    @Test("records fold into one delta per cell, denials counted by reason")
    func folding() {
        let hour: Int64 = 1_800_000_000 - 1_800_000_000 % 3600
        let records = [
            UsageRecord(
                hour: hour, team: "ml", service: "s/a", keyID: "ci", model: "m", requests: 1, promptTokens: 3,
                completionTokens: 2, costPicoUSD: 5),
            UsageRecord(
                hour: hour, team: "ml", service: "s/a", keyID: "ci", model: "m", requests: 1, promptTokens: 4,
                completionTokens: 1, costPicoUSD: 6),
            UsageRecord(
                hour: hour, team: "ml", service: "s/a", keyID: "ci", model: "m", requests: 0, denial: "rate_limited"),
            UsageRecord(hour: hour + 3600, team: "ml", service: "s/a", keyID: "ci", model: "m", requests: 1),
        ]
        let deltas = UsageRecord.deltas(records)
        #expect(deltas.count == 2)
        #expect(
            deltas[0]
                == UsageDelta(
                    hour: hour, team: "ml", service: "s/a", keyID: "ci", model: "m", requests: 2, promptTokens: 7,
                    completionTokens: 3, costPicoUSD: 11, denials: ["rate_limited": 1]))
        #expect(deltas[1].hour == hour + 3600 && deltas[1].requests == 1)
    }
}
