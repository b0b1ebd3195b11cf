/// Watches an OpenAI chat/completions stream event by event: reads the usage chunk and,
/// when the caller did not ask for usage, hides what Sluice's own `include_usage` added
/// (the trailing usage chunk and the `"usage":null` member of every other chunk), so the
/// caller sees exactly what the provider would have sent it.
///
/// A Responses API stream passes as it is (its usage is always there, in its last event):
/// the filter only reads it, and takes `response.completed` (or `response.incomplete`) as
/// the stream's proper end, where chat streams end with `[DONE]`.
public struct OpenAIStreamFilter: Sendable {
    public let callerRequestedUsage: Bool
    public let responsesAPI: Bool
    public private(set) var usage: TokenUsage?
    public private(set) var sawDone = false
    /// Bytes of content seen, for an estimate when the stream ends without usage.
    public private(set) var dataBytes = 0
    /// An `error` object arrived inside the stream.
    public private(set) var sawErrorEvent = false

    public init(callerRequestedUsage: Bool, responsesAPI: Bool = false) {
        self.callerRequestedUsage = callerRequestedUsage
        self.responsesAPI = responsesAPI
    }

    /// Returns the bytes to forward for `event` (empty to drop it).
    public mutating func filter(_ event: SSEEvent) -> [UInt8] {
        guard let data = event.data else { return event.raw }
        if responsesAPI {
            read(responsesEvent: data)
            return event.raw
        }
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

    /// Reads one Responses API event: its usage from the terminal events' `response`
    /// object, the text of deltas for an estimate, and failures.
    private mutating func read(responsesEvent data: [UInt8]) {
        data.withUnsafeBytes { bytes in
            guard let members = try? JSONScanner.scanObject(bytes, maxDepth: 128),
                let typeMember = members.first(where: { $0.key == "type" }),
                let type = JSONScanner.decodeString(at: typeMember.valueRange, in: bytes)
            else { return }
            switch type {
            case "response.completed", "response.incomplete", "response.failed":
                // The stream ended as the API ends one; a failed response is an error all the same.
                sawDone = true
                if type == "response.failed" { sawErrorEvent = true }
                guard let response = members.first(where: { $0.key == "response" }), response.kind == .object,
                    let usageMember = JSONScanner.members(ofObjectAt: response.valueRange, in: bytes).first(where: {
                        $0.key == "usage"
                    }),
                    usageMember.kind == .object
                else { return }
                usage = TokenUsage.openAI(at: usageMember.valueRange, in: bytes)
            case "error":
                sawErrorEvent = true
            default:
                if type.hasSuffix(".delta") { dataBytes += data.count }
            }
        }
    }

    private func isEmptyArray(_ range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Bool {
        bytes[range].filter { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }.elementsEqual("[]".utf8)
    }
}
