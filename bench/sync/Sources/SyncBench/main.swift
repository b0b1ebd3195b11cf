#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SluiceAgent
import SluicePolicy
import SluiceHTTP2
import SluiceTestSupport
import Synchronization

// Figures, not assertions: see bench/README.md for what each one means.

let environment = ProcessInfo.processInfo.environment
guard let controlBinary = environment["SLUICE_CONTROL_BIN"] else { fatalError("run through bench/sync.sh") }
let agentCount = Int(environment["BENCH_AGENTS"] ?? "") ?? 50
let windowSeconds = Int(environment["BENCH_WINDOW_SECONDS"] ?? "") ?? 20
let adminToken = "sync-bench-admin-token-0123456789"
let pepper = "sync-bench-pepper-0123456789"
let teamPerMinute = 30_000

let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
let directory = try TemporaryDirectory()
let mock = try MockProvider(configuration: .init(transport: .plaintext), group: group)
let mockPort = try await mock.start()
let controlPort = try await ExternalProcess.freePort(group: group)
let control = try await ExternalProcess(
    executable: controlBinary,
    arguments: ["--listen", "127.0.0.1:\(controlPort)", "--db", "sqlite:\(directory.file("control.db"))", "--data-dir", directory.file("control")],
    port: controlPort, group: group, environment: ["SLUICE_ADMIN_TOKEN": adminToken, "SLUICE_KEY_PEPPER": pepper, "PATH": "/usr/bin:/bin"],
    stderrPath: directory.file("control.log"))

