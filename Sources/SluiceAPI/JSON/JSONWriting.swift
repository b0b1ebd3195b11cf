/// Appends `text` as a JSON string literal (quotes included), escaping what RFC 8259 requires.
public func appendJSONString(_ text: String, to output: inout [UInt8]) {
    output.append(UInt8(ascii: "\""))
    var text = text
    text.withUTF8 { appendJSONStringContent($0, to: &output) }
    output.append(UInt8(ascii: "\""))
}

/// Appends UTF-8 `bytes` escaped for the inside of a JSON string: runs that need no escape
/// are copied whole, since almost every byte of an identifier or a log line is one of those.
public func appendJSONStringContent(_ bytes: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) {
    var runStart = 0
    for index in 0..<bytes.count {
        let byte = bytes[index]
        guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
        output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
        runStart = index + 1
        output.append(0x5C)
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): output.append(byte)
        case 0x0A: output.append(UInt8(ascii: "n"))
        case 0x0D: output.append(UInt8(ascii: "r"))
        case 0x09: output.append(UInt8(ascii: "t"))
        default:
            output.append(UInt8(ascii: "u"))
            output.append(0x30)
            output.append(0x30)
            output.append(hexDigit(byte >> 4))
            output.append(hexDigit(byte & 0xF))
        }
    }
    output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count]))
}

private func hexDigit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : UInt8(ascii: "a") + nibble - 10 }

/// Appends `value` in decimal, with no intermediate string.
public func appendDecimalInteger(_ value: Int64, to output: inout [UInt8]) {
    appendDecimalInteger(value, minimumDigits: 1, to: &output)
}

/// Appends `value` in decimal, zero-padded to at least `minimumDigits` digits (after a sign).
public func appendDecimalInteger(_ value: Int64, minimumDigits: Int, to output: inout [UInt8]) {
    if value < 0 { output.append(UInt8(ascii: "-")) }
    withDigits(of: value.magnitude) { digits in
        for _ in 0..<max(0, minimumDigits - digits.count) { output.append(0x30) }
        output.append(contentsOf: digits)
    }
}

/// Hands `body` the ASCII digits of `value` in `radix` (2 to 16, lowercase letters), with
/// no intermediate string: 64 digits hold any UInt64 in any of them, written backwards into
/// scoped stack space. Decimal for JSON numbers and response heads, hexadecimal for chunk sizes.
public func withDigits<Result>(of value: UInt64, radix: UInt64 = 10, _ body: (UnsafeBufferPointer<UInt8>) -> Result)
    -> Result
{
    precondition((2...16).contains(radix), "radix out of range")
    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { digits in
        var remaining = value
        var start = 64
        repeat {
            start -= 1
            let digit = UInt8(remaining % radix)
            digits[start] = digit < 10 ? 0x30 + digit : 0x61 + digit - 10
            remaining /= radix
        } while remaining > 0
        return body(UnsafeBufferPointer(rebasing: digits[start..<64]))
    }
}

/// Appends `value` as a fixed-point JSON number with at most `places` decimals, trailing
/// zeros dropped and no exponent (which some log pipelines parse badly). A value that is
/// not finite is written as 0; one too large for fixed point as its whole part, held
/// within ±9e18 so that no figure can trap the conversion to an integer.
public func appendFixedPoint(_ value: Double, places: Int, to output: inout [UInt8]) {
    guard value.isFinite else {
        output.append(0x30)
        return
    }
    var scale: Int64 = 1
    for _ in 0..<places { scale *= 10 }
    let scaled = (abs(value) * Double(scale)).rounded()
    guard scaled < 9.0e18 else {
        appendDecimalInteger(Int64(min(max(value, -9.0e18), 9.0e18)), to: &output)
        return
    }
    let units = Int64(scaled)
    if value < 0 && units > 0 { output.append(UInt8(ascii: "-")) }
    appendDecimalInteger(units / scale, to: &output)
    var fraction = units % scale
    guard fraction > 0 else { return }
    var digits = places
    while fraction % 10 == 0 {
        fraction /= 10
        digits -= 1
    }
    output.append(UInt8(ascii: "."))
    appendDecimalInteger(fraction, minimumDigits: digits, to: &output)
}

/// `text` as a JSON string literal.
public func jsonString(_ text: String) -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(text.utf8.count + 2)
    appendJSONString(text, to: &bytes)
    return String(decoding: bytes, as: UTF8.self)
}

/// Replaces byte ranges of a document. Edits must not overlap; they may be given in any order.
public func splice(_ source: UnsafeRawBufferPointer, edits: [(range: Range<Int>, replacement: [UInt8])]) -> [UInt8] {
    let ordered = edits.sorted { $0.range.lowerBound < $1.range.lowerBound }
    var output: [UInt8] = []
    output.reserveCapacity(source.count + ordered.reduce(0) { $0 + $1.replacement.count })
    var cursor = 0
    for edit in ordered {
        output.append(contentsOf: source[cursor..<edit.range.lowerBound])
        output.append(contentsOf: edit.replacement)
        cursor = edit.range.upperBound
    }
    output.append(contentsOf: source[cursor..<source.count])
    return output
}

/// The range to cut to remove `member` from the object it belongs to, together with the
/// comma that joins it to a neighbour, so the object stays valid JSON.
public func removalRange(of member: JSONMember, in bytes: UnsafeRawBufferPointer) -> Range<Int> {
    func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
    var end = member.memberRange.upperBound
    while end < bytes.count, isSpace(bytes[end]) { end += 1 }
    if end < bytes.count, bytes[end] == UInt8(ascii: ",") {
        end += 1
        while end < bytes.count, isSpace(bytes[end]) { end += 1 }
        return member.memberRange.lowerBound..<end
    }
    // The last member: take the comma before it instead.
    var start = member.memberRange.lowerBound
    while start > 0, isSpace(bytes[start - 1]) { start -= 1 }
    if start > 0, bytes[start - 1] == UInt8(ascii: ",") { start -= 1 }
    return start..<member.memberRange.upperBound
}
