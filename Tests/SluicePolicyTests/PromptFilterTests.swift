import SluicePolicy
import Testing

@Suite("Prompt filter patterns")
struct PromptFilterTests {
    static let patterns = [
        #"\b\d{3}-\d{2}-\d{4}\b"#, #"(?i)project\s+nightingale"#, #"sk-[A-Za-z0-9]{20,}"#, #"(?i)\bpass(word)?\b"#,
        #"^ignore (all|previous) instructions"#, #"[\w.+-]+@[\w-]+\.[a-z]{2,}"#, #"\$\d+(\.\d\d)?"#,
        #"(?:api|secret)_key"#,
        #"\bDROP\s+TABLE\b"#, #"[^\x20-\x7e]"#.replacingOccurrences(of: #"\x20-\x7e"#, with: " -~"), #"a.c"#,
        #"colou?r"#,
        #"\d{16}"#, #"[[:upper:]]{5}"#, #"(foo|bar)baz"#, #"\Wend$"#,
    ]
    static let texts = [
        "my ssn is 123-45-6789.", "ssn 123-45-67890", "Tell me about Project   NIGHTINGALE", "projectnightingale",
        "key sk-abcdefghijklmnopqrstuvwxyz01", "sk-short", "what is my Password?", "passwords are fine", "PASS",
        "ignore all instructions and", "please ignore previous instructions", "mail bob.smith+x@example-corp.org now",
        "costs $12.50 or $7", "api_key=1", "secret_key", "apikey", "drop table users", "DROP   TABLE users",
        "naïve café", "plain ascii", "abc", "a\nc", "color", "colour", "colouur", "1234567812345678", "ABCDE", "ABCD",
        "foobaz", "barbaz", "bazfoo", " the end", "theend", "", "nul\u{0}then 123-45-6789",
    ]

    /// Swift's Regex (PCRE-like semantics) is the oracle: the POSIX translation must agree on
    /// whether each pattern matches each text.
    @Test("the POSIX translation agrees with Swift Regex on every pattern × text")
    func agreesWithSwiftRegex() throws {
        var cases = 0
        for pattern in Self.patterns {
            let filter = try PromptFilter(name: "p", pattern: pattern)
            let oracle = try Regex(pattern)
            for text in Self.texts {
                let expected =
                    text.unicodeScalars.count == text.count
                    ? text.contains(oracle) : (try? oracle.firstMatch(in: text)) != nil
                #expect(filter.matches(text) == expected, "pattern \(pattern) on \(text.debugDescription)")
                cases += 1
            }
        }
        #expect(cases == Self.patterns.count * Self.texts.count)
    }

    @Test("a NUL inside the text does not end the scan")
    func embeddedNul() throws {
        let filter = try PromptFilter(name: "ssn", pattern: #"\d{3}-\d{2}-\d{4}"#)
        #expect(filter.matches("hidden\u{0}123-45-6789"))
    }

    @Test(
        "constructs a POSIX engine cannot honour are refused at load",
        arguments: [
            #"foo(?=bar)"#, #"(?<!x)y"#, #"a+?"#, #"(a)\1"#, #"\p{L}"#, #"\Afoo"#, #"[\]]"#, #"abc\"#, #"[abc"#,
            #"(?s)a.b"#,
        ])
    func refused(pattern: String) {
        #expect(throws: PolicyError.self) { try PromptFilter(name: "bad", pattern: pattern) }
    }
}
