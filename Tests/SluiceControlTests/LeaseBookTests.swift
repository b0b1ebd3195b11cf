import SluiceControl
import SluiceTestSupport
import SluiceWire
import Testing

@Suite("lease book: caps and buckets never add up to more than the limit")
struct LeaseBookTests {
    /// One renewal of team ml's daily budget (1000 pico-USD) by `agent`, answered with its cap.
    /// By default the demand is far beyond the budget, so each grant is the agent's whole share.
    static func renew(
        _ book: LeaseBook, _ agent: String, own: Int, perMinute: Double = 1_000_000, limit: Int = 1000
    ) async throws -> Int {
        let demand = LeaseDemand(
            scopeKind: "team", scope: "ml", limit: "daily_spend", perMinute: perMinute,
            limitValue: limit, ownSpent: own)
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

    @Test("a budget is not all handed to the first agent: 10 agents arriving one by one each get theirs at once")
    func lateAgentsGetTheirShareAtOnce() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("sluice.db"))
        try await store.migrate()
        let book = LeaseBook(store: store)
        // $1 a day (10^12 pico-USD); every agent spends about $0.01 a minute.
        let budget = 1_000_000_000_000
        let perMinute = 10_000_000_000.0
        var caps: [String: Int] = [:]
        var spent: [String: Int] = [:]
        for arriving in 0..<10 {
            let agent = "pod-\(arriving)"
            // Its first renewal: a grant covering at least two minutes of its demand.
            caps[agent] = try await Self.renew(book, agent, own: 0, perMinute: perMinute, limit: budget)
            #expect(caps[agent]! >= Int(perMinute * 2), "\(agent) got \(caps[agent]!) at its first renewal")
            // Everyone spends a little and renews before the next one arrives.
            for (name, cap) in caps {
                spent[name] = min(cap, (spent[name] ?? 0) + Int(perMinute / 12))
                caps[name] = try await Self.renew(book, name, own: spent[name]!, perMinute: perMinute, limit: budget)
            }
            #expect(caps.values.reduce(0, +) <= budget)
        }
        // None holds much more than its demand needs: the rest of the budget is unclaimed.
        #expect(caps.values.allSatisfy { $0 <= budget / 10 }, "\(caps)")
    }
}
