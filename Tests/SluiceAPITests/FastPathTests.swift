import SluiceAPI
import Testing

/// The request path reads usage and writes audit lines through fast paths that decode no
/// keys and build no intermediate strings. Each is compared here with the general, slower
/// way of doing the same thing over the same documents, so the two cannot drift apart.
@Suite("Fast paths agree with the general ones")
struct FastPathTests {
    /// Documents of every shape the scanner meets: answers of each API, nested and escaped
    /// keys, duplicates, objects past the linear duplicate check, and malformed input.
    static let documents: [String] = [
        #"{}"#, #"{"a":[]}"#, #"{"a":-0.5e+10}"#, #"{"a":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#,
        #"{"a":"héllo ✓ 😀"}"#, "{\"a\":\n[ 1 , 2 ]\t}",
        #" {"model" : "gpt", "n":2,"mod\u0065l2":[1,{"a":null}]} "#,
        "{", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, #"{"a":01}"#, #"{"a":"\x"}"#, #"{"a":"\u12"}"#,
        "{\"a\":\"\u{01}\"}", #"{"a":1} x"#, #"{a:1}"#, #"{"a":"unterminated}"#, #"{"a":[1 2]}"#, "[]", "null",
        #"{"a":1,"\u0061":2}"#, #"{"a":{"b":1,"b":2}}"#, #"{"usage":1,"usage":2}"#,
        // OpenAI chat, with and without details, and the mock's answer.
        #"{"id":"mock-1","object":"chat.completion","created":1700000000,"model":"mock","choices":[{"index":0,"#
            + #""message":{"role":"assistant","content":"Sluice mock says hello"},"finish_reason":"stop"}],"#
            + #""usage":{"prompt_tokens":15,"completion_tokens":8,"total_tokens":23}}"#,
        #"{"usage":{"prompt_tokens":1000,"completion_tokens":50,"total_tokens":1050,"#
            + #""prompt_tokens_details":{"cached_tokens":600,"audio_tokens":0},"#
            + #""completion_tokens_details":{"reasoning_tokens":30}}}"#,
        // Responses API, embeddings (prompt only), and usage spelled with escapes.
        #"{"object":"response","usage":{"input_tokens":12,"output_tokens":40,"#
            + #""input_tokens_details":{"cached_tokens":4},"output_tokens_details":{"reasoning_tokens":9}}}"#,
        #"{"object":"list","data":[],"usage":{"prompt_tokens":7,"total_tokens":7}}"#,
        #"{"us\u0061ge":{"prompt_\u0074okens":3,"completion_tokens":2}}"#,
        // Figures that must not be taken: garbled, negative, fractional, too large, strings.
        #"{"usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":"x"}}}"#,
        #"{"usage":{"prompt_tokens":-1,"completion_tokens":1}}"#, #"{"usage":{"prompt_tokens":1.5}}"#,
        #"{"usage":{"prompt_tokens":99999999999999999999,"completion_tokens":1}}"#,
        #"{"usage":{"prompt_tokens":"10"}}"#, #"{"usage":[1]}"#, #"{"usage":null}"#,
        #"{"usage":{"prompt_tokens":5,"prompt_tokens":6}}"#,
        // The fixed answer bench/run.sh has nginx serve.
        #"{"id":"chatcmpl-bench0000000000000000000001","object":"chat.completion","created":1733616000,"#
            + #""model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","#
            + #""content":"Hello","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"#
            + #""prompt_tokens":14,"completion_tokens":21,"total_tokens":35,"prompt_tokens_details":{"#
            + #""cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"#
            + #""audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"#
            + #""service_tier":"default","system_fingerprint":"fp_bench00000"}"#,
        wide(keys: 40, duplicate: nil), wide(keys: 40, duplicate: #""k\u0033""#), wide(keys: 17, duplicate: #""k16""#),
        #"{"outer":"# + wide(keys: 30, duplicate: #""k2""#) + "}",
    ]

    /// An object with `keys` distinct members `k0`…, plus `duplicate` as one more key if given.
    static func wide(keys: Int, duplicate: String?) -> String {
        var members = (0..<keys).map { #""k\#($0)":\#($0)"# }
        if let duplicate { members.append("\(duplicate):0") }
        return "{" + members.joined(separator: ",") + "}"
    }

    @Test("looking up named members validates exactly as collecting every member does", arguments: documents)
    func namedValues(text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { raw in
            let names: [StaticString] = ["usage", "a", "model", "k3", "outer"]
            let general = Result { () throws(JSONScanError) in try JSONScanner.scanObject(raw, maxDepth: 256) }
            let fast = Result { () throws(JSONScanError) in
                try JSONScanner.scanObject(raw, maxDepth: 256, values: names)
            }
            switch (general, fast) {
            case (.failure(let expected), .failure(let got)):
                #expect(got == expected)
            case (.success(let members), .success(let found)):
                let expected = names.map { name in
                    members.first { $0.key == name.description }.map {
                        JSONNamedValue(range: $0.valueRange, kind: $0.kind)
                    }
                }
                #expect(found == expected)
                for member in members where member.kind == .object {
                    let inner = JSONScanner.members(ofObjectAt: member.valueRange, in: raw)
                    let lookedUp = JSONScanner.values(names, ofObjectAt: member.valueRange, in: raw)
                    #expect(
                        lookedUp
                            == names.map { name in
                                inner.first { $0.key == name.description }.map {
                                    JSONNamedValue(range: $0.valueRange, kind: $0.kind)
                                }
                            })
                }
            default:
                Issue.record("one way accepted and the other refused: \(general) / \(fast)")
            }
        }
    }

    @Test("usage read from an answer equals usage read through every member", arguments: documents)
    func usage(text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { raw in
            #expect(TokenUsage.fromOpenAIResponse(raw) == Self.usageThroughMembers(raw))
        }
    }

    @Test("the fast paths find what they should, not only what the slow ones find")
    func knownUsage() {
        func usage(_ index: Int) -> TokenUsage? {
            Array(Self.documents[index].utf8).withUnsafeBytes { TokenUsage.fromOpenAIResponse($0) }
        }
        #expect(usage(24) == TokenUsage(promptTokens: 15, completionTokens: 8))
        #expect(
            usage(25)
                == TokenUsage(promptTokens: 1000, completionTokens: 50, cachedPromptTokens: 600, reasoningTokens: 30))
        #expect(
            usage(26) == TokenUsage(promptTokens: 12, completionTokens: 40, cachedPromptTokens: 4, reasoningTokens: 9))
        #expect(usage(27) == TokenUsage(promptTokens: 7, completionTokens: 0))
        #expect(usage(28) == TokenUsage(promptTokens: 3, completionTokens: 2))
        #expect(usage(29)?.cachedPromptTokens == 0)
        #expect([30, 31, 32, 33, 34, 35, 36].allSatisfy { usage($0) == nil })
        #expect(usage(37) == TokenUsage(promptTokens: 14, completionTokens: 21))
        let wide = Array(Self.documents[38].utf8).withUnsafeBytes { try? JSONScanner.scanObject($0) }
        #expect(wide?.count == 40)
        for refused in [39, 40, 41] {
            let reason = Array(Self.documents[refused].utf8).withUnsafeBytes { raw -> JSONScanError.Reason? in
                switch Result(catching: { () throws(JSONScanError) in try JSONScanner.scanObject(raw) }) {
                case .success: nil
                case .failure(let error): error.reason
                }
            }
            guard case .duplicateKey = reason else {
                Issue.record("document \(refused) was not refused for a duplicate key: \(String(describing: reason))")
                continue
            }
        }
    }

    /// The general way: every member with its decoded key, then each field by name.
    static func usageThroughMembers(_ raw: UnsafeRawBufferPointer) -> TokenUsage? {
        guard let members = try? JSONScanner.scanObject(raw, maxDepth: 256),
            let usage = members.first(where: { $0.key == "usage" }), usage.kind == .object
        else { return nil }
        let fields = JSONScanner.members(ofObjectAt: usage.valueRange, in: raw)
        func count(_ key: String, in fields: [JSONMember]) -> Int? {
            guard let field = fields.first(where: { $0.key == key }), field.kind == .number,
                let value = JSONScanner.integer(at: field.valueRange, in: raw), value >= 0, value < Int64(Int32.max)
            else { return nil }
            return Int(value)
        }
        func detail(_ object: String, _ key: String) -> Int {
            guard let member = fields.first(where: { $0.key == object }), member.kind == .object else { return 0 }
            return count(key, in: JSONScanner.members(ofObjectAt: member.valueRange, in: raw)) ?? 0
        }
        let chat = count("prompt_tokens", in: fields)
        let responses = chat == nil
        guard let prompt = chat ?? count("input_tokens", in: fields) else { return nil }
        return TokenUsage(
            promptTokens: prompt,
            completionTokens: count(responses ? "output_tokens" : "completion_tokens", in: fields) ?? 0,
            cachedPromptTokens: detail(responses ? "input_tokens_details" : "prompt_tokens_details", "cached_tokens"),
            reasoningTokens: detail(
                responses ? "output_tokens_details" : "completion_tokens_details", "reasoning_tokens"))
    }

    @Test("fixed-point numbers equal the string-built ones", arguments: [0, 3, 9])
    func fixedPoint(places: Int) {
        var values: [Double] = [
            0, -0.0, 1, -1, 0.5, 0.0004, 0.0005, -0.0004, 123.456789, 1e-9, 4.2e-7, 999.9995, 1e15, -1e15, 9.3e18,
            -9.3e18, 1e300, .nan, .infinity, -.infinity, 0.1 + 0.2, 12.000_000_001,
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            values.append(Double.random(in: -1e6...1e6, using: &generator))
            values.append(Double.random(in: 0...0.01, using: &generator))
        }
        for value in values {
            var bytes: [UInt8] = []
            appendFixedPoint(value, places: places, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == Self.decimalThroughStrings(value, places: places))
        }
    }

    /// The general way: whole and fraction as strings, padded and trimmed.
    static func decimalThroughStrings(_ value: Double, places: Int) -> String {
        guard value.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9.0e18 else { return String(Int64(min(max(value, -9.0e18), 9.0e18))) }
        let whole = Int64(scaled) / Int64(scale)
        var fraction = String(Int64(scaled) % Int64(scale))
        while fraction.count < places { fraction = "0" + fraction }
        while fraction.hasSuffix("0") { fraction.removeLast() }
        let sign = value < 0 && scaled > 0 ? "-" : ""
        return fraction.isEmpty ? "\(sign)\(whole)" : "\(sign)\(whole).\(fraction)"
    }

    @Test("integers equal their description, padded where asked")
    func integers() {
        let values: [Int64] = [0, 1, -1, 9, 10, 99, 100, 2026, -45, .max, .min, .max - 1, .min + 1]
        for value in values {
            for width in [1, 2, 4, 25] {
                var bytes: [UInt8] = []
                appendDecimalInteger(value, minimumDigits: width, to: &bytes)
                let digits = String(value.magnitude)
                let padded = String(repeating: "0", count: max(0, width - digits.count)) + digits
                #expect(String(decoding: bytes, as: UTF8.self) == (value < 0 ? "-" : "") + padded)
            }
        }
        // Other radixes (hexadecimal for chunk sizes) equal String(_:radix:), lowercase.
        for value: UInt64 in [0, 1, 9, 10, 15, 16, 255, 4096, 0xdead_beef, .max] {
            for radix: UInt64 in [2, 8, 10, 16] {
                let digits = withDigits(of: value, radix: radix) { String(decoding: $0, as: UTF8.self) }
                #expect(digits == String(value, radix: Int(radix)))
            }
        }
    }

    @Test("escaped strings equal the byte-by-byte escaping and parse back to the same text")
    func escaping() throws {
        var texts = [
            "", "plain", #"quote " and \ backslash"#, "line\nbreak\r\ttab", "\u{01}\u{1f}\u{7f}", "é ✓ 😀",
            String(repeating: "x", count: 300) + "\"",
        ]
        texts.append(String(decoding: (0..<128).map { UInt8($0) }, as: UTF8.self))
        for text in texts {
            var bytes: [UInt8] = []
            appendJSONString(text, to: &bytes)
            #expect(bytes == Self.escapedByteByByte(text))
            let document = Array(#"{"t":"#.utf8) + bytes + [UInt8(ascii: "}")]
            #expect(try JSONValue.parseObject(document)["t"]?.stringValue == text)
        }
    }

    static func escapedByteByByte(_ text: String) -> [UInt8] {
        var output: [UInt8] = [UInt8(ascii: "\"")]
        let hex = Array("0123456789abcdef".utf8)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output += [0x5C, 0x22]
            case UInt8(ascii: "\\"): output += [0x5C, 0x5C]
            case 0x0A: output += [0x5C, UInt8(ascii: "n")]
            case 0x0D: output += [0x5C, UInt8(ascii: "r")]
            case 0x09: output += [0x5C, UInt8(ascii: "t")]
            case 0x00..<0x20: output += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
        return output
    }

    @Test("walking validated JSON finds what the validating scanner finds", arguments: documents)
    func validatedWalk(text: String) {
        let bytes = Array(text.utf8)
        let names: [StaticString] = ["a", "b", "model", "usage", "k3", "outer", "choices", "message", "content"]
        bytes.withUnsafeBytes { raw in
            guard (try? JSONScanner.scanObject(raw, maxDepth: 256)) != nil else {
                // Not valid JSON: the walk may end anywhere, but inside the bytes.
                var ends: [Int] = []
                ValidatedJSON.forEachElement(ofArrayAt: 0..<raw.count, in: raw) { range, _ in
                    ends.append(range.upperBound)
                    return true
                }
                for name in names {
                    if let value = ValidatedJSON.value(named: name, inObjectAt: 0..<raw.count, in: raw) {
                        ends.append(value.range.upperBound)
                    }
                }
                #expect(ends.allSatisfy { $0 <= raw.count })
                return
            }
            func compare(_ range: Range<Int>, _ kind: JSONValueKind) {
                switch kind {
                case .object:
                    let members = JSONScanner.members(ofObjectAt: range, in: raw)
                    for name in names {
                        let general = members.first { $0.key == name.description }
                        let walked = ValidatedJSON.value(named: name, inObjectAt: range, in: raw)
                        #expect(walked?.range == general?.valueRange && walked?.kind == general?.kind)
                    }
                    for member in members { compare(member.valueRange, member.kind) }
                case .array:
                    let general = JSONScanner.elements(ofArrayAt: range, in: raw)
                    var walked: [(range: Range<Int>, kind: JSONValueKind)] = []
                    ValidatedJSON.forEachElement(ofArrayAt: range, in: raw) { range, kind in
                        walked.append((range, kind))
                        return true
                    }
                    #expect(walked.map(\.range) == general.map(\.range) && walked.map(\.kind) == general.map(\.kind))
                    for element in general { compare(element.range, element.kind) }
                case .string:
                    let walked = ValidatedJSON.withStringBytes(at: range, in: raw) {
                        String(decoding: $0, as: UTF8.self)
                    }
                    #expect(walked != nil && walked == JSONScanner.decodeString(at: range, in: raw))
                default:
                    break
                }
            }
            compare(raw.firstIndex(of: UInt8(ascii: "{"))!..<raw.count, .object)
        }
    }
}
