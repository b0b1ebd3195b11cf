import SluicePolicy
import Testing

@Suite("Time zones for budget windows")
struct TimeZoneTests {
    @Test("fixed offsets parse and place midnight correctly")
    func fixedOffsets() throws {
        let india = try #require(TimeZoneRules(fixedOffset: "+05:30"))
        #expect(india.offset(at: 0) == 19_800)
        #expect(try #require(TimeZoneRules(fixedOffset: "UTC-08:00")).offset(at: 0) == -28_800)
        for bad in ["+5:30", "05:30", "+15:00", "+05:60", "Europe/Berlin"] {
            #expect(TimeZoneRules(fixedOffset: bad) == nil)
        }
        // 1970-01-01T18:29:59Z is 23:59:59 local: still day 0; a second later, day 1.
        #expect(india.dayNumber(at: 66_599) == 0 && india.dayNumber(at: 66_600) == 1)
        #expect(india.startOfNextDay(after: 0) == 66_600)
    }

    @Test("a TZif file (Europe/Berlin) gives summer time and local midnights across the change")
    func tzif() throws {
        let bytes = try #require(readFile("/usr/share/zoneinfo/Europe/Berlin"), "tzdata must be installed")
        let berlin = try TimeZoneRules(name: "Europe/Berlin", tzif: bytes)
        // 2026-03-29 01:00:00Z: clocks go from 02:00 CET to 03:00 CEST.
        let change = CivilDate(year: 2026, month: 3, day: 29).dayNumber * 86_400 + 3600
        #expect(berlin.offset(at: change - 1) == 3600 && berlin.offset(at: change) == 7200)
        // Local midnight of 2026-03-30 (CEST) is 22:00Z on the 29th.
        #expect(berlin.startOfNextDay(after: change) == change + 21 * 3600)
        // Local month starts: 2026-04-01 00:00 CEST is 2026-03-31T22:00Z.
        #expect(
            berlin.startOfNextMonth(after: change) == CivilDate(year: 2026, month: 3, day: 31).dayNumber * 86_400 + 22
                * 3600)
        #expect(throws: TimeZoneError.self) {
            try TimeZoneRules(name: "junk", tzif: Array("TZif2 but not really".utf8))
        }
        #expect(throws: TimeZoneError.self) { try TimeZoneRules(name: "cut", tzif: Array(bytes.prefix(60))) }
    }
}

#if canImport(Glibc)
    import Glibc
#endif

private func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count <= 0 { break }
        bytes.append(contentsOf: buffer[0..<count])
    }
    return bytes
}
