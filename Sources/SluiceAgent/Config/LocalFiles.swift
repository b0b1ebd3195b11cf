import SluicePolicy

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `UTC`, a fixed offset (`+05:30`), or an IANA name read from the system's zoneinfo
/// (`TZDIR` in `environment`, else /usr/share/zoneinfo); nil when it is none of them.
func resolveTimeZone(_ name: String, environment: [String: String]) -> TimeZoneRules? {
    try? TimeZoneRules.resolve(name, directory: environment["TZDIR"] ?? "/usr/share/zoneinfo", readFile: readWholeFile)
}

/// `2027-01-31` (midnight UTC) or `2027-01-31T12:00:00Z` / `…+02:00`, as Unix seconds.
func parseTimestamp(_ text: String) -> Int64? {
    let bytes = Array(text.utf8)
    func number(_ range: Range<Int>) -> Int64? {
        guard range.upperBound <= bytes.count else { return nil }
        var value: Int64 = 0
        for byte in bytes[range] {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            value = value * 10 + Int64(byte - 0x30)
        }
        return value
    }
    guard bytes.count >= 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
        let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
        (1...12).contains(month), (1...31).contains(day)
    else { return nil }
    let date = CivilDate(year: year, month: month, day: day)
    guard CivilDate(dayNumber: date.dayNumber) == date else { return nil }  // 2027-02-30
    var seconds = date.dayNumber * 86_400
    if bytes.count == 10 { return seconds }
    guard bytes.count >= 20, bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: " "),
        bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
        let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
        hour < 24, minute < 60, second < 61
    else { return nil }
    seconds += hour * 3600 + minute * 60 + second
    var rest = bytes[19...]
    if rest.first == UInt8(ascii: ".") {
        rest = rest.dropFirst()
        while let byte = rest.first, byte >= 0x30, byte <= 0x39 { rest = rest.dropFirst() }
    }
    let zone = String(decoding: rest, as: UTF8.self)
    guard let rules = TimeZoneRules(fixedOffset: zone) else { return nil }
    return seconds - rules.offset(at: 0)
}

/// The whole file, or nil if it cannot be read (at most 16 MiB).
func readWholeFile(_ path: String) -> [UInt8]? {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while bytes.count < 16 << 20 {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0, errno == EINTR { continue }
        guard count >= 0 else { return nil }
        if count == 0 { return bytes }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return nil
}
