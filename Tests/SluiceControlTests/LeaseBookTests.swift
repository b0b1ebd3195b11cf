import SluiceControl
import SluiceTestSupport
import SluiceWire
import Testing

@Suite("lease book: budget caps never add up to more than the budget")
struct LeaseBookTests {
    /// One renewal of team ml's daily budget (1000 pico-USD) by `agent`, answered with its cap.
    static func renew(_ book: LeaseBook, _ agent: String, own: Int) async throws -> Int {
        let demand = LeaseDemand(
            scopeKind: "team", scope: "ml", limit: "daily_spend", perMinute: 100,
            limitValue: 1000, ownSpent: own)
        let answer = try await book.renew(agentID: agent, request: LeaseRequest(instance: "e1", demands: [demand]))
        return try #require(answer.grants.first).perMinute
    }

    @Test("a cap given back is not handed to another agent until the answer reaches its holder")
    func capGivenBackStaysReserved() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("sluice.db"))
        try await store.migrate()
        let book = LeaseBook(store: store)

        // The first to ask takes what nobody else has claimed.
        #expect(try await Self.renew(book, "a", own: 0) == 1000)
        // b spent 50 on its fallback before its first lease: a holds the rest.
        #expect(try await Self.renew(book, "b", own: 50) == 50)
        // a renews and gives back: its share of the 850 left (split evenly) over its 100.
        #expect(try await Self.renew(book, "a", own: 100) == 525)
        // a still spends under 1000 until that answer reaches it, so b gets nothing more yet
        // (counting a at 525 would grant b 475, and the two could spend 1475).
        #expect(try await Self.renew(book, "b", own: 50) == 50)
        // a's next renewal shows it holds 525: b gets what that leaves.
        #expect(try await Self.renew(book, "a", own: 120) == 535)
        #expect(try await Self.renew(book, "b", own: 50) == 465)
    }
}
