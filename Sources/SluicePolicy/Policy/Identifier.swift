/// The one grammar for the names and ids an admin gives policy entities. Every id that can
/// be created can be addressed again: in a URL path segment, a CLI argument, a log line
/// and a metric label, without quoting. The control plane refuses a write that breaks it;
/// agents only compare these strings, so a name stored before the grammar existed still
/// works in a bundle.
///
/// | kind | grammar |
/// | --- | --- |
/// | team, project, key id, prompt filter, guardrail, pass-through | `[a-z0-9][a-z0-9._-]{0,62}` |
/// | service | `namespace/service`, each part `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?` (a Kubernetes DNS label), or `*` |
/// | model alias | `/`-separated parts (`openai/gpt-4o`), each `[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}`, not `..` |
/// | metadata key | `[a-z0-9][a-z0-9._-]{0,62}`; values: up to 256 bytes on one line |
public enum Identifier {
    /// What an identifier names; the raw value is how errors name it.
    public enum Kind: String, Sendable, CaseIterable {
        case team, project, key, service, alias, promptFilter = "prompt filter", guardrail
        case passThrough = "pass-through", metadataKey = "metadata key"
    }

    /// Nil when `text` is a valid `kind` name; otherwise what is wrong, for an error message.
    public static func problem(_ text: String, as kind: Kind) -> String? {
        switch kind {
        case .team, .project, .key, .promptFilter, .guardrail, .passThrough, .metadataKey:
            isSimpleName(text) ? nil : "\(kind.rawValue) \(quoted(text)) must match [a-z0-9][a-z0-9._-]{0,62}"
        case .service:
            isServiceName(text)
                ? nil
                : "service \(quoted(text)) must be namespace/service (each a lower-case DNS label: a-z, 0-9, -) or *"
        case .alias:
            isAlias(text) || isWildcardAlias(text)
                ? nil
                : "alias \(quoted(text)) must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ + - in /-separated parts, "
                    + "each starting with a letter or digit"
        }
    }

    /// Lower-case letters and digits, then up to 62 of those or `. _ -`.
    public static func isSimpleName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...63).contains(bytes.count), isLowerAlphanumeric(bytes[0]) else { return false }
        return bytes.allSatisfy {
            isLowerAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
        }
    }

    /// `*`, or two DNS labels joined by `/`.
    public static func isServiceName(_ text: String) -> Bool {
        if text == "*" { return true }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { isDNSLabel(Array($0.utf8)) }
    }

    /// Whether `text` is a model alias: `/`-separated parts in the alias grammar, no `..`.
    public static func isAlias(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...128).contains(bytes.count) else { return false }
        for part in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard let first = part.first, isAlphanumeric(first) else { return false }
            guard part.allSatisfy({ isAlphanumeric($0) || Array("._:@+-".utf8).contains($0) }) else { return false }
        }
        return true
    }

    /// A wildcard alias (LiteLLM's `openai/*`, or `*`): an alias whose last part is `*`,
    /// standing for every name below it.
    public static func isWildcardAlias(_ text: String) -> Bool {
        text == "*" || (text.hasSuffix("/*") && isAlias(String(text.dropLast(2))))
    }

    /// Whether `name` is one a wildcard alias stands for (`openai/gpt-4o` under `openai/*`).
    public static func wildcard(_ wildcard: String, covers name: String) -> Bool {
        guard wildcard.hasSuffix("*") else { return false }
        let prefix = wildcard.dropLast()
        return name.utf8.count > prefix.utf8.count && name.hasPrefix(prefix) && !name.hasSuffix("*")
    }

    /// A metadata value: one line, no control characters, at most 256 bytes.
    public static func isMetadataValue(_ text: String) -> Bool {
        text.utf8.count <= 256 && !text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }

    /// A Kubernetes DNS label (RFC 1123): 1 to 63 lower-case letters, digits and `-`, starting
    /// and ending with a letter or digit. Namespaces and service names are labels.
    public static func isDNSLabel(_ text: String) -> Bool { isDNSLabel(Array(text.utf8)) }

    private static func isDNSLabel(_ bytes: [UInt8]) -> Bool {
        guard (1...63).contains(bytes.count), let first = bytes.first, let last = bytes.last,
            isLowerAlphanumeric(first), isLowerAlphanumeric(last)
        else { return false }
        return bytes.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        isLowerAlphanumeric(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    /// The text for an error message: quoted, cut to 64 characters, control characters escaped,
    /// so a hostile name cannot forge a log line.
    public static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars.prefix(64) {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + (text.unicodeScalars.count > 64 ? "…\"" : "\"")
    }
}

/// "Did you mean …?" for a misspelt field or name.
public enum Suggestion {
    /// The candidate closest to `text` by edit distance, if it is close enough to be a typo
    /// (at most a third of the longer word, and at most 3 edits).
    public static func closest(to text: String, among candidates: some Sequence<String>) -> String? {
        var best: (name: String, distance: Int)?
        let word = Array(text.lowercased().utf8)
        for candidate in candidates {
            let other = Array(candidate.lowercased().utf8)
            let limit = min(3, max(1, max(word.count, other.count) / 3))
            guard abs(word.count - other.count) <= limit else { continue }
            let distance = editDistance(word, other)
            if distance <= limit, distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        return best?.name
    }

    /// `, did you mean "x"?` or nothing.
    public static func hint(for text: String, among candidates: some Sequence<String>) -> String {
        closest(to: text, among: candidates).map { "; did you mean \"\($0)\"?" } ?? ""
    }

    /// Damerau–Levenshtein (optimal string alignment): a swapped pair of letters is one edit.
    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previous2[j - 2] + 1)
                }
            }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return previous[b.count]
    }
}
