import GRDB
import Logging
import SluiceControl
import SluiceTestSupport
import SluiceWire
import Testing

/// One suite for every store: each test takes a fresh store from `StoreFixture`, which
/// makes a SQLite file (and, where a server is available, a PostgreSQL database).
@Suite("Store conformance")
struct StoreConformanceTests {
    static let hour: Int64 = 1_795_435_200  // 2026-11-23T12:00:00Z

    @Test("migrations are idempotent and the policy version starts at 1", arguments: StoreFixture.kinds)
    func migrations(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        try await fixture.store.migrate()
        try await fixture.store.migrate()
        #expect(try await fixture.store.policyVersion() == 1)
        // An empty range sums to no rows, not a row of nulls.
        #expect(try await fixture.store.usage(UsageQuery(groupBy: [], from: 0, to: 3600)).isEmpty)
    }

    @Test("create, update, upsert, delete; every write raises the version", arguments: StoreFixture.kinds)
    func entities(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        #expect(try await store.put(.team(TeamDocument(name: "ml")), mode: .create) == 2)
        await #expect(throws: StoreError(.conflict, "team \"ml\" already exists")) {
            try await store.put(.team(TeamDocument(name: "ml")), mode: .create)
        }
        await #expect(throws: StoreError.self) { try await store.put(.team(TeamDocument(name: "nope")), mode: .update) }
        #expect(try await store.put(.team(TeamDocument(name: "ml", deniedModels: ["gpt-4o"])), mode: .update) == 3)
        #expect(try await store.entity(.team, name: "ml") == .team(TeamDocument(name: "ml", deniedModels: ["gpt-4o"])))
        try await store.put(.project(ProjectDocument(name: "search", team: "ml")), mode: .upsert)
        try await store.put(
            .key(
                KeyDocument(
                    id: "k1", hash: "hmac-sha256:" + String(repeating: "0", count: 64), team: "ml", project: "search")),
            mode: .create)
        #expect(try await store.entities(.key).count == 1)
        #expect(try await store.policyVersion() == 5)
        #expect(try await store.entity(.key, name: "nope") == nil)
    }

    @Test("references must exist, and what is referred to cannot be deleted", arguments: StoreFixture.kinds)
    func references(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        let hash = "hmac-sha256:" + String(repeating: "1", count: 64)
        await #expect(throws: StoreError.self) {
            try await store.put(.key(KeyDocument(id: "k", hash: hash, team: "ghost")), mode: .create)
        }
        try await store.put(.team(TeamDocument(name: "a")), mode: .create)
        try await store.put(.team(TeamDocument(name: "b")), mode: .create)
        try await store.put(.project(ProjectDocument(name: "p", team: "a")), mode: .create)
        do {
            try await store.put(.key(KeyDocument(id: "k", hash: hash, team: "b", project: "p")), mode: .create)
            Issue.record("a key in team b was accepted in team a's project")
        } catch let error as StoreError {
            #expect(error.kind == .invalid && error.message.contains("belongs to team \"a\""))
        }
        do {
            try await store.delete(.team, name: "a")
            Issue.record("a team with a project was deleted")
        } catch let error as StoreError {
            #expect(error.kind == .conflict && error.message.contains("project \"p\""))
        }
        try await store.delete(.project, name: "p")
        try await store.delete(.team, name: "a")
        await #expect(throws: StoreError.self) { try await store.delete(.team, name: "a") }
    }

    @Test("a snapshot's version matches its contents", arguments: StoreFixture.kinds)
    func snapshot(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        try await store.put(.team(TeamDocument(name: "ml")), mode: .create)
        try await store.setSettings(SettingsDocument(onlyAllowModels: ["a"], timeZone: "Europe/Berlin"))
        let snapshot = try await store.snapshot()
        #expect(snapshot.version == 3 && snapshot.entities == [.team(TeamDocument(name: "ml"))])
        #expect(snapshot.settings.timeZone == "Europe/Berlin" && snapshot.settings.onlyAllowModels == ["a"])
    }

    static func batch(
        _ sequence: Int64, agent: String = "a1", epoch: String = "e1", cost: Int64 = 1_000, team: String = "ml",
        model: String = "gpt-4o-mini", hour: Int64 = hour
    ) -> UsageBatch {
        UsageBatch(
            agentID: agent, epoch: epoch, sequence: sequence,
            deltas: [
                UsageDelta(
                    hour: hour, team: team, service: "shop/checkout", keyID: "k1", model: model, requests: 2,
                    promptTokens: 20,
                    completionTokens: 10, costPicoUSD: cost, denials: ["rate_limit_exceeded": 1])
            ])
    }

    @Test(
        "usage batches apply exactly once per agent and epoch; a gap (a restored database) is accepted",
        arguments: StoreFixture.kinds)
    func exactlyOnce(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        #expect(
            try await store.apply(Self.batch(1))
                == UsageAck(agentID: "a1", epoch: "e1", acknowledgedSequence: 1, duplicate: false))
        #expect(
            try await store.apply(Self.batch(1))
                == UsageAck(agentID: "a1", epoch: "e1", acknowledgedSequence: 1, duplicate: true))
        // The store lost batch 2's mark (restored from a backup): 3 is applied, not refused,
        // and anything at or below the new mark is a repeat.
        #expect(
            try await store.apply(Self.batch(3))
                == UsageAck(agentID: "a1", epoch: "e1", acknowledgedSequence: 3, duplicate: false))
        #expect(
            try await store.apply(Self.batch(2))
                == UsageAck(agentID: "a1", epoch: "e1", acknowledgedSequence: 3, duplicate: true))
        // A new epoch starts its own sequence.
        #expect(try await store.apply(Self.batch(1, epoch: "e2")).duplicate == false)
        let total = try await store.usage(UsageQuery(groupBy: [], from: Self.hour, to: Self.hour + 3600))
        #expect(
            total == [
                UsageRow(
                    group: [:], requests: 6, promptTokens: 60, completionTokens: 30, costPicoUSD: 3_000,
                    denials: ["rate_limit_exceeded": 3])
            ])
    }

    @Test(
        "a group of batches applies like the same batches one by one: repeats in it and before it count once",
        arguments: StoreFixture.kinds)
    func groupCommit(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        _ = try await store.apply(Self.batch(1, agent: "a1"))
        // a1's 1 again (a retry), its 2, then 2 again in the same group; a2's first; a3's 5
        // then its 4 (below the mark the group just set).
        let acks = try await store.apply(group: [
            Self.batch(1, agent: "a1"), Self.batch(2, agent: "a1", cost: 7), Self.batch(2, agent: "a1", cost: 7),
            Self.batch(1, agent: "a2", team: "web"), Self.batch(5, agent: "a3"), Self.batch(4, agent: "a3"),
        ])
        #expect(acks.map(\.agentID) == ["a1", "a1", "a1", "a2", "a3", "a3"])
        #expect(acks.map(\.acknowledgedSequence) == [1, 2, 2, 1, 5, 5])
        #expect(acks.map(\.duplicate) == [true, false, true, false, false, true])
        #expect(try await store.apply(group: []).isEmpty)
        // Exactly what one-by-one application gives: a1's 1 and 2, a2's 1, a3's 5.
        let byTeam = try await store.usage(UsageQuery(groupBy: [.team], from: Self.hour, to: Self.hour + 3600))
        #expect(byTeam.map(\.group) == [["team": "ml"], ["team": "web"]])
        #expect(byTeam.map(\.requests) == [6, 2] && byTeam.map(\.costPicoUSD) == [2_007, 1_000])
        #expect(byTeam.map { $0.denials["rate_limit_exceeded"] } == [3, 1])
        // The marks moved: the next group repeats nothing it should not.
        let next = try await store.apply(group: [Self.batch(2, agent: "a1"), Self.batch(6, agent: "a3")])
        #expect(next.map(\.duplicate) == [true, false])
    }

    @Test(
        "concurrent batches through the committer: grouped into fewer transactions, each counted once",
        arguments: StoreFixture.kinds)
    func committer(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let committer = UsageCommitter(store: fixture.store)
        let acks = try await withThrowingTaskGroup(of: UsageAck.self) { group in
            for agent in 0..<40 {
                for sequence in 1...3 {
                    group.addTask {
                        try await committer.apply(Self.batch(Int64(sequence), agent: "agent-\(agent)"))
                    }
                }
            }
            return try await group.reduce(into: [UsageAck]()) { $0.append($1) }
        }
        // Batches of one agent raced each other: each sequence was applied once or answered
        // as a repeat of a higher mark, never both lost.
        #expect(acks.count == 120)
        let total = try await fixture.store.usage(UsageQuery(groupBy: [], from: Self.hour, to: Self.hour + 3600))
        let applied = acks.filter { !$0.duplicate }.count
        #expect(total.first?.requests == Int64(applied * 2) && applied >= 40)
        #expect(committer.groupsWritten < 120, "\(committer.groupsWritten) transactions for 120 batches")
        // A batch the store refuses fails alone, before it can join a group.
        var bad = Self.batch(9, agent: "agent-0")
        bad.deltas[0].hour += 1
        await #expect(throws: StoreError.self) { try await committer.apply(bad) }
    }

    @Test(
        "20 agents at once add to the same hourly and daily cells, in opposite orders: every call counted once",
        arguments: StoreFixture.kinds)
    func concurrentBatchesShareCells(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        // Two hours of one day: each batch adds to both hourly cells and, twice, to the one
        // daily cell; half list the later hour first.
        let hours = [Self.hour, Self.hour + 3600]
        try await withThrowingTaskGroup(of: UsageAck.self) { group in
            for agent in 0..<20 {
                group.addTask {
                    let deltas = (agent % 2 == 0 ? hours : hours.reversed()).map { hour in
                        UsageDelta(
                            hour: hour, team: "ml", service: "shop/checkout", keyID: "k1", model: "m", requests: 1,
                            promptTokens: 10, completionTokens: 5, costPicoUSD: 500,
                            denials: ["rate_limit_exceeded": 1])
                    }
                    return try await store.apply(
                        UsageBatch(agentID: "agent-\(agent)", epoch: "e1", sequence: 1, deltas: deltas))
                }
            }
            for try await ack in group { #expect(!ack.duplicate) }
        }
        // Not whole days: answered from the hourly cells.
        let hourly = try await store.usage(UsageQuery(groupBy: [.team], from: Self.hour, to: Self.hour + 7200))
        #expect(
            hourly == [
                UsageRow(
                    group: ["team": "ml"], requests: 40, promptTokens: 400, completionTokens: 200, costPicoUSD: 20_000,
                    denials: ["rate_limit_exceeded": 40])
            ])
        let day = Self.hour - Self.hour % 86_400
        let daily = try await store.usage(UsageQuery(groupBy: [.team], from: day, to: day + 86_400))  // daily cells
        #expect(daily.map(\.requests) == [40] && daily.map(\.denials) == [["rate_limit_exceeded": 40]])
    }

    @Test(
        "refusals are counted by reason with their group; a group refused every call still shows",
        arguments: StoreFixture.kinds)
    func denialsByReason(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        _ = try await store.apply(Self.batch(1, team: "ml"))
        _ = try await store.apply(
            UsageBatch(
                agentID: "a1", epoch: "e1", sequence: 2,
                deltas: [
                    UsageDelta(
                        hour: Self.hour, team: "web", service: "shop/checkout", keyID: "k2", model: "m", requests: 0,
                        denials: ["budget_exceeded": 4, "model_not_allowed": 1])
                ]))
        let rows = try await store.usage(UsageQuery(groupBy: [.team], from: Self.hour, to: Self.hour + 3600))
        #expect(
            rows == [
                UsageRow(
                    group: ["team": "ml"], requests: 2, promptTokens: 20, completionTokens: 10, costPicoUSD: 1_000,
                    denials: ["rate_limit_exceeded": 1]),
                UsageRow(
                    group: ["team": "web"], requests: 0, promptTokens: 0, completionTokens: 0, costPicoUSD: 0,
                    denials: ["budget_exceeded": 4, "model_not_allowed": 1]),
            ])
        // Top 1 by spend leaves the refused-only group out.
        let top = try await store.usage(UsageQuery(groupBy: [.team], from: Self.hour, to: Self.hour + 3600, limit: 1))
        #expect(top.map(\.group) == [["team": "ml"]])
    }

    @Test(
        "a change plans from the policy it changes: 20 concurrent read-modify-writes lose nothing",
        arguments: StoreFixture.kinds)
    func concurrentChanges(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        try await store.put(.team(TeamDocument(name: "ml")), mode: .create)
        let writes = try await withThrowingTaskGroup(of: PolicyWrite.self) { group in
            for index in 0..<20 {
                group.addTask {
                    try await store.change { snapshot in
                        guard case .team(var team) = snapshot.entities.first(where: { $0.name == "ml" }) else {
                            throw StoreError(.notFound, "no team")
                        }
                        // What the plan saw is written down: the version it read must be the one it replaced.
                        team.deniedModels.append("m\(index)@\(snapshot.version)")
                        return .put(.team(team), .update)
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        guard case .team(let team) = try await store.entity(.team, name: "ml") else {
            Issue.record("the team is gone")
            return
        }
        #expect(team.deniedModels.count == 20)
        #expect(Set(writes.map(\.version)) == Set(3...22))
        for entry in team.deniedModels {
            let seen = try #require(Int64(entry.split(separator: "@")[1]))
            #expect(writes.contains { $0.version == seen + 1 && "\($0.change)".contains(entry) }, "\(entry)")
        }
        // A plan that refuses changes nothing, not even the version.
        await #expect(throws: StoreError(.invalid, "refused")) {
            try await store.change { _ in throw StoreError(.invalid, "refused") }
        }
        #expect(try await store.policyVersion() == 22)
    }

    @Test("the same batch sent 20 times at once is applied once", arguments: StoreFixture.kinds)
    func concurrentDuplicates(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        let acks = try await withThrowingTaskGroup(of: UsageAck.self) { group in
            for _ in 0..<20 { group.addTask { try await store.apply(Self.batch(1)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(acks.filter { !$0.duplicate }.count == 1 && acks.allSatisfy { $0.acknowledgedSequence == 1 })
        let total = try await store.usage(UsageQuery(groupBy: [], from: Self.hour, to: Self.hour + 3600))
        #expect(total.first?.costPicoUSD == 1_000)
    }

    @Test(
        "retention deletes old hourly cells, older daily ones and stale marks, in batches",
        arguments: StoreFixture.kinds)
    func retention(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        let day = Self.hour - Self.hour % 86_400
        // Three hours on three days, 50 and 10 days before the last.
        let old = Self.hour - 50 * 86_400
        let middle = Self.hour - 10 * 86_400
        _ = try await store.apply(Self.batch(1, agent: "gone", hour: old))
        _ = try await store.apply(Self.batch(1, agent: "a1", hour: middle))
        _ = try await store.apply(Self.batch(2, agent: "a1", hour: Self.hour))
        func cost(from: Int64, to: Int64) async throws -> Int64 {
            try await store.usage(UsageQuery(groupBy: [], from: from, to: to)).first?.costPicoUSD ?? 0
        }
        // Hourly cells older than 30 days go, daily ones older than 40; marks older than their
        // cut-off too. One row a table at a time: the first call deletes at most five.
        let cut = (hourly: Self.hour - 30 * 86_400, daily: Self.hour - 40 * 86_400)
        let first = try await store.pruneUsage(
            hourlyBefore: cut.hourly, dailyBefore: cut.daily, marksBefore: Int64.max, limit: 1)
        #expect((1...5).contains(first))
        var total = first
        while true {
            let deleted = try await store.pruneUsage(
                hourlyBefore: cut.hourly, dailyBefore: cut.daily, marksBefore: Int64.max, limit: 1)
            if deleted == 0 { break }
            total += deleted
        }
        // The old day: its hourly and daily usage and denial cells (4), and both marks (2).
        #expect(total == 6)
        // A range off day boundaries reads hourly cells: the old hour is gone, the others stay.
        #expect(try await cost(from: old, to: old + 3600) == 0)
        #expect(try await cost(from: middle, to: middle + 3600) == 1_000)
        #expect(try await cost(from: day, to: day + 86_400) == 1_000)
        // The middle day's daily cell is within 40 days: its day still sums.
        let middleDay = middle - middle % 86_400
        #expect(try await cost(from: middleDay, to: middleDay + 86_400) == 1_000)
        // Its mark gone, a batch from the pruned agent would apply again: that is what the
        // mark retention trades for a bounded table.
        #expect(try await store.apply(Self.batch(1, agent: "gone", hour: Self.hour)).duplicate == false)
    }

    @Test(
        "cache figures add up in the rollups, also in a database an older release made without them",
        arguments: StoreFixture.kinds)
    func cacheFigures(kind: StoreFixture.Kind) async throws {
        // The rollup table as releases before the cache figures made it.
        let olderTable = """
            CREATE TABLE usage_rollups (granularity TEXT NOT NULL, start BIGINT NOT NULL, team TEXT NOT NULL,
                project TEXT NOT NULL, service TEXT NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL,
                requests BIGINT NOT NULL, prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
                cost_pico BIGINT NOT NULL, PRIMARY KEY (granularity, start, team, project, service, key_id, model))
            """
        let older = UsageDelta(
            hour: Self.hour, team: "ml", service: "shop/checkout", keyID: "k1", model: "claude", requests: 1,
            promptTokens: 100, completionTokens: 5, costPicoUSD: 1_000)
        let store: any Store
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var pool: Task<Void, Never>?
        defer { pool?.cancel() }
        switch kind {
        case .sqlite:
            let path = directory.file("older.db")
            try await DatabaseQueue(path: path).write { try $0.execute(sql: olderTable) }
            store = try SQLiteStore(path: path, clock: { 1_795_435_200 })
        case .postgres:
            let server = try await TemporaryPostgres.server()
            let name = try await server.createDatabase()
            try await server.execute(olderTable, in: name)
            let created = try PostgresStore(
                url: "postgres://postgres@127.0.0.1:\(server.port)/\(name)", logger: Logger(label: "test"),
                clock: { 1_795_435_200 })
            pool = Task { await created.run() }
            store = created
        }
        try await store.migrate()
        try await store.migrate()
        var cached = older
        cached.cachedPromptTokens = 600
        cached.cacheCreationTokens = 200
        cached.promptTokens = 1000
        _ = try await store.apply(UsageBatch(agentID: "a1", epoch: "e1", sequence: 1, deltas: [older, cached]))
        _ = try await store.apply(UsageBatch(agentID: "a2", epoch: "e1", sequence: 1, deltas: [cached]))
        let day = Self.hour - Self.hour % 86_400
        for range in [(Self.hour, Self.hour + 3600), (day, day + 86_400)] {
            let rows = try await store.usage(UsageQuery(groupBy: [.model], from: range.0, to: range.1))
            #expect(
                rows == [
                    UsageRow(
                        group: ["model": "claude"], requests: 3, promptTokens: 2100, completionTokens: 15,
                        cachedPromptTokens: 1200, cacheCreationTokens: 400, costPicoUSD: 3_000)
                ])
        }
    }

    @Test("usage groups by any dimension and day, from rollups; top N by cost", arguments: StoreFixture.kinds)
    func usageQueries(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        let day = Self.hour - Self.hour % 86_400
        _ = try await store.apply(Self.batch(1, cost: 5_000, team: "ml", model: "a"))
        _ = try await store.apply(Self.batch(2, cost: 7_000, team: "ml", model: "b"))
        _ = try await store.apply(Self.batch(3, cost: 1_000, team: "web", model: "a", hour: Self.hour + 86_400))
        let byTeam = try await store.usage(UsageQuery(groupBy: [.team], from: day, to: day + 2 * 86_400))
        #expect(
            byTeam == [
                UsageRow(
                    group: ["team": "ml"], requests: 4, promptTokens: 40, completionTokens: 20, costPicoUSD: 12_000,
                    denials: ["rate_limit_exceeded": 2]),
                UsageRow(
                    group: ["team": "web"], requests: 2, promptTokens: 20, completionTokens: 10, costPicoUSD: 1_000,
                    denials: ["rate_limit_exceeded": 1]),
            ])
        let byDayModel = try await store.usage(UsageQuery(groupBy: [.day, .model], from: day, to: day + 2 * 86_400))
        #expect(
            byDayModel.map(\.group) == [
                ["day": String(day), "model": "b"], ["day": String(day), "model": "a"],
                ["day": String(day + 86_400), "model": "a"],
            ])
        let top = try await store.usage(UsageQuery(groupBy: [.key], from: day, to: day + 2 * 86_400, limit: 1))
        #expect(
            top == [
                UsageRow(
                    group: ["key": "k1"], requests: 6, promptTokens: 60, completionTokens: 30, costPicoUSD: 13_000,
                    denials: ["rate_limit_exceeded": 3])
            ])
        // An hourly range reads the hourly cells.
        let firstHour = try await store.usage(UsageQuery(groupBy: [.model], from: Self.hour, to: Self.hour + 3600))
        #expect(firstHour.map(\.costPicoUSD) == [7_000, 5_000])
        // Refusals by rule come back beside those by reason, in the same groups.
        var refused = Self.batch(4, cost: 0, team: "ml", model: "a")
        refused.deltas[0].denialRules = [#"team "ml" requests_per_minute"#: 2]
        _ = try await store.apply(refused)
        let ml = try await store.usage(UsageQuery(groupBy: [.team], from: day, to: day + 2 * 86_400)).first
        #expect(ml?.denials == ["rate_limit_exceeded": 3])
        #expect(ml?.denialRules == [#"team "ml" requests_per_minute"#: 2])
        // Hour grouping reads the hourly cells even over whole days.
        let byHour = try await store.usage(UsageQuery(groupBy: [.hour], from: day, to: day + 2 * 86_400))
        #expect(byHour.map(\.group) == [["hour": String(Self.hour)], ["hour": String(Self.hour + 86_400)]])
        #expect(byHour.map(\.costPicoUSD) == [12_000, 1_000])
    }

    @Test(
        "agent tokens are found by their hash only, keep their service binding, and stop working once deleted",
        arguments: StoreFixture.kinds)
    func agents(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        try await fixture.store.registerAgent(id: "shop/checkout/pod-1", tokenHash: "h1", service: "shop/checkout")
        try await fixture.store.registerAgent(id: "ops-1", tokenHash: "h3", service: nil)
        #expect(try await fixture.store.agent(tokenHash: "h1")?.id == "shop/checkout/pod-1")
        #expect(try await fixture.store.agent(tokenHash: "h1")?.service == "shop/checkout")
        #expect(try await fixture.store.agent(tokenHash: "h2") == nil)
        #expect(try await fixture.store.agents().map(\.id) == ["ops-1", "shop/checkout/pod-1"])
        #expect(try await fixture.store.agents().first?.service == nil)
        // Registering the id again replaces its token: the old one stops working.
        try await fixture.store.registerAgent(id: "ops-1", tokenHash: "h4", service: "ops/batch")
        #expect(try await fixture.store.agent(tokenHash: "h3") == nil)
        #expect(try await fixture.store.agent(tokenHash: "h4")?.service == "ops/batch")
        #expect(try await fixture.store.deleteAgent(id: "ops-1"))
        #expect(try await fixture.store.deleteAgent(id: "ops-1") == false)
        #expect(try await fixture.store.agent(tokenHash: "h4") == nil)
    }

    @Test(
        "the agent-token generation rises with every registration and deletion, not with a deletion of nothing",
        arguments: StoreFixture.kinds)
    func agentTokensGeneration(kind: StoreFixture.Kind) async throws {
        let fixture = try await StoreFixture(kind)
        defer { fixture.remove() }
        let store = fixture.store
        let first = try await store.agentTokensGeneration()
        try await store.registerAgent(id: "pod-1", tokenHash: "h1", service: nil)
        let registered = try await store.agentTokensGeneration()
        #expect(registered > first)
        try await store.registerAgent(id: "pod-1", tokenHash: "h2", service: nil)
        let replaced = try await store.agentTokensGeneration()
        #expect(replaced > registered)
        #expect(try await store.deleteAgent(id: "nobody") == false)
        #expect(try await store.agentTokensGeneration() == replaced)
        #expect(try await store.deleteAgent(id: "pod-1"))
        #expect(try await store.agentTokensGeneration() > replaced)
        // Migrating again (every replica does at start) keeps the generation.
        let settled = try await store.agentTokensGeneration()
        try await store.migrate()
        #expect(try await store.agentTokensGeneration() == settled)
    }
}

@Suite("SQLite store")
struct SQLiteStoreTests {
    @Test("two stores on one file (as two processes would be) lose no update under concurrent writes")
    func twoWriters() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("shared.db")
        let first = try SQLiteStore(path: path)
        let second = try SQLiteStore(path: path)
        try await first.migrate()
        try await second.migrate()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, store) in [first, second].enumerated() {
                group.addTask {
                    for sequence in 1...50 {
                        _ = try await store.apply(StoreConformanceTests.batch(Int64(sequence), agent: "agent-\(index)"))
                        try await store.put(.team(TeamDocument(name: "t-\(index)-\(sequence)")), mode: .create)
                    }
                }
            }
            try await group.waitForAll()
        }
        let hour = StoreConformanceTests.hour
        let total = try await first.usage(UsageQuery(groupBy: [], from: hour, to: hour + 3600))
        #expect(total.first?.requests == 200 && total.first?.costPicoUSD == 100_000)
        #expect(try await second.policyVersion() == 101)
        #expect(try await first.entities(.team).count == 100)
    }
}