@discardableResult
func admin(_ method: String, _ path: String, _ json: String = "") async throws -> [String: Any] {
    let response = try await TestHTTPClient.request(method, path, json: json, bearer: adminToken, port: controlPort, group: group)
    guard (200..<300).contains(response.status) else { fatalError("\(method) \(path): \(response.status) \(response.text)") }
    return (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
}

for alias in ["gpt-test", "gpt-test-2"] {
    try await admin("POST", "/v1/admin/models", """
        {"alias":"\(alias)","deployments":[{"api_base":"http://127.0.0.1:\(mockPort)/v1","upstream_model":"mock"}],
         "input_cost_per_token":0.000001,"output_cost_per_token":0.000002}
        """)
}
try await admin("POST", "/v1/admin/services", #"{"name":"*","keyless":true}"#)
try await admin("PUT", "/v1/admin/settings", #"{"lease_seconds":5,"lease_fallback":"zero","lease_minimum_share_percent":50}"#)
try await admin("POST", "/v1/admin/teams", #"{"name":"ml","limits":{"requests_per_minute":\#(teamPerMinute)}}"#)
try await admin("POST", "/v1/admin/teams", #"{"name":"ops"}"#)
let teamKey = try await admin("POST", "/v1/admin/keys", #"{"id":"ml-ci","team":"ml"}"#)["key"] as! String
let revokedKey = try await admin("POST", "/v1/admin/keys", #"{"id":"ops-ci","team":"ops"}"#)["key"] as! String

/// One in-process agent on the control plane.
struct Agent {
    let mode: ControlPlaneMode
    let serviceGroup: ServiceGroup
    let port: Int
}

func startAgent(_ id: String, flushInterval: Duration) async throws -> Agent {
    let token = try await admin("POST", "/v1/admin/agents", #"{"id":"\#(id)"}"#)["token"] as! String
    try token.write(toFile: directory.file("\(id).token"), atomically: true, encoding: .utf8)
    var logger = Logger(label: id)
    logger.logLevel = .error
    let mode = try ControlPlaneMode.start(
        url: "http://127.0.0.1:\(controlPort)", tokenFile: directory.file("\(id).token"), publicKeyFile: directory.file("control/signing-key.pub"),
        caFile: nil, stateDirectory: directory.file("\(id)-state"), local: AgentConfiguration(policy: Policy(version: "none", catalog: Catalog([]))),
        identity: ServiceIdentity(service: "checkout", namespace: "shop", pod: id), upstream: UpstreamClient(group: group), group: group,
        maxPolicyAgeSeconds: 3600, flushInterval: flushInterval, pepper: Secret(pepper), logger: logger, audit: MemoryAuditSink())
    let server = AgentServer(runtime: mode.runtime, group: group, address: ListenAddress(host: "127.0.0.1", port: 0), logger: logger)
    let serviceGroup = ServiceGroup(configuration: .init(services: mode.services + [.init(service: server)], logger: logger))
    Task { try await serviceGroup.run() }
    let port = try await server.boundPort.get()
    while (try? await TestHTTPClient.get("/readyz", port: port, group: group).status) != 200 { try await Task.sleep(for: .milliseconds(20)) }
    return Agent(mode: mode, serviceGroup: serviceGroup, port: port)
}

func chat(_ port: Int, key: String? = nil, model: String = "gpt-test") async -> Int {
    let json = #"{"model":"\#(model)","messages":[{"role":"user","content":"Say hello to the benchmark"}]}"#
    return (try? await TestHTTPClient.post("/v1/chat/completions", json: json, headers: key.map { [("Authorization", "Bearer \($0)")] } ?? [],
                                           port: port, group: group).status) ?? 0
}

func controlCPUSeconds() -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(control.processIdentifier)/stat", encoding: .utf8) else { return 0 }
    let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
    // utime and stime are fields 14 and 15; after the ")" they are the 12th and 13th.
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

var agents: [Agent] = []
for index in 0..<agentCount {
    agents.append(try await startAgent("pod-\(index)", flushInterval: .seconds(1)))
}
print("\(agentCount) agents ready; team limit \(teamPerMinute)/min; flush and lease renewal every 1 s; window \(windowSeconds) s")

// 1. Fleet limit under uneven load.
final class Tally: Sendable {
    let counts = Mutex<[Int: (admitted: Int, tried: Int)]>([:])
}
let tally = Tally()
let busy = 0..<(agentCount / 5)
let warmup = Duration.seconds(5)
let start = ContinuousClock.now
let window = (start: start + warmup, end: start + warmup + .seconds(windowSeconds))
var cpuAtStart = 0.0
try await withThrowingTaskGroup(of: Void.self) { tasks in
    for (index, agent) in agents.enumerated() {
        for _ in 0..<(busy.contains(index) ? 2 : 1) {
            tasks.addTask {
                while ContinuousClock.now < window.end {
                    let status = await chat(agent.port, key: teamKey)
                    let finished = ContinuousClock.now
                    if finished >= window.start, finished < window.end {
                        tally.counts.withLock {
                            $0[index, default: (0, 0)].tried += 1
                            if status == 200 { $0[index, default: (0, 0)].admitted += 1 }
                        }
                    }
                    if busy.contains(index) {
                        if status != 200 { try await Task.sleep(for: .milliseconds(20)) }
                    } else {
                        try await Task.sleep(for: .milliseconds(500))
                    }
                }
            }
        }
    }
    tasks.addTask { try await Task.sleep(until: window.start) }
    try await tasks.next()
    cpuAtStart = controlCPUSeconds()
    try await tasks.waitForAll()
}
let cpuUsed = controlCPUSeconds() - cpuAtStart
let counts = tally.counts.withLock { $0 }
let admitted = counts.values.map(\.admitted).reduce(0, +)
let allowed = Double(teamPerMinute) * Double(windowSeconds) / 60
let busyShares = busy.map { Double(counts[$0]?.admitted ?? 0) }
let jain = pow(busyShares.reduce(0, +), 2) / (Double(busyShares.count) * busyShares.map { $0 * $0 }.reduce(0, +))
let quiet = (busy.upperBound..<agentCount).map { counts[$0] ?? (0, 0) }
let quietServed = Double(quiet.map(\.admitted).reduce(0, +)) / Double(max(1, quiet.map(\.tried).reduce(0, +)))
print("""

| fleet limit, \(agentCount) agents (\(busy.count) busy with 2 callers, \(agentCount - busy.count) quiet at 2 calls/s) | value |
| --- | ---: |
| allowed in the window (one bucket's refill) | \(Int(allowed)) |
| admitted fleet-wide | \(admitted) |
| overshoot | \(String(format: "%.2f", (Double(admitted) / allowed - 1) * 100)) % |
| busy agents' admitted: min / mean / max | \(Int(busyShares.min() ?? 0)) / \(Int(busyShares.reduce(0, +) / Double(busyShares.count))) / \(Int(busyShares.max() ?? 0)) |
| Jain fairness among busy agents (1 = equal) | \(String(format: "%.3f", jain)) |
| quiet agents' calls served | \(String(format: "%.1f", quietServed * 100)) % |
| control-plane CPU per agent per 1 s cycle (flush + lease renewal) | \(String(format: "%.3f", cpuUsed * 1000 / Double(agentCount * windowSeconds))) ms |
""")

// 2. Revocation: time until every agent refuses the key.
for agent in agents where await chat(agent.port, key: revokedKey) != 200 { fatalError("the key to revoke is refused before revocation") }
let revokedAt = ContinuousClock.now
try await admin("POST", "/v1/admin/keys/ops-ci/revoke")
let delays = try await withThrowingTaskGroup(of: Duration.self) { tasks in
    for agent in agents {
        tasks.addTask {
            while await chat(agent.port, key: revokedKey) != 401 { try await Task.sleep(for: .milliseconds(5)) }
            return ContinuousClock.now - revokedAt
        }
    }
    var all: [Duration] = []
    for try await delay in tasks { all.append(delay) }
    return all.sorted()
}
func milliseconds(_ duration: Duration) -> String { String(format: "%.0f ms", Double(duration.components.attoseconds) / 1e15 + Double(duration.components.seconds) * 1000) }
print("| revocation refused by all \(agentCount) agents: p50 / max | \(milliseconds(delays[delays.count / 2])) / \(milliseconds(delays.last!)) |")

// 3. Flush size at 100 calls/s, default 5 s flush, two aliases.
let sized = try await startAgent("sized", flushInterval: .seconds(5))
let paced = ContinuousClock.now
for call in 0..<3_000 {
    try await Task.sleep(until: paced + .milliseconds(call * 10))
    _ = await chat(sized.port, model: call % 2 == 0 ? "gpt-test" : "gpt-test-2")
}
try await Task.sleep(for: .seconds(6))
var metrics: [UInt8] = []
sized.mode.runtime.metrics.registry.emit(into: &metrics)
let bytesLine = String(decoding: metrics, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("sluice_usage_flushed_bytes_total") }
let bytes = Double(bytesLine?.split(separator: " ").last ?? "0") ?? 0
print("| usage flushed at 100 calls/s (two aliases), per agent per minute | \(Int(bytes * 60 / 30)) bytes |")

for agent in agents + [sized] { await agent.serviceGroup.triggerGracefulShutdown() }
await control.stop()
try await mock.stop()
directory.remove()
