/// Appends `text` as a JSON string literal (quotes included), escaping what RFC 8259 requires.
public func appendJSONString(_ text: String, to output: inout [UInt8]) {
    output.append(UInt8(ascii: "\""))
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "\""): output.append(contentsOf: [0x5C, 0x22])
        case UInt8(ascii: "\\"): output.append(contentsOf: [0x5C, 0x5C])
        case 0x0A: output.append(contentsOf: [0x5C, UInt8(ascii: "n")])
        case 0x0D: output.append(contentsOf: [0x5C, UInt8(ascii: "r")])
        case 0x09: output.append(contentsOf: [0x5C, UInt8(ascii: "t")])
        case 0x00..<0x20:
            let hex = Array("0123456789abcdef".utf8)
            output.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
        default: output.append(byte)
        }
    }
    output.append(UInt8(ascii: "\""))
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
