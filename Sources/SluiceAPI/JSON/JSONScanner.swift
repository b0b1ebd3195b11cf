/// The kind of a JSON value found by ``JSONScanner``.
public enum JSONValueKind: Sendable, Equatable {
    case object, array, string, number, bool, null
}

/// One member of a JSON object, as byte offsets into the scanned document.
public struct JSONMember: Sendable, Equatable {
    /// The decoded key (escapes resolved), so `"mod\u0065l"` is found as `model`.
    public var key: String
    /// From the key's opening quote to the end of the value.
    public var memberRange: Range<Int>
    /// The value's bytes, quotes included for strings.
    public var valueRange: Range<Int>
    public var kind: JSONValueKind
}

/// A value found by its member's name: its bytes (quotes included for strings) and kind.
public struct JSONNamedValue: Sendable, Equatable {
    public var range: Range<Int>
    public var kind: JSONValueKind

    public init(range: Range<Int>, kind: JSONValueKind) {
        self.range = range
        self.kind = kind
    }
}

/// Why a document was rejected. Offsets are byte positions; no input bytes are echoed.
public struct JSONScanError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong with the document.
    public enum Reason: Sendable, Equatable {
        case syntax(String)
        case tooDeep(limit: Int)
        case duplicateKey(String)
        case notAnObject
    }
    public var reason: Reason
    public var offset: Int

    public var description: String {
        switch reason {
        case .syntax(let what): "malformed JSON at byte \(offset): \(what)"
        case .tooDeep(let limit): "JSON nested deeper than \(limit) levels at byte \(offset)"
        case .duplicateKey(let key): "duplicate key \"\(key.prefix(64))\" at byte \(offset)"
        case .notAnObject: "the body must be a JSON object"
        }
    }
}

/// A strict, allocation-light JSON validator that reports an object's members as byte ranges.
///
/// It checks the whole RFC 8259 grammar, UTF-8 validity and lone surrogates, caps nesting
/// depth (so hostile input cannot exhaust a small task stack), and rejects duplicate keys in
/// any object, so a field checked by policy is always the field that is forwarded.
public struct JSONScanner {
    private let bytes: UnsafeRawBufferPointer
    private var position = 0
    private let maxDepth: Int
    /// The keys of every object being scanned, innermost last, as raw (still escaped) byte
    /// ranges: one array for the whole document instead of one set of strings per object.
    private var openKeys: [KeyBytes] = []
    /// Top-level member names whose values are looked for, and what was found for each.
    private var wanted: [StaticString] = []
    private var found: [JSONNamedValue?] = []

    /// A key's bytes between its quotes, and whether it holds an escape (then its bytes are
    /// not its text, and it is compared decoded).
    private struct KeyBytes {
        var range: Range<Int>
        var escaped: Bool
    }

    /// Past this many keys in one object, duplicates are found through a set of decoded keys
    /// instead of by comparing with each earlier key, so a huge object stays linear.
    private static let linearKeyLimit = 16

    /// Validates `bytes` as one JSON object and returns its top-level members in order.
    public static func scanObject(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64) throws(JSONScanError)
        -> [JSONMember]
    {
        var scanner = JSONScanner(bytes: bytes, maxDepth: maxDepth)
        var members: [JSONMember] = []
        members.reserveCapacity(16)
        try scanner.scanDocument(collect: &members)
        return members
    }

    /// Validates `bytes` exactly as ``scanObject(_:maxDepth:)`` does and returns the values of
    /// the top-level members named `names`, in that order (nil where absent). No key is
    /// decoded into a string, so reading a few fields of a large answer allocates nothing
    /// per member.
    public static func scanObject(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64, values names: [StaticString])
        throws(JSONScanError) -> [JSONNamedValue?]
    {
        var scanner = JSONScanner(bytes: bytes, maxDepth: maxDepth, wanted: names)
        var none: [JSONMember] = []
        try scanner.scanDocument(collect: &none)
        return scanner.found
    }

    /// The values of the members named `names` in the object at `range` (a range previously
    /// returned for an object value), in that order, nil where absent.
    public static func values(_ names: [StaticString], ofObjectAt range: Range<Int>, in bytes: UnsafeRawBufferPointer)
        -> [JSONNamedValue?]
    {
        var scanner = JSONScanner(objectAt: range, in: bytes, wanted: names)
        var none: [JSONMember] = []
        guard (try? scanner.scanObjectBody(depth: 1, collect: &none)) != nil else {
            return Array(repeating: nil, count: names.count)
        }
        return scanner.found
    }

