import Foundation
import SluiceWire
import Testing

@testable import SluiceAgent

/// The spool's journal reader against `JSONDecoder`, which read the journals before it.
@Suite("Usage journal lines")
struct UsageJournalLineTests {
    static func fast(_ line: String) -> UsageRecord? {
        Array(line.utf8).withUnsafeBytes { UsageJournalLine.record($0) }
    }

    static func general(_ line: String) -> UsageRecord? {
        try? JSONDecoder().decode(UsageRecord.self, from: Data(line.utf8))
    }

    static let texts: [String?] = [
        nil, "", "ml", "shop/checkout", #"quote " and \ backslash"#, "tab\tnew\nline\u{1}", "é ✓ 😀", "team \"ml\" rpm",
    ]

    @Test("every record jsonLine writes is read back whole, as JSONDecoder reads it")
    func roundTrip() {
        var generator = SystemRandomNumberGenerator()
        var mismatches: [String] = []
        for round in 0..<400 {
            func text() -> String? { Self.texts.randomElement(using: &generator)! }
            func count() -> Int64 {
                [0, 1, 7, 4096, Int64.max, -3, Int64.min].randomElement(using: &generator)!
            }
            let record = UsageRecord(
                hour: 1_800_000_000 - Int64(round) * 3600, team: text(), project: text(), service: text() ?? "svc",
                keyID: text(), model: text() ?? "", requests: round % 3 == 0 ? 0 : 1, promptTokens: count(),
                completionTokens: count(), cachedPromptTokens: count(), cacheCreationTokens: count(),
                costPicoUSD: count(), denial: text(), denialRule: text())
            var line = String(decoding: record.jsonLine, as: UTF8.self)
            #expect(line.last == "\n")
            line.removeLast()
            let fast = Self.fast(line)
            if fast != record || fast != Self.general(line) { mismatches.append(line) }
        }
        #expect(mismatches.prefix(3) == [])
    }

    @Test("odd lines get the same answer from both readers")
    func oddLines() {
        let lines = [
            #"{"h":3600,"s":"svc","m":"gpt","r":1}"#,
            #"{"h":3600,"s":"svc","m":"gpt","r":1,"future":{"nested":[1,2]}}"#,
            #"{"h":3600,"t":null,"s":"svc","m":"gpt","r":1,"pt":null}"#,
            #" {"r":1,"m":"gpt","s":"svc","h":3600} "#,
            #"{"h":3600,"s":"svc","m":"gpt","r":1,"c":12,"d":"rate_limited","dr":"team \"ml\" rpm"}"#,
            #"{"h":3600,"s":"svc","m":"gpt"}"#, #"{"h":3600,"s":"svc","r":1}"#, #"{"h":3600,"m":"gpt","r":1}"#,
            #"{"s":"svc","m":"gpt","r":1}"#, #"{"h":"3600","s":"svc","m":"gpt","r":1}"#,
            #"{"h":3600,"s":7,"m":"gpt","r":1}"#, #"{"h":3600,"s":"svc","m":"gpt","r":1,"t":5}"#,
            #"{"h":3600,"s":"svc","m":"gpt","r":1,"pt":"9"}"#, #"{"h":3600,"s":null,"m":"gpt","r":1}"#,
            #"{"h":3600,"s":"svc","m":"gpt","r":99999999999999999999}"#,
            #"{"h":3600,"s":"svc","m":"gpt","r":1"#, #"{"h":3600,"s":"svc",}"#, "", "[]", "null", "garbage",
        ]
        for line in lines {
            #expect(Self.fast(line) == Self.general(line), "\(line)")
        }
        #expect(Self.fast(lines[0]) == UsageRecord(hour: 3600, service: "svc", model: "gpt", requests: 1))
    }

    @Test("a count must be an integer literal, and a key may appear once")
    func stricter() {
        #expect(Self.fast(#"{"h":3600,"s":"svc","m":"gpt","r":1.0}"#) == nil)
        #expect(Self.fast(#"{"h":3600,"s":"svc","m":"gpt","r":1e0}"#) == nil)
        #expect(Self.fast(#"{"h":3600,"s":"svc","s":"other","m":"gpt","r":1}"#) == nil)
    }
}
