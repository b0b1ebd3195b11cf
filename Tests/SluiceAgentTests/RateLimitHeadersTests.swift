import Testing

@testable import SluiceAgent

@Suite("Rate-limit headers")
struct RateLimitHeadersTests {
    @Test("reset times are written in OpenAI's duration style")
    func durations() {
        let second: Int64 = 1_000_000_000
        let cases: [(Int64, String)] = [
            (-5, "0s"), (0, "0s"), (1, "1ms"), (20_000_000, "20ms"), (999_000_000, "999ms"),
            (second, "1s"), (second + 1, "2s"), (6 * second, "6s"), (59 * second, "59s"), (60 * second, "1m0s"),
            (90 * second, "1m30s"), (3600 * second, "1h0m0s"), ((11 * 3600 + 59 * 60) * second, "11h59m0s"),
            (49 * 3600 * second + 1, "49h0m1s"),
        ]
        for (nanoseconds, text) in cases {
            #expect(RateLimitHeaders.duration(nanoseconds) == text, "\(nanoseconds) ns")
        }
    }
}