    /// Members of the object at `range` (a range previously returned for an object value).
    public static func members(ofObjectAt range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> [JSONMember] {
        // The range was validated by scanObject, so this cannot fail; depth was already checked.
        var scanner = JSONScanner(objectAt: range, in: bytes)
        var members: [JSONMember] = []
        guard (try? scanner.scanObjectBody(depth: 1, collect: &members)) != nil else { return [] }
        return members
    }

    /// The elements of the array at `range` (a range previously returned for an array value),
    /// as value ranges and kinds.
    public static func elements(ofArrayAt range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> [(
        range: Range<Int>, kind: JSONValueKind
    )] {
        var scanner = JSONScanner(bytes: bytes, maxDepth: Int.max)
        scanner.position = range.lowerBound
        var elements: [(range: Range<Int>, kind: JSONValueKind)] = []
        guard scanner.peek() == UInt8(ascii: "[") else { return [] }
        scanner.position += 1
        scanner.skipWhitespace()
        if scanner.peek() == UInt8(ascii: "]") { return [] }
        // Already validated by scanObject, so a failure here means a caller passed a bad range.
        while scanner.position < range.upperBound {
            scanner.skipWhitespace()
            let start = scanner.position
            guard let kind = try? scanner.scanValue(depth: 0) else { return elements }
            elements.append((start..<scanner.position, kind))
            scanner.skipWhitespace()
            guard scanner.peek() == UInt8(ascii: ",") else { break }
            scanner.position += 1
        }
        return elements
    }

    /// Decodes the JSON string whose quoted bytes are at `range`.
    public static func decodeString(at range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> String? {
        var scanner = JSONScanner(bytes: bytes, maxDepth: 1)
        scanner.position = range.lowerBound
        guard let escaped = try? scanner.skipString() else { return nil }
        return scanner.text(of: (range.lowerBound + 1)..<(scanner.position - 1), escaped: escaped)
    }

    /// Reads the integer at `range`, if it is one that fits in Int64 (no fraction or exponent).
    public static func integer(at range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Int64? {
        var value: Int64 = 0
        var negative = false
        var index = range.lowerBound
        if index < range.upperBound, bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard index < range.upperBound else { return nil }
        while index < range.upperBound {
            let byte = bytes[index]
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            // A negative number is built downwards, so Int64.min is read like any other.
            let digit = Int64(byte - 0x30)
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) =
                negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { return nil }
            value = next
            index += 1
        }
        return value
    }

    /// A scanner that, when `wanted` names members, looks for those at the top level instead
    /// of collecting every member.
    private init(bytes: UnsafeRawBufferPointer, maxDepth: Int, wanted: [StaticString] = []) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.wanted = wanted
        self.found = Array(repeating: nil, count: wanted.count)
    }

    /// A scanner placed at an object already validated as part of `bytes`: no depth limit,
    /// and offsets stay those of the whole document.
    private init(objectAt range: Range<Int>, in bytes: UnsafeRawBufferPointer, wanted: [StaticString] = []) {
        let upToObjectEnd = UnsafeRawBufferPointer(rebasing: bytes[..<range.upperBound])
        self.init(bytes: upToObjectEnd, maxDepth: Int.max, wanted: wanted)
        position = range.lowerBound
    }

    /// Validates the whole buffer as one object (nothing but whitespace around it).
    private mutating func scanDocument(collect members: inout [JSONMember]) throws(JSONScanError) {
        skipWhitespace()
        guard peek() == UInt8(ascii: "{") else { throw JSONScanError(reason: .notAnObject, offset: position) }
        try scanObjectBody(depth: 1, collect: &members)
        skipWhitespace()
        guard position == bytes.count else { throw error("trailing bytes after the document") }
    }

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private func error(_ what: String) -> JSONScanError { JSONScanError(reason: .syntax(what), offset: position) }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(JSONScanError) {
        guard peek() == byte else { throw error("expected \(what)") }
        position += 1
    }

    /// Scans `{ ... }` starting at the opening brace. Its members are collected (or, when
    /// members are wanted by name, looked for) only at depth 1.
    private mutating func scanObjectBody(depth: Int, collect: inout [JSONMember]) throws(JSONScanError) {
        guard depth <= maxDepth else { throw JSONScanError(reason: .tooDeep(limit: maxDepth), offset: position) }
        try expect(UInt8(ascii: "{"), "{")
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            position += 1
            return
        }
        // One allocation at the first object instead of regrowing through 1, 2, 4, 8 and 16
        // keys; a scanner that only decodes a string never makes it.
        if openKeys.capacity == 0 { openKeys.reserveCapacity(32) }
        let firstKey = openKeys.count
        defer { openKeys.removeSubrange(firstKey...) }
        var manyKeys: Set<String>?
        while true {
            skipWhitespace()
            let memberStart = position
            guard peek() == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let escaped = try skipString()
            let key = KeyBytes(range: (memberStart + 1)..<(position - 1), escaped: escaped)
            if isDuplicate(key, since: firstKey, manyKeys: &manyKeys) {
                throw JSONScanError(reason: .duplicateKey(text(of: key.range, escaped: escaped)), offset: memberStart)
            }
            openKeys.append(key)
            skipWhitespace()
            try expect(UInt8(ascii: ":"), ":")
            skipWhitespace()
            let valueStart = position
            let kind = try scanValue(depth: depth)
            if depth == 1, !wanted.isEmpty {
                for (index, name) in wanted.enumerated() where keyEquals(key, name) {
                    found[index] = JSONNamedValue(range: valueStart..<position, kind: kind)
                }
            } else if depth == 1 {
                collect.append(
                    JSONMember(
                        key: text(of: key.range, escaped: escaped), memberRange: memberStart..<position,
                        valueRange: valueStart..<position, kind: kind))
            }
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                return
            default: throw error("expected , or }")
            }
        }
    }

