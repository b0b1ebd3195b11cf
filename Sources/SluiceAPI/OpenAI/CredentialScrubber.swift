/// Removes credentials from provider answers before they reach a caller, a log or a metric.
///
/// Two rules: every configured secret is replaced wherever it appears verbatim, and any
/// token shaped like a provider key (`sk-…`, `sk-ant-…`, `AIza…`) is masked whole, which
/// also catches the half-masked echoes providers put in 401 messages.
public struct CredentialScrubber: Sendable {
    private let secrets: [[UInt8]]
    static let redacted = Array("[REDACTED]".utf8)
    static let keyPrefixes: [[UInt8]] = [Array("sk-".utf8), Array("AIza".utf8)]

    /// - Parameter secrets: credentials to remove verbatim; very short ones are ignored
    ///   (they would match ordinary text) but are still caught by the key-shape rule.
    public init(secrets: [String]) {
        self.secrets = secrets.filter { $0.utf8.count >= 8 }.map { Array($0.utf8) }
    }

    /// `input` with every configured secret and every key-shaped token replaced by
    /// `[REDACTED]`.
    public func scrub(_ input: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(input.count)
        var index = 0
        outer: while index < input.count {
            for secret in secrets where matches(secret, in: input, at: index) {
                output.append(contentsOf: Self.redacted)
                index += secret.count
                continue outer
            }
            let startsWord = index == 0 || !Self.isKeyCharacter(input[index - 1])
            if startsWord {
                for prefix in Self.keyPrefixes where matches(prefix, in: input, at: index) {
                    var end = index + prefix.count
                    while end < input.count, Self.isKeyCharacter(input[end]) || input[end] == UInt8(ascii: "*") {
                        end += 1
                    }
                    if end - index - prefix.count >= 6 {
                        output.append(contentsOf: prefix)
                        output.append(contentsOf: Self.redacted)
                        index = end
                        continue outer
                    }
                }
            }
            output.append(input[index])
            index += 1
        }
        return output
    }

    private func matches(_ needle: [UInt8], in haystack: [UInt8], at index: Int) -> Bool {
        guard index + needle.count <= haystack.count else { return false }
        for offset in 0..<needle.count where haystack[index + offset] != needle[offset] { return false }
        return true
    }

    private static func isKeyCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }
}