@Suite("PostgreSQL store")
struct PostgresStoreTests {
    @Test("two stores on one database (two replicas) serve consistently under concurrent writes")
    func twoReplicas() async throws {
        let url = try await StoreFixture.newPostgresDatabase()
        let first = try PostgresStore(url: url, logger: Logger(label: "test"))
        let second = try PostgresStore(url: url, logger: Logger(label: "test"))
        // Each store's pool runs as a child of this test and stops with it.
        try await withThrowingDiscardingTaskGroup { pools in
            pools.addTask { await first.run() }
            pools.addTask { await second.run() }
            try await Self.replicate(first, second)
            pools.cancelAll()
        }
    }

    static func replicate(_ first: PostgresStore, _ second: PostgresStore) async throws {
        // Both migrate at once, as replicas starting together would.
        async let migrated1: Void = first.migrate()
        async let migrated2: Void = second.migrate()
        _ = try await (migrated1, migrated2)
        try await first.put(.team(TeamDocument(name: "shared")), mode: .create)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, store) in [first, second].enumerated() {
                group.addTask {
                    for sequence in 1...25 {
                        _ = try await store.apply(StoreConformanceTests.batch(Int64(sequence), agent: "agent-\(index)"))
                        // Both replicas also apply the other's batches: each must count once.
                        _ = try await store.apply(
                            StoreConformanceTests.batch(Int64(sequence), agent: "agent-\(1 - index)"))
                        try await store.put(
                            .project(ProjectDocument(name: "p-\(index)-\(sequence)", team: "shared")), mode: .create)
                    }
                }
            }
            try await group.waitForAll()
        }
        let hour = StoreConformanceTests.hour
        for store in [first, second] {
            let total = try await store.usage(UsageQuery(groupBy: [], from: hour, to: hour + 3600))
            #expect(total.first?.requests == 100 && total.first?.costPicoUSD == 50_000)
            #expect(try await store.policyVersion() == 52)
            #expect(try await store.entities(.project).count == 50)
        }
        // A delete racing a reference: the team cannot go while projects use it, on either replica.
        await #expect(throws: StoreError.self) { try await second.delete(.team, name: "shared") }
    }
}
