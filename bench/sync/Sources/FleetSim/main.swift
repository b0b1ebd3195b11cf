import Foundation
import NIOCore
import NIOPosix
import SluiceAgent
import SluiceHTTP2
import SluicePolicy
import SluiceTestSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Figures, not assertions: a fleet of light simulated agents speaking the real agent API to
// one sluice-control process. Each holds a policy long-poll open and, every flush interval,
// posts a usage batch carrying its lease renewal, as sluice-agent does. See bench/README.md.

let environment = ProcessInfo.processInfo.environment
guard let controlBinary = environment["SLUICE_CONTROL_BIN"] else { fatalError("run through bench/fleet.sh") }
let agentCount = Int(environment["BENCH_FLEET_AGENTS"] ?? "") ?? 2_000
let flushSeconds = Int(environment["BENCH_FLUSH_SECONDS"] ?? "") ?? 5
let windowSeconds = Int(environment["BENCH_WINDOW_SECONDS"] ?? "") ?? 60
let usePostgres = environment["BENCH_FLEET_DB"] == "postgres"
/// As agents before the renewal rode on the batch: two calls a cycle.
let separateRenewal = environment["BENCH_FLEET_SEPARATE_RENEWAL"] == "1"
let adminToken = "fleet-bench-admin-token-0123456789"
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let directory = try TemporaryDirectory()

let database: String
let postgres: (server: TemporaryPostgres, name: String)?
if usePostgres {
    let server = try await TemporaryPostgres.server()
    let name = try await server.createDatabase()
    database = "postgres://postgres@127.0.0.1:\(server.port)/\(name)"
    postgres = (server, name)
} else {
    database = "sqlite:" + directory.file("control.db")
    postgres = nil
}

/// The database's size on disk: PostgreSQL's own figure, or SQLite's file with its WAL.
func databaseBytes() async throws -> Int64 {
    if let postgres { return try await postgres.server.databaseBytes(postgres.name) }
    let path = directory.file("control.db")
    return [path, path + "-wal"].reduce(Int64(0)) { total, file in
        total + ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int64) ?? 0)
    }
}
let controlPort = try await ExternalProcess.freePort(group: group)
let control = try await ExternalProcess(
    executable: controlBinary,
    arguments: [
        "--listen", "127.0.0.1:\(controlPort)", "--db", database, "--data-dir", directory.file("control"),
        "--log-level", "error",
    ],
    port: controlPort, group: group,
    environment: [
        "SLUICE_ADMIN_TOKEN": adminToken, "SLUICE_KEY_PEPPER": "fleet-bench-pepper-0123456789", "PATH": "/usr/bin:/bin",
    ],
    stderrPath: directory.file("control.log"))