    /// Whether `key` repeats a key of the current object (those in `openKeys` from `first`).
    /// Keys compare by their decoded text, so `"a"` and `"\u0061"` are the same key.
    private func isDuplicate(_ key: KeyBytes, since first: Int, manyKeys: inout Set<String>?) -> Bool {
        let earlier = openKeys.count - first
        if earlier < Self.linearKeyLimit {
            for index in first..<openKeys.count where sameKey(openKeys[index], key) { return true }
            return false
        }
        if manyKeys == nil {
            manyKeys = Set(openKeys[first...].map { text(of: $0.range, escaped: $0.escaped) })
        }
        return !manyKeys!.insert(text(of: key.range, escaped: key.escaped)).inserted
    }

    private func sameKey(_ left: KeyBytes, _ right: KeyBytes) -> Bool {
        if left.escaped || right.escaped {
            return text(of: left.range, escaped: left.escaped) == text(of: right.range, escaped: right.escaped)
        }
        guard left.range.count == right.range.count else { return false }
        for offset in 0..<left.range.count
        where bytes[left.range.lowerBound + offset] != bytes[right.range.lowerBound + offset] {
            return false
        }
        return true
    }

    private func keyEquals(_ key: KeyBytes, _ name: StaticString) -> Bool {
        if key.escaped { return text(of: key.range, escaped: true) == name.description }
        guard key.range.count == name.utf8CodeUnitCount else { return false }
        for offset in 0..<key.range.count where bytes[key.range.lowerBound + offset] != name.utf8Start[offset] {
            return false
        }
        return true
    }

    /// The text of a string whose bytes between the quotes are `range` (already validated).
    private func text(of range: Range<Int>, escaped: Bool) -> String {
        let raw = UnsafeRawBufferPointer(rebasing: bytes[range])
        guard escaped else { return String(decoding: raw, as: UTF8.self) }
        var decoder = JSONScanner(bytes: bytes, maxDepth: 1)
        decoder.position = range.lowerBound - 1
        return (try? decoder.scanString(decode: true)) ?? ""
    }

    private mutating func scanValue(depth: Int) throws(JSONScanError) -> JSONValueKind {
        guard let byte = peek() else { throw error("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"):
            var ignored: [JSONMember] = []
            try scanObjectBody(depth: depth + 1, collect: &ignored)
            return .object
        case UInt8(ascii: "["):
            try scanArray(depth: depth + 1)
            return .array
        case UInt8(ascii: "\""):
            _ = try skipString()
            return .string
        case UInt8(ascii: "t"):
            try scanLiteral("true")
            return .bool
        case UInt8(ascii: "f"):
            try scanLiteral("false")
            return .bool
        case UInt8(ascii: "n"):
            try scanLiteral("null")
            return .null
        case UInt8(ascii: "-"), 0x30...0x39:
            try scanNumber()
            return .number
        default: throw error("unexpected character")
        }
    }

