import SluiceControl
import SluiceTestSupport
import SluiceWire
import Testing

@Suite("usage retention")
struct UsageRetentionTests {
    @Test("settings that would lose what a budget needs are refused, naming the flag")
    func validation() throws {
        try UsageRetention().validate()
        #expect(throws: ControlStartError.self) { try UsageRetention(hourlyDays: 31).validate() }
        do {
            try UsageRetention(hourlyDays: 31).validate()
        } catch {
            #expect(error.message.contains("--hourly-usage-retention-days") && error.message.contains("monthly"))
        }
        do {
            try UsageRetention(hourlyDays: 60, dailyDays: 40).validate()
            Issue.record("daily cells kept less than hourly ones were accepted")
        } catch {
            #expect(error.message.contains("--daily-usage-retention-days"))
        }
        #expect(throws: ControlStartError.self) { try UsageRetention(markDays: 0).validate() }
    }

    @Test("the job deletes everything past the retention in batches, and nothing within it")
    func job() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let hour: Int64 = 1_795_435_200
        let store = try SQLiteStore(path: directory.file("sluice.db"), clock: { hour })
        try await store.migrate()
        // 2,500 old hours (more than one batch) and one recent.
        var deltas: [UsageDelta] = []
        for index in 0..<2_500 {
            deltas.append(
                UsageDelta(
                    hour: hour - 40 * 86_400 - Int64(index) * 3600, team: "ml", service: "shop/checkout",
                    keyID: "k1", model: "m", requests: 1, promptTokens: 1, completionTokens: 1, costPicoUSD: 1))
        }
        deltas.append(
            UsageDelta(
                hour: hour, team: "ml", service: "shop/checkout", keyID: "k1", model: "m", requests: 1,
                promptTokens: 1, completionTokens: 1, costPicoUSD: 7))
        _ = try await store.apply(UsageBatch(agentID: "a", epoch: "e", sequence: 1, deltas: deltas))
        let job = UsageRetentionJob(
            store: store, retention: UsageRetention(hourlyDays: 32, dailyDays: 32, markDays: 30),
            logger: .init(label: "t"),
            clock: { hour })
        #expect(try await job.prune() == 2_500 + 105)  // 2,500 hourly cells and 105 days' daily cells
        let left = try await store.usage(UsageQuery(groupBy: [], from: 0, to: hour + 3600))
        #expect(left.first?.costPicoUSD == 7)
    }
}