@discardableResult
func admin(_ method: String, _ path: String, _ json: String = "") async throws -> [String: Any] {
    let response = try await TestHTTPClient.request(
        method, path, json: json, bearer: adminToken, port: controlPort, group: group)
    guard (200..<300).contains(response.status) else {
        fatalError("\(method) \(path): \(response.status) \(response.text)")
    }
    return (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
}

try await admin(
    "POST", "/v1/admin/models",
    #"{"alias":"gpt-test","deployments":[{"api_base":"http://127.0.0.1:9/v1","upstream_model":"mock"}],"#
        + #""input_cost_per_token":0.000001,"output_cost_per_token":0.000002}"#
)
try await admin("POST", "/v1/admin/services", #"{"name":"*","keyless":true}"#)
try await admin("POST", "/v1/admin/teams", #"{"name":"ml","limits":{"requests_per_minute":100000}}"#)
try await admin("POST", "/v1/admin/keys", #"{"id":"ml-ci","team":"ml"}"#)
try await admin("POST", "/v1/admin/keys", #"{"id":"to-revoke","team":"ml"}"#)

/// What the simulated agents saw.
final class Observations: Sendable {
    let flushMillis = Mutex<[Double]>([])
    let renewMillis = Mutex<[Double]>([])
    let failures = Mutex(0)
    /// A few of the failures' reasons, to tell them apart.
    let reasons = Mutex<Set<String>>([])

    func failed(_ reason: String) {
        failures.withLock { $0 += 1 }
        reasons.withLock { if $0.count < 5 { $0.insert(String(reason.prefix(160))) } }
    }
    /// When each agent's long-poll brought a version at or above `awaited`.
    let awaited = Atomic<Int64>(Int64.max)
    /// The newest policy version any agent has been sent.
    let newest = Atomic<Int64>(0)
    let arrivals = Mutex<[Double]>([])
    let waiting = Atomic<Int>(0)
    let measuring = Atomic<Bool>(false)
}
let observed = Observations()

struct SimulatedAgent: Sendable {
    let id: String
    let client: ControlPlaneClient
}
var agents: [SimulatedAgent] = []
for index in 0..<agentCount {
    let token = try await admin("POST", "/v1/admin/agents", #"{"id":"sim-\#(index)"}"#)["token"] as! String
    agents.append(
        SimulatedAgent(
            id: "sim-\(index)",
            client: try ControlPlaneClient(
                url: "http://127.0.0.1:\(controlPort)", token: Secret(token), caFile: nil,
                upstream: UpstreamClient(group: group), group: group)))
}
let idle = control.usage
print(
    "\(agentCount) simulated agents on \(usePostgres ? "PostgreSQL" : "SQLite"); flush and lease renewal every "
        + "\(flushSeconds) s; window \(windowSeconds) s"
)

let revokedAt = Mutex<ContinuousClock.Instant?>(nil)
let start = ContinuousClock.now
let windowStart = start + .seconds(15)
let windowEnd = windowStart + .seconds(windowSeconds)
let stopAt = windowEnd + .seconds(10)

/// An answer's status and the start of its body, for a failure's reason.
@Sendable func describe(_ response: ControlPlaneClient.Response) -> String {
    "HTTP \(response.status) \(String(decoding: response.body.prefix(100), as: UTF8.self))"
}

func millis(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

try await withThrowingTaskGroup(of: Void.self) { tasks in
    for (index, agent) in agents.enumerated() {
        // The policy long-poll.
        tasks.addTask {
            var version: String?
            while ContinuousClock.now < stopAt {
                var headers: [(name: String, value: String)] = []
                if let version { headers.append(("if-none-match", version)) }
                observed.waiting.add(1, ordering: .relaxed)
                let response: ControlPlaneClient.Response
                do {
                    response = try await agent.client.get(
                        "/v1/agent/policy?wait=30", headers: headers, timeout: .seconds(40))
                } catch {
                    observed.waiting.subtract(1, ordering: .relaxed)
                    observed.failed("long-poll: \(error)")
                    try await Task.sleep(for: .seconds(1))
                    continue
                }
                observed.waiting.subtract(1, ordering: .relaxed)
                if response.status != 200, response.status != 304 {
                    observed.failed("long-poll: HTTP \(response.status)")
                }
                if response.status == 200, let tag = response.header("etag") {
                    version = tag
                    let number = Int64(tag.filter(\.isNumber)) ?? 0
                    observed.newest.max(number, ordering: .relaxed)
                    if number >= observed.awaited.load(ordering: .relaxed), let at = revokedAt.withLock({ $0 }) {
                        observed.arrivals.withLock { $0.append(millis(ContinuousClock.now - at)) }
                    }
                }
            }
        }
        // Usage and leases, every flush interval, from a phase spread over it.
        tasks.addTask {
            var sequence: Int64 = 0
            var next = start + .seconds(flushSeconds) * (Double(index) / Double(agentCount))
            while next < stopAt {
                try await Task.sleep(until: next)
                next = next + .seconds(flushSeconds)
                sequence += 1
                let now = Int64(Date().timeIntervalSince1970)
                // What sluice-agent sends: one batch folded per hour, team, service, key and model,
                // and one lease demand.
                let renewal = """
                    {"instance":"e1","demands":[{"scope_kind":"team","scope":"ml","limit":"requests_per_minute",\
                    "per_minute":60,"limit_value":100000,"held":10}]}
                    """
                let batch = """
                    {"agent_id":"\(agent.id)","epoch":"e1","sequence":\(sequence),"deltas":[{\
                    "hour":\(now - now % 3600),"team":"ml","service":"shop/checkout-\(index % 20)",\
                    "key_id":"ml-ci","model":"gpt-test","requests":5,\
                    "prompt_tokens":500,"completion_tokens":250,"cost_pico_usd":1000000,"denials":{}}]\
                    \(separateRenewal ? "" : ",\"leases\":" + renewal)}
                    """
                let measuring = observed.measuring.load(ordering: .relaxed)
                let flushStarted = ContinuousClock.now
                let flushed = try? await agent.client.post(
                    "/v1/agent/usage", json: Array(batch.utf8), timeout: .seconds(30))
                let renewStarted = ContinuousClock.now
                if flushed?.status != 200 {
                    observed.failed("usage: \(flushed.map(describe) ?? "no answer")")
                } else if !separateRenewal, sequence > 1,
                    flushed.map({ String(decoding: $0.body, as: UTF8.self) })?.contains(#""grants":[{"#) != true
                {
                    // With PostgreSQL a first claim's grant comes with the next allocation.
                    observed.failed("usage: no lease grant in \(flushed.map(describe) ?? "")")
                }
                if separateRenewal {
                    let renewed = try? await agent.client.post(
                        "/v1/agent/leases", json: Array(renewal.utf8), timeout: .seconds(30))
                    if renewed?.status != 200 { observed.failed("leases: \(renewed.map(describe) ?? "no answer")") }
                }
                let finished = ContinuousClock.now
                if measuring {
                    observed.flushMillis.withLock { $0.append(millis(renewStarted - flushStarted)) }
                    if separateRenewal { observed.renewMillis.withLock { $0.append(millis(finished - renewStarted)) } }
                }
            }
        }
    }
    // The measuring window, then a revocation, while the agents run.
    tasks.addTask {
        try await Task.sleep(until: windowStart)
        let rssWaiting = control.usage.residentBytes
        let cpuAtStart = control.usage.cpuSeconds
        let bytesAtStart = try await databaseBytes()
        observed.measuring.store(true, ordering: .relaxed)
        try await Task.sleep(until: windowEnd)
        observed.measuring.store(false, ordering: .relaxed)
        let cpu = control.usage.cpuSeconds - cpuAtStart
        let bytesAtEnd = try await databaseBytes()
        let growthPerAgentDay = Double(bytesAtEnd - bytesAtStart) / Double(agentCount) * 86_400 / Double(windowSeconds)
        let rss = control.usage.residentBytes
        let waiting = observed.waiting.load(ordering: .relaxed)
        func percentile(_ values: [Double], _ p: Double) -> Double {
            let sorted = values.sorted()
            return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
        let flushes = observed.flushMillis.withLock { $0 }
        let renewals = observed.renewMillis.withLock { $0 }
        let cycles = Double(agentCount * windowSeconds) / Double(flushSeconds)
        func format(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }
        let perWaiting = Double(rssWaiting - idle.residentBytes) / Double(max(1, agentCount)) / 1024
        let failures = "\(observed.failures.withLock { $0 }) \(observed.reasons.withLock { $0 }.sorted())"
        var rows: [(String, String)] = [
            (
                "control-plane CPU per agent per cycle (usage batch + lease renewal + its share of long-polls)",
                "\(format(cpu * 1000 / cycles, 3)) ms"
            ),
            ("control-plane CPU, whole", "\(format(cpu / Double(windowSeconds) * 100, 0)) % of a core"),
            (
                separateRenewal ? "usage batch p50 / p99" : "usage batch carrying the lease renewal p50 / p99",
                "\(format(percentile(flushes, 0.5), 1)) / \(format(percentile(flushes, 0.99), 1)) ms"
            ),
        ]
        if separateRenewal {
            rows.append(
                (
                    "lease renewal p50 / p99",
                    "\(format(percentile(renewals, 0.5), 1)) / \(format(percentile(renewals, 0.99), 1)) ms"
                ))
        }
        rows += [
            ("cycles measured / failed calls", "\(flushes.count) / \(failures)"),
            ("long-polls waiting at the end", "\(waiting)"),
            (
                "control-plane RSS: idle / with every long-poll waiting",
                "\(idle.residentBytes >> 20) / \(rss >> 20) MiB (\(format(perWaiting, 1)) KiB per waiting agent)"
            ),
            (
                "database size at the window's start / end (growth per agent-day at this rate)",
                "\(format(Double(bytesAtStart) / 1_048_576, 1)) / \(format(Double(bytesAtEnd) / 1_048_576, 1)) MiB "
                    + "(\(format(growthPerAgentDay / 1024, 1)) KiB)"
            ),
        ]
        let store = usePostgres ? "PostgreSQL" : "SQLite"
        let calls = separateRenewal ? "a batch and a renewal" : "one batch carrying the renewal"
        print(
            "\n| \(agentCount) agents, \(store), \(calls) per agent every \(flushSeconds) s | value |\n| --- | ---: |")
        for (label, value) in rows { print("| \(label) | \(value) |") }
        // Revocation: any version after the newest seen so far carries it.
        observed.awaited.store(observed.newest.load(ordering: .relaxed) + 1, ordering: .relaxed)
        revokedAt.withLock { $0 = .now }
        try await admin("POST", "/v1/admin/keys/to-revoke/revoke")
    }
    try await tasks.waitForAll()
}
let arrivals = observed.arrivals.withLock { $0 }.sorted()
if arrivals.isEmpty {
    print("| revocation reaching the agents | not measured |")
} else {
    let p99 = arrivals[min(arrivals.count - 1, arrivals.count * 99 / 100)]
    print(
        "| revocation reaching \(arrivals.count) of \(agentCount) agents: p50 / p99 / max | "
            + "\(Int(arrivals[arrivals.count / 2])) / \(Int(p99)) / \(Int(arrivals.last!)) ms |")
}
await control.stop()
directory.remove()
_ = postgres?.server