    private mutating func scanArray(depth: Int) throws(JSONScanError) {
        guard depth <= maxDepth else { throw JSONScanError(reason: .tooDeep(limit: maxDepth), offset: position) }
        try expect(UInt8(ascii: "["), "[")
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            position += 1
            return
        }
        while true {
            skipWhitespace()
            _ = try scanValue(depth: depth)
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"):
                position += 1
                return
            default: throw error("expected , or ]")
            }
        }
    }

    private mutating func scanLiteral(_ literal: StaticString) throws(JSONScanError) {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw error("unexpected end of input") }
        for index in 0..<count where bytes[position + index] != literal.utf8Start[index] {
            throw error("invalid literal")
        }
        position += count
    }

    private mutating func scanNumber() throws(JSONScanError) {
        if peek() == UInt8(ascii: "-") { position += 1 }
        guard let first = peek(), first >= 0x30, first <= 0x39 else { throw error("invalid number") }
        position += 1
        if first != 0x30 { skipDigits() }
        if peek() == UInt8(ascii: ".") {
            position += 1
            guard let digit = peek(), digit >= 0x30, digit <= 0x39 else { throw error("invalid number") }
            skipDigits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            position += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { position += 1 }
            guard let digit = peek(), digit >= 0x30, digit <= 0x39 else { throw error("invalid number") }
            skipDigits()
        }
    }

    private mutating func skipDigits() {
        while let byte = peek(), byte >= 0x30, byte <= 0x39 { position += 1 }
    }

    /// Scans a string starting at its opening quote, validating escapes and UTF-8, without
    /// decoding it. Returns whether it held an escape.
    private mutating func skipString() throws(JSONScanError) -> Bool {
        try expect(UInt8(ascii: "\""), "\"")
        var escaped = false
        while true {
            skipPlainASCII()
            guard position < bytes.count else { throw error("unterminated string") }
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return escaped
            case UInt8(ascii: "\\"):
                escaped = true
                position += 1
                var ignored: [UInt8] = []
                try scanEscape(into: &ignored, decode: false)
            case 0x00..<0x20:
                throw error("control character in string")
            default:
                try skipUTF8Sequence(lead: byte)
            }
        }
    }

    /// Steps over printable ASCII other than `"` and `\\`: nearly every byte of a string, in
    /// a loop that keeps the position in a register.
    private mutating func skipPlainASCII() {
        var index = position
        let end = bytes.count
        while index < end {
            let byte = bytes[index]
            guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") else { break }
            index += 1
        }
        position = index
    }

    /// Scans a string starting at its opening quote, validating escapes and UTF-8.
    /// Returns the decoded text when `decode` is set.
    private mutating func scanString(decode: Bool) throws(JSONScanError) -> String? {
        try expect(UInt8(ascii: "\""), "\"")
        var decoded: [UInt8] = []
        var runStart = position
        while true {
            guard position < bytes.count else { throw error("unterminated string") }
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                if decode { decoded.append(contentsOf: bytes[runStart..<position]) }
                position += 1
                return decode ? String(decoding: decoded, as: UTF8.self) : nil
            case UInt8(ascii: "\\"):
                if decode { decoded.append(contentsOf: bytes[runStart..<position]) }
                position += 1
                try scanEscape(into: &decoded, decode: decode)
                runStart = position
            case 0x00..<0x20:
                throw error("control character in string")
            case 0x20..<0x80:
                position += 1
            default:
                try skipUTF8Sequence(lead: byte)
            }
        }
    }

    private mutating func scanEscape(into decoded: inout [UInt8], decode: Bool) throws(JSONScanError) {
        guard let byte = peek() else { throw error("unterminated escape") }
        position += 1
        let simple: UInt8?
        switch byte {
        case UInt8(ascii: "\""): simple = 0x22
        case UInt8(ascii: "\\"): simple = 0x5C
        case UInt8(ascii: "/"): simple = 0x2F
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"): simple = nil
        default: throw error("invalid escape")
        }
        if let simple {
            if decode { decoded.append(simple) }
            return
        }
        var scalar = try scanHex4()
        if scalar >= 0xD800, scalar <= 0xDBFF {
            // A high surrogate must be followed by an escaped low surrogate.
            guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                bytes[position + 1] == UInt8(ascii: "u")
            else {
                throw error("lone surrogate")
            }
            position += 2
            let low = try scanHex4()
            guard low >= 0xDC00, low <= 0xDFFF else { throw error("lone surrogate") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if scalar >= 0xDC00, scalar <= 0xDFFF {
            throw error("lone surrogate")
        }
        if decode, let unicode = Unicode.Scalar(scalar) {
            decoded.append(contentsOf: Array(String(Character(unicode)).utf8))
        }
    }

    private mutating func scanHex4() throws(JSONScanError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt32
            switch byte {
            case 0x30...0x39: digit = UInt32(byte - 0x30)
            case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    /// Validates one multi-byte UTF-8 sequence: no overlongs, no surrogates, nothing past U+10FFFF.
    private mutating func skipUTF8Sequence(lead: UInt8) throws(JSONScanError) {
        let length: Int
        var minimum: UInt32
        var scalar: UInt32
        switch lead {
        case 0xC2...0xDF:
            length = 2
            minimum = 0x80
            scalar = UInt32(lead & 0x1F)
        case 0xE0...0xEF:
            length = 3
            minimum = 0x800
            scalar = UInt32(lead & 0x0F)
        case 0xF0...0xF4:
            length = 4
            minimum = 0x10000
            scalar = UInt32(lead & 0x07)
        default: throw error("invalid UTF-8")
        }
        guard position + length <= bytes.count else { throw error("truncated UTF-8") }
        for offset in 1..<length {
            let continuation = bytes[position + offset]
            guard continuation & 0xC0 == 0x80 else { throw error("invalid UTF-8") }
            scalar = scalar << 6 | UInt32(continuation & 0x3F)
        }
        guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else {
            throw error("invalid UTF-8")
        }
        position += length
    }
}
