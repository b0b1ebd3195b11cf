import Crypto
import Foundation
import Logging
import SluiceControl
import SluicePolicy
import SluiceTestSupport
import SluiceWire

// Prints one markdown table of figures. Every store is a fresh one: a SQLite file in a
// temporary directory, and a database on a PostgreSQL server started for the run.

let agents = 1_000
let batchesPerAgent = Int(ProcessInfo.processInfo.environment["BENCH_BATCHES_PER_AGENT"] ?? "10") ?? 10
let concurrency = 32
let logger = Logger(label: "bench")
let hour: Int64 = 1_795_435_200

func batch(agent: Int, sequence: Int) -> UsageBatch {
    UsageBatch(agentID: "agent-\(agent)", epoch: "e1", sequence: Int64(sequence), deltas: (0..<4).map { cell in
        UsageDelta(hour: hour + Int64(sequence % 24) * 3600, team: "team-\(agent % 20)", project: nil, service: "ns/svc-\(agent % 50)",
                   keyID: "key-\(agent % 500)", model: "model-\(cell)", requests: 3, promptTokens: 300, completionTokens: 120,
                   costPicoUSD: 123_000_000, denials: cell == 0 ? ["rate_limit_exceeded": 1] : [:])
    })
}

/// Every agent sends its batches in order; `concurrency` agents are in flight at a time.
func ingest(_ store: any Store) async throws -> Double {
    let started = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = 0
        func add() {
            let agent = next
            next += 1
            group.addTask {
                for sequence in 1...batchesPerAgent { _ = try await store.apply(batch(agent: agent, sequence: sequence)) }
            }
        }
        for _ in 0..<min(concurrency, agents) { add() }
        while try await group.next() != nil { if next < agents { add() } }
    }
    let seconds = (ContinuousClock.now - started) / .seconds(1)
    return Double(agents * batchesPerAgent) / seconds
}

func bundleBuild(_ store: any Store) async throws -> (keys: Int, seconds: Double, bytes: Int) {
    try await store.put(.team(TeamDocument(name: "bench")), mode: .upsert)
    let hasher = KeyHasher(pepper: Secret("bench-pepper-0123456789abcdef"))
    let keyCount = 10_000
    try await withThrowingTaskGroup(of: Void.self) { group in
        for worker in 0..<8 {
            group.addTask {
                for index in stride(from: worker, to: keyCount, by: 8) {
                    try await store.put(.key(KeyDocument(id: "k\(index)", hash: hasher.hash("sk-sluice-bench-\(index)").encoded, team: "bench",
                                                         metadata: ["owner": "owner-\(index % 100)"], allowedModels: ["model-1", "model-2"],
                                                         limits: LimitsDocument(requestsPerMinute: 60, monthlySpendUSD: 100))), mode: .upsert)
                }
            }
        }
        try await group.waitForAll()
    }
    let publisher = PolicyPublisher(store: store, signingKey: Curve25519.Signing.PrivateKey(), keyPepper: Secret("bench-pepper-0123456789abcdef"))
    let started = ContinuousClock.now
    let (_, body) = try await publisher.bundle()
    return (keyCount, (ContinuousClock.now - started) / .seconds(1), body.count)
}

/// Rollups standing for 10 million requests: 90 days × 24 hours × 20 teams × 20 keys ×
/// 5 models hourly cells (with their daily cells), each carrying about 11 requests.
func fillRollups(_ store: any Store) async throws -> Int {
    var applied = 0
    let cellsPerBatch = 500
    var deltas: [UsageDelta] = []
    var sequence: Int64 = 0
    let start = hour - 90 * 86_400
    for day in 0..<90 {
        for hourOfDay in 0..<24 {
            for team in 0..<20 {
                for key in 0..<20 {
                    for model in 0..<5 {
                        deltas.append(UsageDelta(hour: start + Int64(day * 86_400 + hourOfDay * 3600), team: "team-\(team)", service: "ns/svc",
                                                 keyID: "key-\(team)-\(key)", model: "model-\(model)", requests: 11, promptTokens: 1100,
                                                 completionTokens: 440, costPicoUSD: 500_000_000))
                        if deltas.count == cellsPerBatch {
                            sequence += 1
                            _ = try await store.apply(UsageBatch(agentID: "filler", epoch: "fill", sequence: sequence, deltas: deltas))
                            applied += deltas.count
                            deltas.removeAll(keepingCapacity: true)
                        }
                    }
                }
            }
        }
    }
    return applied
}

func queries(_ store: any Store) async throws -> [(String, Double)] {
    let day = hour - hour % 86_400
    let cases: [(String, UsageQuery)] = [
        ("by team, 30 days", UsageQuery(groupBy: [.team], from: day - 30 * 86_400, to: day)),
        ("by team and model, 30 days", UsageQuery(groupBy: [.team, .model], from: day - 30 * 86_400, to: day)),
        ("top 10 keys, 90 days", UsageQuery(groupBy: [.key], from: day - 90 * 86_400, to: day, limit: 10)),
        ("by day, 90 days", UsageQuery(groupBy: [.day], from: day - 90 * 86_400, to: day)),
        ("by key, one day, hourly cells", UsageQuery(groupBy: [.key], from: day - 86_400 + 3600, to: day)),
    ]
    var results: [(String, Double)] = []
    for (name, query) in cases {
        _ = try await store.usage(query)  // warm
        var best = Double.infinity
        for _ in 0..<5 {
            let started = ContinuousClock.now
            _ = try await store.usage(query)
            best = min(best, (ContinuousClock.now - started) / .milliseconds(1))
        }
        results.append((name, best))
    }
    return results
}

let directory = try TemporaryDirectory()
defer { directory.remove() }
var rows: [String] = []
for kind in ["SQLite", "PostgreSQL"] {
    func makeStore() async throws -> (any Store, () -> Void) {
        if kind == "SQLite" {
            let store = try SQLiteStore(path: directory.file("bench-\(UUID().uuidString).db"))
            try await store.migrate()
            return (store, {})
        }
        let server = try await TemporaryPostgres.server()
        let store = try PostgresStore(url: "postgres://postgres@127.0.0.1:\(server.port)/\(try await server.createDatabase())", logger: logger)
        try await store.migrate()
        return (store, { store.shutdown() })
    }
    var (store, close) = try await makeStore()
    let rate = try await ingest(store)
    rows.append("| \(kind) | usage ingest, \(agents) agents × \(batchesPerAgent) batches of 4 cells, \(concurrency) at once | \(Int(rate)) batches/s |")
    close()
    (store, close) = try await makeStore()
    let bundle = try await bundleBuild(store)
    rows.append("| \(kind) | bundle build and sign, \(bundle.keys) keys (\(bundle.bytes / 1024) KiB) | \(String(format: "%.0f", bundle.seconds * 1000)) ms |")
    close()
    (store, close) = try await makeStore()
    let fillStarted = ContinuousClock.now
    let cells = try await fillRollups(store)
    rows.append("| \(kind) | rollup fill: \(cells) hourly cells standing for \(cells * 11 / 1_000_000) M requests | \(String(format: "%.1f", (ContinuousClock.now - fillStarted) / .seconds(1))) s |")
    for (name, milliseconds) in try await queries(store) {
        rows.append("| \(kind) | query: \(name) | \(String(format: "%.1f", milliseconds)) ms |")
    }
    close()
}
print("| store | measure | result |")
print("| --- | --- | ---: |")
for row in rows { print(row) }
