import SluiceAPI
import Testing

@Suite("SSE decoding and the OpenAI stream filter")
struct SSETests {
    func decode(_ chunks: [String], maxEventBytes: Int = 1 << 20) throws -> [SSEEvent] {
        var decoder = SSEDecoder(maxEventBytes: maxEventBytes)
        var events: [SSEEvent] = []
        for chunk in chunks {
            let bytes = Array(chunk.utf8)
            let pushed = bytes.withUnsafeBytes { raw in Result { () throws(SSEDecodingError) in try decoder.push(raw) }
            }
            events += try pushed.get()
        }
        return events
    }

    @Test("splits events on LF, CRLF and CR line endings", arguments: ["\n", "\r\n", "\r"])
    func lineEndings(newline: String) throws {
        let stream =
            "data: one\(newline)\(newline): comment\(newline)event: named\(newline)data: two\(newline)data: "
                + "lines\(newline)\(newline)"
        let events = try decode([stream])
        #expect(events.compactMap(\.data).map { String(decoding: $0, as: UTF8.self) } == ["one", "two\nlines"])
        #expect(events.last?.name == "named")
        let raw: [UInt8] = events.flatMap(\.raw)
        #expect(raw == Array(stream.utf8))
    }

    @Test("gives the same events however the bytes are split")
    func everySplit() throws {
        let stream = "data: {\"a\":1}\r\n\r\ndata: second\r\n\r\ndata: [DONE]\r\n\r\n"
        let whole = try decode([stream])
        #expect(whole.count == 3)
        let bytes = Array(stream)
        for split in 1..<bytes.count {
            let parts = [String(bytes[..<split]), String(bytes[split...])]
            #expect(try decode(parts) == whole, "split at \(split)")
        }
        let oneByOne = try decode(bytes.map { String($0) })
        #expect(oneByOne == whole)
    }

    @Test("bounds the size of one event")
    func bounded() {
        let huge = "data: " + String(repeating: "x", count: 5000)
        #expect(throws: SSEDecodingError.self) { try decode([huge], maxEventBytes: 4096) }
    }

    @Test("keeps an unterminated tail for pass-through")
    func remainder() throws {
        var decoder = SSEDecoder()
        let bytes = Array("data: a\n\ndata: partial".utf8)
        let events = try bytes.withUnsafeBytes { raw in
            try Result { () throws(SSEDecodingError) in try decoder.push(raw) }.get()
        }
        #expect(events.count == 1)
        #expect(String(decoding: decoder.remainder(), as: UTF8.self) == "data: partial")
    }

    static let chunk = #"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#
    static let usageChunk =
        #"{"id":"c","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}}"#

    func event(_ data: String) -> SSEEvent {
        SSEEvent(raw: Array("data: \(data)\n\n".utf8), data: Array(data.utf8), name: nil)
    }

    @Test("hides what include_usage added when the caller did not ask, and reads usage")
    func filterHides() {
        var filter = OpenAIStreamFilter(callerRequestedUsage: false)
        let first = String(decoding: filter.filter(event(Self.chunk)), as: UTF8.self)
        #expect(first == "data: " + #"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}"# + "\n\n")
        #expect(filter.filter(event(Self.usageChunk)).isEmpty)
        #expect(filter.usage == TokenUsage(promptTokens: 11, completionTokens: 3))
        #expect(String(decoding: filter.filter(event("[DONE]")), as: UTF8.self) == "data: [DONE]\n\n")
        #expect(filter.sawDone)
    }

    @Test("passes everything when the caller asked for usage")
    func filterKeeps() {
        var filter = OpenAIStreamFilter(callerRequestedUsage: true)
        #expect(filter.filter(event(Self.chunk)) == event(Self.chunk).raw)
        #expect(filter.filter(event(Self.usageChunk)) == event(Self.usageChunk).raw)
        #expect(filter.usage?.totalTokens == 14)
    }

    @Test("forwards invalid JSON untouched and notices error events")
    func filterOddEvents() {
        var filter = OpenAIStreamFilter(callerRequestedUsage: false)
        #expect(filter.filter(event("{broken")) == event("{broken").raw)
        _ = filter.filter(event(#"{"error":{"message":"overloaded","type":"overloaded_error"}}"#))
        #expect(filter.sawErrorEvent)
        #expect(!filter.sawDone)
    }
}
