/// How UTC maps to the local time that daily and monthly budgets roll over in.
///
/// Pure data: either a fixed offset, or the transition table of a TZif file (RFC 8536) that
/// the caller read from disk and handed over as bytes. Instants are whole seconds since the
/// Unix epoch.
public struct TimeZoneRules: Sendable, Equatable {
    /// The name given in configuration, for messages.
    public let name: String
    /// Transition instants, ascending, and the UTC offset (seconds) in force from each.
    private let transitions: [Int64]
    private let offsets: [Int32]
    /// Offset before the first transition (or always, for a fixed zone).
    private let initialOffset: Int32

    public static let utc = TimeZoneRules(name: "UTC", fixedOffsetSeconds: 0)

    public init(name: String, fixedOffsetSeconds: Int32) {
        self.name = name
        transitions = []
        offsets = []
        initialOffset = fixedOffsetSeconds
    }

    /// Parses `UTC`, `Z`, `+05:30`, `-08:00` or `UTC+02:00`. Named zones need ``init(name:tzif:)``.
    public init?(fixedOffset text: String) {
        var rest = Substring(text)
        if rest == "UTC" || rest == "Z" || rest == "GMT" {
            self = .utc
            return
        }
        if rest.hasPrefix("UTC") { rest = rest.dropFirst(3) }
        guard let sign = rest.first, sign == "+" || sign == "-" else { return nil }
        let parts = rest.dropFirst().split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let hours = Int32(parts[0]), let minutes = Int32(parts[1]),
            parts[0].count == 2, parts[1].count == 2, (0...14).contains(hours), (0...59).contains(minutes)
        else { return nil }
        let seconds = (hours * 3600 + minutes * 60) * (sign == "-" ? -1 : 1)
        self.init(name: text, fixedOffsetSeconds: seconds)
    }

    /// Builds the rules from a TZif file's bytes (version 2 or later: the 64-bit table).
    ///
    /// Instants after the file's last transition keep its last offset; distributions ship
    /// tables well past the present, so budgets stay right for years of uptime.
    public init(name: String, tzif bytes: [UInt8]) throws(TimeZoneError) {
        var reader = TZifReader(bytes: bytes)
        let table = try reader.readTable()
        self.name = name
        transitions = table.transitions
        offsets = table.offsets
        initialOffset = table.initialOffset
    }

