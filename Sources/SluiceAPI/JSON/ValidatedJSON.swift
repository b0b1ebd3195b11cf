/// Walks JSON that ``JSONScanner`` has already validated, without validating it again: a
/// value's end is found by matching brackets and quotes, nothing is decoded that is not asked
/// for, and nothing is allocated.
///
/// Reading a prompt's texts walked each message twice with the validating scanner, whose
/// duplicate-key and depth checks, done once already, cost more than the filters themselves.
/// Malformed input (a range that was not validated) ends a walk early; it never reads outside
/// the range or stops advancing.
public enum ValidatedJSON {
    /// Calls `body` with each element of the array at `range`, in order, until it returns false.
    public static func forEachElement(
        ofArrayAt range: Range<Int>, in bytes: UnsafeRawBufferPointer,
        _ body: (_ range: Range<Int>, _ kind: JSONValueKind) -> Bool
    ) {
        var walker = Walker(bytes: bytes, position: range.lowerBound, end: range.upperBound)
        guard walker.take(UInt8(ascii: "[")) else { return }
        while true {
            walker.skipWhitespace()
            guard let value = walker.skipValue() else { return }
            guard body(value.range, value.kind) else { return }
            walker.skipWhitespace()
            guard walker.take(UInt8(ascii: ",")) else { return }
        }
    }

    /// The value of the member named `name` in the object at `range`, nil when it has none.
    /// A key written with escapes (`"cont\u0065nt"`) is found by what it decodes to.
    public static func value(named name: StaticString, inObjectAt range: Range<Int>, in bytes: UnsafeRawBufferPointer)
        -> JSONNamedValue?
    {
        var walker = Walker(bytes: bytes, position: range.lowerBound, end: range.upperBound)
        guard walker.take(UInt8(ascii: "{")) else { return nil }
        while true {
            walker.skipWhitespace()
            guard let key = walker.skipValue(), key.kind == .string else { return nil }
            walker.skipWhitespace()
            guard walker.take(UInt8(ascii: ":")) else { return nil }
            walker.skipWhitespace()
            guard let value = walker.skipValue() else { return nil }
            if keyEquals(key.range, name, in: bytes) { return JSONNamedValue(range: value.range, kind: value.kind) }
            walker.skipWhitespace()
            guard walker.take(UInt8(ascii: ",")) else { return nil }
        }
    }

    /// Calls `body` with the UTF-8 of the string whose quoted bytes are `range`: the bytes
    /// themselves when it has no escapes (the scanner validated them as UTF-8), a decoded
    /// copy otherwise. Nil when `range` is not a string.
    public static func withStringBytes<Result>(
        at range: Range<Int>, in bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Result
    ) -> Result? {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\"") else { return nil }
        let inner = UnsafeRawBufferPointer(rebasing: bytes[(range.lowerBound + 1)..<(range.upperBound - 1)])
        guard inner.contains(UInt8(ascii: "\\")) else { return body(inner) }
        guard var text = JSONScanner.decodeString(at: range, in: bytes) else { return nil }
        return text.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    private static func keyEquals(_ quoted: Range<Int>, _ name: StaticString, in bytes: UnsafeRawBufferPointer)
        -> Bool
    {
        let raw = UnsafeRawBufferPointer(rebasing: bytes[(quoted.lowerBound + 1)..<(quoted.upperBound - 1)])
        let expected = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        if raw.elementsEqual(expected) { return true }
        guard raw.contains(UInt8(ascii: "\\")) else { return false }
        return JSONScanner.decodeString(at: quoted, in: bytes) == name.description
    }

    private struct Walker {
        let bytes: UnsafeRawBufferPointer
        var position: Int
        let end: Int

        init(bytes: UnsafeRawBufferPointer, position: Int, end: Int) {
            self.bytes = bytes
            self.position = position
            self.end = min(end, bytes.count)
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard position < end, bytes[position] == byte else { return false }
            position += 1
            return true
        }

        mutating func skipWhitespace() {
            while position < end {
                switch bytes[position] {
                case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): position += 1
                default: return
                }
            }
        }

        /// Steps over one value; its bytes and kind, or nil at the end or on malformed input.
        mutating func skipValue() -> (range: Range<Int>, kind: JSONValueKind)? {
            guard position < end else { return nil }
            let start = position
            let kind: JSONValueKind
            switch bytes[position] {
            case UInt8(ascii: "\""):
                guard skipString() else { return nil }
                kind = .string
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                kind = bytes[position] == UInt8(ascii: "{") ? .object : .array
                guard skipContainer() else { return nil }
            case UInt8(ascii: "t"), UInt8(ascii: "f"):
                kind = .bool
                skipScalar()
            case UInt8(ascii: "n"):
                kind = .null
                skipScalar()
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                kind = .number
                skipScalar()
            default:
                return nil
            }
            return (start..<position, kind)
        }

        /// From an opening quote to just past its closing one.
        private mutating func skipString() -> Bool {
            position += 1
            while position < end {
                switch bytes[position] {
                case UInt8(ascii: "\""):
                    position += 1
                    return true
                case UInt8(ascii: "\\"): position += 2
                default: position += 1
                }
            }
            return false
        }

        /// From `{` or `[` to just past the bracket that closes it, strings stepped over whole.
        private mutating func skipContainer() -> Bool {
            var depth = 0
            while position < end {
                switch bytes[position] {
                case UInt8(ascii: "\""):
                    guard skipString() else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        position += 1
                        return true
                    }
                default:
                    break
                }
                position += 1
            }
            return false
        }

        /// A number or literal: up to the next delimiter.
        private mutating func skipScalar() {
            while position < end {
                switch bytes[position] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: " "), UInt8(ascii: "\n"),
                    UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                    return
                default:
                    position += 1
                }
            }
        }
    }
}
