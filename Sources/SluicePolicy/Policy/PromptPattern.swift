#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A prompt-filter pattern compiled to a POSIX extended regular expression (the C library's
/// `regcomp`), which answers "does it match anywhere" in a fraction of a microsecond on a
/// short message and tens of microseconds on 10 KB, where Swift's `Regex` takes hundreds
/// of times longer.
///
/// Patterns are written in the common PCRE style and translated: `(?i)` at the start
/// (ASCII case folding), `(?:…)`, `\d \D \s \S \w \W`, `\b \B`, escaped punctuation. Whether
/// a pattern matches somewhere does not depend on leftmost-first or leftmost-longest, so
/// the answer is the one PCRE would give. Constructs a POSIX engine cannot honour
/// (lookaround, lazy quantifiers, backreferences, `\p{…}`, anchors like `\A`) are refused
/// when the policy loads, never silently approximated.
///
/// Matching runs over the message's UTF-8 bytes with explicit bounds, so a NUL inside the
/// text cannot end the scan early and hide what follows it.
final class PromptPattern: @unchecked Sendable {
    // regexec on a compiled pattern is thread-safe (glibc serialises internally); the
    // regex_t is never mutated after regcomp, and freed once in deinit.
    private var compiled = regex_t()

    init(_ pattern: String) throws(PolicyError) {
        let (translated, caseInsensitive) = try Self.translate(pattern)
        var flags = REG_EXTENDED | REG_NOSUB
        if caseInsensitive { flags |= REG_ICASE }
        let status = regcomp(&compiled, translated, flags)
        guard status == 0 else {
            var message = [CChar](repeating: 0, count: 256)
            regerror(status, &compiled, &message, message.count)
            throw PolicyError(
                "the pattern does not compile: "
                    + "\(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))"
            )
        }
    }

    deinit { regfree(&compiled) }

    func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { matches(UnsafeRawBufferPointer($0)) }
    }

    /// Whether the pattern occurs anywhere in `text`, UTF-8 bytes that need no terminator.
    func matches(_ text: UnsafeRawBufferPointer) -> Bool {
        guard let base = text.baseAddress, !text.isEmpty else { return regexec(&compiled, "", 0, nil, 0) == 0 }
        var range = regmatch_t(rm_so: 0, rm_eo: regoff_t(text.count))
        return regexec(&compiled, base.assumingMemoryBound(to: CChar.self), 1, &range, REG_STARTEND) == 0
    }

    /// PCRE-style pattern → POSIX ERE (GNU flavour, which keeps `\b \B \w \W \s \S`).
    static func translate(_ pattern: String) throws(PolicyError) -> (String, caseInsensitive: Bool) {
        var input = Array(pattern.unicodeScalars)
        var caseInsensitive = false
        if input.starts(with: Array("(?i)".unicodeScalars)) {
            caseInsensitive = true
            input.removeFirst(4)
        }
        var output = ""
        var index = 0
        var inBracket = false
        func refuse(_ what: String) -> PolicyError { PolicyError("\(what) is not supported in prompt filters") }
        while index < input.count {
            let scalar = input[index]
            if scalar == "\\" {
                guard index + 1 < input.count else { throw PolicyError("the pattern ends with a lone backslash") }
                let next = input[index + 1]
                index += 2
                switch next {
                case "d": output += inBracket ? "0-9" : "[0-9]"
                case "D":
                    guard !inBracket else { throw refuse("\\D inside brackets") }
                    output += "[^0-9]"
                case "s": output += inBracket ? "[:space:]" : "\\s"
                case "S":
                    guard !inBracket else { throw refuse("\\S inside brackets") }
                    output += "\\S"
                case "w": output += inBracket ? "[:alnum:]_" : "\\w"
                case "W":
                    guard !inBracket else { throw refuse("\\W inside brackets") }
                    output += "\\W"
                case "b", "B":
                    guard !inBracket else { throw refuse("\\\(next) inside brackets") }
                    output += "\\\(next)"
                case "t": output += "\t"
                case "n": output += "\n"
                case "r": output += "\r"
                case "1"..."9": throw refuse("a backreference (\\\(next))")
                case "p", "P", "A", "z", "Z", "G", "K", "Q", "E", "x", "u":
                    throw refuse("\\\(next)")
                default:
                    guard next.isASCII, !(next.properties.isAlphabetic || next.properties.numericType != nil) else {
                        throw refuse("\\\(next)")
                    }
                    if inBracket {
                        // POSIX brackets have no escapes: the character stands for itself,
                        // except the three whose meaning depends on position.
                        guard next != "]", next != "^", next != "-" else {
                            throw PolicyError(
                                "\\\(next) inside brackets is not supported: put ] first, ^ not first, or - last")
                        }
                        output.unicodeScalars.append(next)
                    } else {
                        output += "\\"
                        output.unicodeScalars.append(next)
                    }
                }
                continue
            }
            if inBracket {
                if scalar == "]" { inBracket = false }  // a leading ] was consumed at the opening
                if scalar == "[", index + 1 < input.count, input[index + 1] == ":" {
                    // A character class like [:digit:] passes through whole.
                    guard
                        let close = (index + 2..<input.count).first(where: { input[$0] == "]" && input[$0 - 1] == ":" })
                    else {
                        throw PolicyError("an unterminated [: character class")
                    }
                    output.unicodeScalars.append(contentsOf: input[index...close])
                    index = close + 1
                    continue
                }
                output.unicodeScalars.append(scalar)
                index += 1
                continue
            }
            switch scalar {
            case "[":
                inBracket = true
                output += "["
                index += 1
                if index < input.count, input[index] == "^" {
                    output += "^"
                    index += 1
                }
                if index < input.count, input[index] == "]" {
                    output += "]"
                    index += 1
                }
                continue
            case "(":
                if index + 1 < input.count, input[index + 1] == "?" {
                    if index + 2 < input.count, input[index + 2] == ":" {
                        output += "("
                        index += 3
                        continue
                    }
                    throw refuse("a (? group other than (?: and a leading (?i)")
                }
            case ".":
                // PCRE's dot stops at a newline; a POSIX one would not.
                output += "[^\n]"
                index += 1
                continue
            case "*", "+", "?", "}":
                if index + 1 < input.count, input[index + 1] == "?" || input[index + 1] == "+" {
                    throw refuse("a lazy or possessive quantifier")
                }
            default:
                break
            }
            output.unicodeScalars.append(scalar)
            index += 1
        }
        guard !inBracket else { throw PolicyError("the pattern has an unclosed [") }
        return (output, caseInsensitive)
    }
}
