/// One server-sent event: its raw bytes, exactly as received (terminating blank line
/// included), and its joined `data` payload.
public struct SSEEvent: Sendable, Equatable {
    public var raw: [UInt8]
    /// The `data` lines joined by `\n`; nil for events with no data (comments, keep-alives).
    public var data: [UInt8]?
    /// The `event:` field, when present (Anthropic names every event).
    public var name: String?

    public init(raw: [UInt8], data: [UInt8]?, name: String?) {
        self.raw = raw
        self.data = data
        self.name = name
    }
}

/// Why a stream could not be decoded.
public struct SSEDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Splits a byte stream into server-sent events (WHATWG rules: lines end in `\n`, `\r\n`
/// or `\r`; a blank line ends an event; `:` starts a comment).
///
/// Memory is bounded: an event larger than `maxEventBytes` is an error, never a bigger buffer.
public struct SSEDecoder: Sendable {
    public let maxEventBytes: Int
    private var pending: [UInt8] = []
    /// Bytes of `pending` already split into lines of the current event.
    private var scanned = 0
    private var data: [UInt8]?
    private var name: String?
    /// The previous chunk ended in `\r`, so a leading `\n` belongs to that line ending.
    private var skipLeadingNewline = false

    public init(maxEventBytes: Int = 1 << 20) {
        self.maxEventBytes = maxEventBytes
    }

    /// Feeds bytes our own relay produced (so well formed); returns the events they complete,
    /// none if they were not.
    public mutating func events(in bytes: [UInt8]) -> [SSEEvent] {
        (try? bytes.withUnsafeBytes { buffer throws(SSEDecodingError) in try push(buffer) }) ?? []
    }

    /// Feeds bytes; returns the events they complete.
    public mutating func push(_ bytes: UnsafeRawBufferPointer) throws(SSEDecodingError) -> [SSEEvent] {
        var input = bytes[...]
        if skipLeadingNewline, let first = input.first {
            skipLeadingNewline = false
            if first == 0x0A {
                pending.append(first)
                input = input.dropFirst()
                scanned = pending.count
            }
        }
        pending.append(contentsOf: input)
        var events: [SSEEvent] = []
        var lineStart = scanned
        var index = scanned
        var eventStart = 0
        while index < pending.count {
            let byte = pending[index]
            guard byte == 0x0A || byte == 0x0D else {
                index += 1
                continue
            }
            var lineEnd = index + 1
            if byte == 0x0D {
                if index + 1 < pending.count {
                    if pending[index + 1] == 0x0A { lineEnd += 1 }
                } else {
                    skipLeadingNewline = true
                }
            }
            let line = lineStart..<index
            if line.isEmpty {
                if let event = finishEvent(raw: eventStart..<lineEnd) { events.append(event) }
                eventStart = lineEnd
            } else {
                processLine(line)
            }
            lineStart = lineEnd
            index = lineEnd
        }
        if eventStart > 0 {
            pending.removeFirst(eventStart)
            lineStart -= eventStart
        }
        scanned = lineStart
        if pending.count > maxEventBytes {
            throw SSEDecodingError(message: "an event exceeds \(maxEventBytes) bytes")
        }
        return events
    }

    /// Bytes of an event that never ended (no trailing blank line), for pass-through at end of stream.
    public mutating func remainder() -> [UInt8] {
        defer {
            pending.removeAll()
            scanned = 0
            data = nil
            name = nil
        }
        return pending
    }

    private mutating func processLine(_ line: Range<Int>) {
        let bytes = pending[line]
        if bytes.first == UInt8(ascii: ":") { return }
        let colon = bytes.firstIndex(of: UInt8(ascii: ":"))
        let field = bytes[bytes.startIndex..<(colon ?? bytes.endIndex)]
        var value = colon.map { bytes[($0 + 1)...] } ?? bytes[bytes.endIndex...]
        if value.first == 0x20 { value = value.dropFirst() }
        if field.elementsEqual("data".utf8) {
            if data == nil {
                data = Array(value)
            } else {
                data!.append(0x0A)
                data!.append(contentsOf: value)
            }
        } else if field.elementsEqual("event".utf8) {
            name = String(decoding: value, as: UTF8.self)
        }
    }

    private mutating func finishEvent(raw: Range<Int>) -> SSEEvent? {
        defer {
            data = nil
            name = nil
        }
        return SSEEvent(raw: Array(pending[raw]), data: data, name: name)
    }
}