    /// The UTC offset in force at `instant`.
    public func offset(at instant: Int64) -> Int64 {
        guard !transitions.isEmpty else { return Int64(initialOffset) }
        // Binary search for the last transition at or before `instant`.
        var low = 0
        var high = transitions.count
        while low < high {
            let middle = (low + high) / 2
            if transitions[middle] <= instant { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? Int64(initialOffset) : Int64(offsets[low - 1])
    }

    /// The local calendar day (days since 1970-01-01 local) containing `instant`.
    public func dayNumber(at instant: Int64) -> Int64 {
        floorDivide(instant + offset(at: instant), 86_400)
    }

    /// The local calendar month containing `instant`, as `year * 12 + (month - 1)`.
    public func monthNumber(at instant: Int64) -> Int64 {
        let date = CivilDate(dayNumber: dayNumber(at: instant))
        return date.year * 12 + (date.month - 1)
    }

    /// The first instant of the local day containing `instant`.
    public func startOfDay(containing instant: Int64) -> Int64 {
        localMidnight(dayNumber: dayNumber(at: instant))
    }

    /// The first instant of the local month containing `instant`.
    public func startOfMonth(containing instant: Int64) -> Int64 {
        let date = CivilDate(dayNumber: dayNumber(at: instant))
        return localMidnight(dayNumber: CivilDate(year: date.year, month: date.month, day: 1).dayNumber)
    }

    /// The first instant of the local day after the one containing `instant`.
    public func startOfNextDay(after instant: Int64) -> Int64 {
        localMidnight(dayNumber: dayNumber(at: instant) + 1)
    }

    /// The first instant of the local month after the one containing `instant`.
    public func startOfNextMonth(after instant: Int64) -> Int64 {
        let date = CivilDate(dayNumber: dayNumber(at: instant))
        let next =
            date.month == 12
            ? CivilDate(year: date.year + 1, month: 1, day: 1)
            : CivilDate(year: date.year, month: date.month + 1, day: 1)
        return localMidnight(dayNumber: next.dayNumber)
    }

    /// The UTC instant of local 00:00 on `dayNumber`; the offset is looked up where that
    /// midnight falls, so a DST change on the day itself is honoured.
    private func localMidnight(dayNumber: Int64) -> Int64 {
        let localSeconds = dayNumber * 86_400
        let guess = localSeconds - offset(at: localSeconds)
        return localSeconds - offset(at: guess)
    }
}

extension TimeZoneRules {
    /// The one way both ends turn a `time_zone` setting into rules: `UTC`, a fixed offset
    /// (`+05:30`), or an IANA name (`Europe/Berlin`) read through `readFile` from
    /// `directory`. The name is checked before any file is read, so `Etc/../../etc/passwd`
    /// never reaches the file system; a name with no zone file here is refused.
    public static func resolve(
        _ name: String, directory: String,
        readFile: (String) -> [UInt8]?
    ) throws(TimeZoneError) -> TimeZoneRules {
        if name == "UTC" { return .utc }
        if let fixed = TimeZoneRules(fixedOffset: name) { return fixed }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, name.utf8.count <= 64,
            parts.allSatisfy({ part in
                !part.isEmpty && part != "." && part != ".." && part.first != "-"
                    && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-+".contains($0)) }
            })
        else {
            throw TimeZoneError("must be UTC, an offset like +05:30, or a zone name like Europe/Berlin")
        }
        guard let bytes = readFile("\(directory)/\(name)") else {
            throw TimeZoneError("no time zone \"\(name)\" in \(directory) (is tzdata installed?)")
        }
        return try TimeZoneRules(name: name, tzif: bytes)
    }
}

/// Why a time zone file was refused.
public struct TimeZoneError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A proleptic Gregorian date (Howard Hinnant's days-from-civil algorithms).
public struct CivilDate: Sendable, Equatable {
    public var year: Int64
    public var month: Int64
    public var day: Int64

    public init(year: Int64, month: Int64, day: Int64) {
        self.year = year
        self.month = month
        self.day = day
    }

    public init(dayNumber: Int64) {
        let z = dayNumber + 719_468
        let era = floorDivide(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthPrime = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * monthPrime + 2) / 5 + 1
        month = monthPrime < 10 ? monthPrime + 3 : monthPrime - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    /// Days since 1970-01-01.
    public var dayNumber: Int64 {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = floorDivide(shiftedYear, 400)
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
    let quotient = value / divisor
    return (value % divisor != 0 && (value < 0) != (divisor < 0)) ? quotient - 1 : quotient
}

/// Reads the version-2+ (64-bit) data block of a TZif file.
private struct TZifReader {
    let bytes: [UInt8]
    var position = 0

    mutating func readTable() throws(TimeZoneError) -> (transitions: [Int64], offsets: [Int32], initialOffset: Int32) {
        var header = try readHeader()
        guard header.version >= 2 else {
            throw TimeZoneError("TZif version 1 files are not supported; a v2+ file is needed")
        }
        // Skip the 32-bit block: its size follows from the v1 header's counts.
        position += header.blockSize(timeSize: 4)
        header = try readHeader()
        guard header.typeCount > 0 else { throw TimeZoneError("the TZif file defines no local time types") }
        var transitions: [Int64] = []
        transitions.reserveCapacity(header.transitionCount)
        for _ in 0..<header.transitionCount { transitions.append(try readInt64()) }
        var indices: [Int] = []
        for _ in 0..<header.transitionCount { indices.append(Int(try readByte())) }
        var typeOffsets: [Int32] = []
        for _ in 0..<header.typeCount {
            typeOffsets.append(try readInt32())
            _ = try readByte()  // isdst
            _ = try readByte()  // abbreviation index
        }
        guard indices.allSatisfy({ $0 < typeOffsets.count }) else {
            throw TimeZoneError("the TZif file has a transition to a missing type")
        }
        for index in 1..<max(1, transitions.count) where transitions[index] <= transitions[index - 1] {
            throw TimeZoneError("the TZif file's transitions are not ascending")
        }
        // RFC 8536 3.2: the first type is in force before the first transition.
        return (transitions, indices.map { typeOffsets[$0] }, typeOffsets[0])
    }

    struct Header {
        var version: Int
        var isutCount, isstdCount, leapCount, transitionCount, typeCount, charCount: Int

        func blockSize(timeSize: Int) -> Int {
            transitionCount * timeSize + transitionCount + typeCount * 6 + charCount + leapCount * (timeSize + 4)
                + isstdCount + isutCount
        }
    }

    mutating func readHeader() throws(TimeZoneError) -> Header {
        guard position + 44 <= bytes.count, bytes[position..<position + 4].elementsEqual("TZif".utf8) else {
            throw TimeZoneError("not a TZif file")
        }
        let versionByte = bytes[position + 4]
        let version = versionByte == 0 ? 1 : Int(versionByte) - 0x30
        position += 20
        var counts: [Int] = []
        for _ in 0..<6 {
            let count = Int(try readInt32())
            guard count >= 0, count < 1_000_000 else { throw TimeZoneError("the TZif file has an implausible count") }
            counts.append(count)
        }
        return Header(
            version: version, isutCount: counts[0], isstdCount: counts[1], leapCount: counts[2],
            transitionCount: counts[3], typeCount: counts[4], charCount: counts[5])
    }

    mutating func readByte() throws(TimeZoneError) -> UInt8 {
        guard position < bytes.count else { throw TimeZoneError("the TZif file is truncated") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func readInt32() throws(TimeZoneError) -> Int32 {
        var value: UInt32 = 0
        for _ in 0..<4 { value = value << 8 | UInt32(try readByte()) }
        return Int32(bitPattern: value)
    }

    mutating func readInt64() throws(TimeZoneError) -> Int64 {
        var value: UInt64 = 0
        for _ in 0..<8 { value = value << 8 | UInt64(try readByte()) }
        return Int64(bitPattern: value)
    }
}
