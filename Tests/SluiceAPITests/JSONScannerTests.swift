import SluiceAPI
import Testing

@Suite("JSONScanner")
struct JSONScannerTests {
    func scan(_ text: String, depth: Int = 64) throws(JSONScanError) -> [JSONMember] {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { raw in
            Result { () throws(JSONScanError) in try JSONScanner.scanObject(raw, maxDepth: depth) }
        }.get()
    }

    func reason(_ text: String, depth: Int = 64) -> JSONScanError.Reason? {
        do {
            _ = try scan(text, depth: depth)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test("reports top-level members with decoded keys and exact ranges")
    func members() throws {
        let text = #" {"model" : "gpt", "n":2,"mod\u0065l2":[1,{"a":null}], "t":true} "#
        let members = try scan(text)
        #expect(members.map(\.key) == ["model", "n", "model2", "t"])
        #expect(members.map(\.kind) == [.string, .number, .array, .bool])
        let bytes = Array(text.utf8)
        #expect(String(decoding: bytes[members[0].valueRange], as: UTF8.self) == #""gpt""#)
        #expect(String(decoding: bytes[members[2].valueRange], as: UTF8.self) == #"[1,{"a":null}]"#)
    }

    @Test(
        "accepts valid documents",
        arguments: [
            #"{}"#, #"{"a":[]}"#, #"{"a":-0.5e+10}"#, #"{"a":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#,
            #"{"a":"héllo ✓ 😀"}"#, "{\"a\":\n[ 1 , 2 ]\t}", #"{"a":0}"#, #"{"a":1E5}"#,
        ])
    func valid(text: String) {
        #expect(reason(text) == nil)
    }

    @Test(
        "rejects malformed documents",
        arguments: [
            "{", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, #"{"a":01}"#, #"{"a":.5}"#, #"{"a":1.}"#,
            #"{"a":tru}"#, #"{"a":"\x"}"#, #"{"a":"\u12"}"#, "{\"a\":\"\u{01}\"}", #"{"a":1} x"#, #"{a:1}"#,
            #"{"a":"unterminated}"#, #"{"a":[1 2]}"#, #"{"a":NaN}"#,
        ])
    func malformed(text: String) {
        guard case .syntax = reason(text) else {
            Issue.record("accepted or misclassified: \(text)")
            return
        }
    }

    @Test("only an object is a request body", arguments: ["", "[]", "1", #""s""#, "null"])
    func notAnObject(text: String) {
        #expect(reason(text) == .notAnObject)
    }

    @Test("rejects invalid UTF-8, overlongs and lone surrogates")
    func invalidText() {
        for bytes: [UInt8] in [
            [0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC0, 0xAF, 0x22, 0x7D],  // overlong "/"
            [0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x7D],  // UTF-8 encoded surrogate
            [0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D],
            [0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xE2, 0x82, 0x22, 0x7D],  // truncated sequence
        ] {
            let result = bytes.withUnsafeBytes { raw in
                Result { () throws(JSONScanError) in try JSONScanner.scanObject(raw) }
            }
            #expect(throws: JSONScanError.self) { try result.get() }
        }
        guard case .syntax = reason(#"{"a":"\ud800"}"#) else {
            Issue.record("lone high surrogate accepted")
            return
        }
        guard case .syntax = reason(#"{"a":"\udc00x"}"#) else {
            Issue.record("lone low surrogate accepted")
            return
        }
    }

    @Test("caps nesting depth without exhausting the stack")
    func depth() {
        let deep = #"{"a":"# + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}"
        #expect(reason(deep) == .tooDeep(limit: 64))
        let objects = String(repeating: #"{"a":"#, count: 5_000) + "1" + String(repeating: "}", count: 5_000)
        #expect(reason(objects) == .tooDeep(limit: 64))
        let fine = #"{"a":"# + String(repeating: "[", count: 62) + String(repeating: "]", count: 62) + "}"
        #expect(reason(fine) == nil)
    }

    @Test("rejects duplicate keys, including ones spelled with escapes")
    func duplicates() {
        #expect(reason(#"{"model":"a","model":"b"}"#) == .duplicateKey("model"))
        #expect(reason(#"{"model":"a","mod\u0065l":"b"}"#) == .duplicateKey("model"))
        #expect(reason(#"{"x":{"k":1,"k":2}}"#) == .duplicateKey("k"))
    }

    @Test("reads integers and refuses overflow")
    func integers() {
        let bytes = Array("12345 -7 99999999999999999999 1.5".utf8)
        bytes.withUnsafeBytes { raw in
            #expect(JSONScanner.integer(at: 0..<5, in: raw) == 12345)
            #expect(JSONScanner.integer(at: 6..<8, in: raw) == -7)
            #expect(JSONScanner.integer(at: 9..<29, in: raw) == nil)
            #expect(JSONScanner.integer(at: 30..<33, in: raw) == nil)
        }
        // The ends of Int64 are read; one past either is overflow.
        let ends = Array("-9223372036854775808 9223372036854775807 -9223372036854775809 9223372036854775808".utf8)
        ends.withUnsafeBytes { raw in
            #expect(JSONScanner.integer(at: 0..<20, in: raw) == Int64.min)
            #expect(JSONScanner.integer(at: 21..<40, in: raw) == Int64.max)
            #expect(JSONScanner.integer(at: 41..<61, in: raw) == nil)
            #expect(JSONScanner.integer(at: 62..<81, in: raw) == nil)
        }
    }
}
