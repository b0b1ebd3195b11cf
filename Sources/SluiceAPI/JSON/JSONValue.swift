/// A JSON document as a value, for translating between provider dialects, where a body is
/// rebuilt rather than spliced. Numbers keep their exact text and object members their
/// order, so a value written back is the value read. Parsing is ``JSONScanner``'s: strict,
/// depth-limited, and duplicate keys are refused.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's text as it appeared (or as written): no rounding through Double.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)):
            a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    /// Parses one JSON object (the shape of every request and response body here), with
    /// the scanner's strictness and depth limit.
    public static func parseObject(_ bytes: [UInt8], maxDepth: Int = 64) throws(JSONScanError) -> JSONValue {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONScanError) -> JSONValue in
                let members = try JSONScanner.scanObject(raw, maxDepth: maxDepth)
                return .object(members.map { ($0.key, value(at: $0.valueRange, kind: $0.kind, in: raw)) })
            }
        }
        return try result.get()
    }

    private static func value(at range: Range<Int>, kind: JSONValueKind, in bytes: UnsafeRawBufferPointer) -> JSONValue
    {
        switch kind {
        case .null: return .null
        case .bool: return .bool(bytes[range.lowerBound] == UInt8(ascii: "t"))
        case .number: return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self))
        case .string: return .string(JSONScanner.decodeString(at: range, in: bytes) ?? "")
        case .array:
            return .array(
                JSONScanner.elements(ofArrayAt: range, in: bytes).map { value(at: $0.range, kind: $0.kind, in: bytes) })
        case .object:
            return .object(
                JSONScanner.members(ofObjectAt: range, in: bytes).map {
                    ($0.key, value(at: $0.valueRange, kind: $0.kind, in: bytes))
                })
        }
    }

    // MARK: - Reading

    /// The first member named `key` of an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    public var objectValue: [(key: String, value: JSONValue)]? {
        if case .object(let members) = self { return members }
        return nil
    }

    public var intValue: Int? {
        if case .number(let text) = self { return Int(text) }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let flag) = self { return flag }
        return nil
    }

    /// An integer as a JSON number.
    public static func int(_ value: Int) -> JSONValue { .number(String(value)) }

    // MARK: - Writing

    /// The value as compact JSON.
    public var bytes: [UInt8] {
        var output: [UInt8] = []
        write(to: &output)
        return output
    }

    /// Appends the value as compact JSON to `output`.
    public func write(to output: inout [UInt8]) {
        switch self {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let flag): output.append(contentsOf: (flag ? "true" : "false").utf8)
        case .number(let text): output.append(contentsOf: text.utf8)
        case .string(let text): appendJSONString(text, to: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                element.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                appendJSONString(member.key, to: &output)
                output.append(UInt8(ascii: ":"))
                member.value.write(to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }
}
