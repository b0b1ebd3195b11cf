/// Watches an OpenAI chat/completions stream event by event: reads the usage chunk and,
/// when the caller did not ask for usage, hides what Sluice's own `include_usage` added
/// (the trailing usage chunk and the `"usage":null` member of every other chunk), so the
/// caller sees exactly what the provider would have sent it.
public struct OpenAIStreamFilter: Sendable {
    public let callerRequestedUsage: Bool
    public private(set) var usage: TokenUsage?
    public private(set) var sawDone = false
    /// Bytes of content seen, for an estimate when the stream ends without usage.
    public private(set) var dataBytes = 0
    /// An `error` object arrived inside the stream.
    public private(set) var sawErrorEvent = false

    public init(callerRequestedUsage: Bool) {
        self.callerRequestedUsage = callerRequestedUsage
    }

    /// Returns the bytes to forward for `event` (empty to drop it).
    public mutating func filter(_ event: SSEEvent) -> [UInt8] {
        guard let data = event.data else { return event.raw }
        if data.elementsEqual("[DONE]".utf8) {
            sawDone = true
            return event.raw
        }
        dataBytes += data.count
        return data.withUnsafeBytes { bytes -> [UInt8] in
            // Not JSON: forwarded untouched; the stream's end decides how it is accounted.
            guard let members = try? JSONScanner.scanObject(bytes, maxDepth: 128) else { return event.raw }
            if members.contains(where: { $0.key == "error" }) { sawErrorEvent = true }
            guard let usageMember = members.first(where: { $0.key == "usage" }) else { return event.raw }
            if usageMember.kind == .object, let found = TokenUsage.openAI(at: usageMember.valueRange, in: bytes) {
                usage = found
            }
            if callerRequestedUsage { return event.raw }
            let choices = members.first(where: { $0.key == "choices" })
            if usageMember.kind == .object, let choices, isEmptyArray(choices.valueRange, in: bytes) {
                return []  // the chunk that exists only to carry usage
            }
            let trimmed = splice(bytes, edits: [(removalRange(of: usageMember, in: bytes), [])])
            return Array("data: ".utf8) + trimmed + [0x0A, 0x0A]
        }
    }

    private func isEmptyArray(_ range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Bool {
        bytes[range].filter { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }.elementsEqual("[]".utf8)
    }
}
