import SluiceControl
import SluiceTestSupport
import SluiceWire
import Testing

@Suite("lease book: caps and buckets never add up to more than the limit")
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

    /// One renewal of team ml's 240 requests a minute by `agent`, answered with its grant.
    static func renewRate(_ book: LeaseBook, _ agent: String, demand: Double, held: Int) async throws -> LeaseGrant {
        let demand = LeaseDemand(
            scopeKind: "team", scope: "ml", limit: "requests_per_minute", perMinute: demand, limitValue: 240,
            held: held)
        let answer = try await book.renew(agentID: agent, request: LeaseRequest(instance: "e1", demands: [demand]))
        return try #require(answer.grants.first)
    }

    @Test("a bucket that kept more than its new share trims the others' bursts until it is spent")
    func keptLevelsTrimBursts() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("sluice.db"))
        try await store.migrate()
        let book = LeaseBook(store: store)

        // a alone: the whole rate, and a bucket as big.
        let first = try await Self.renewRate(book, "a", demand: 100, held: 0)
        #expect(first.perMinute == 240 && first.burst == nil)
        // b arrives busy; a went quiet but its bucket still holds 200 of what it was granted.
        let b = try await Self.renewRate(book, "b", demand: 1_000, held: 0)
        // a counts at its 240 (it has not renewed since): b's bucket may not fill at all yet.
        #expect(b.burst == 0)
        let a = try await Self.renewRate(book, "a", demand: 10, held: 200)
        // a's share shrinks (it holds far more than its reserve) but it keeps its 200.
        #expect(a.perMinute < 20)
        let again = try await Self.renewRate(book, "b", demand: 1_000, held: 0)
        // b gets the rest of the rate, and a bucket of what a's 200 leave.
        #expect(again.perMinute == 240 - a.perMinute && again.burst == 40)
        // Once a has spent down to its share, b's bucket may fill to its whole share.
        _ = try await Self.renewRate(book, "a", demand: 10, held: 2)
        let spent = try await Self.renewRate(book, "b", demand: 1_000, held: 0)
        #expect(spent.burst == nil || spent.burst == spent.perMinute)
    }

    @Test("requests per day are a quota: caps add up to at most the daily count, and every agent asking gets some")
    func dailyRequestQuota() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("sluice.db"))
        try await store.migrate()
        let book = LeaseBook(store: store)
        func renew(_ agent: String, own: Int) async throws -> Int {
            let demand = LeaseDemand(
                scopeKind: "team", scope: "ml", limit: "requests_per_day", perMinute: 5, limitValue: 6, ownSpent: own)
            let answer = try await book.renew(agentID: agent, request: LeaseRequest(instance: "e1", demands: [demand]))
            return try #require(answer.grants.first).perMinute
        }
        var caps = ["a": try await renew("a", own: 0)]
        caps["b"] = try await renew("b", own: 0)
        caps["c"] = try await renew("c", own: 0)
        for agent in ["a", "b", "c", "a", "b", "c"] { caps[agent] = try await renew(agent, own: 0) }
        #expect(caps.values.reduce(0, +) <= 6, "\(caps)")
        #expect(caps.values.allSatisfy { $0 >= 1 }, "every agent asking gets a share: \(caps)")
    }
}
