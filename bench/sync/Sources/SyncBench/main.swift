import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SluiceAgent
import SluiceHTTP2
import SluicePolicy
import SluiceTestSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Figures, not assertions: see bench/README.md for what each one means.

let environment = ProcessInfo.processInfo.environment
guard let controlBinary = environment["SLUICE_CONTROL_BIN"] else { fatalError("run through bench/sync.sh") }
let agentCount = Int(environment["BENCH_AGENTS"] ?? "") ?? 50
let windowSeconds = Int(environment["BENCH_WINDOW_SECONDS"] ?? "") ?? 60
let adminToken = "sync-bench-admin-token-0123456789"
let pepper = "sync-bench-pepper-0123456789"

let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
let directory = try TemporaryDirectory()
let mock = try MockProvider(configuration: .init(transport: .plaintext), group: group)
let mockPort = try await mock.start()
let controlPort = try await ExternalProcess.freePort(group: group)
let control = try await ExternalProcess(
    executable: controlBinary,
    arguments: [
        "--listen", "127.0.0.1:\(controlPort)", "--db", "sqlite:\(directory.file("control.db"))", "--data-dir",
        directory.file("control"),
    ],
    port: controlPort, group: group,
    environment: ["SLUICE_ADMIN_TOKEN": adminToken, "SLUICE_KEY_PEPPER": pepper, "PATH": "/usr/bin:/bin"],
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

for alias in ["gpt-test", "gpt-test-2"] {
    try await admin(
        "POST", "/v1/admin/models",
        """
        {"alias":"\(alias)","deployments":[{"api_base":"http://127.0.0.1:\(mockPort)/v1","upstream_model":"mock"}],
         "input_cost_per_token":0.000001,"output_cost_per_token":0.000002}
        """)
}
try await admin("POST", "/v1/admin/services", #"{"name":"*","keyless":true}"#)
try await admin(
    "PUT", "/v1/admin/settings", #"{"lease_seconds":5,"lease_fallback":"zero","lease_minimum_share_percent":50}"#)
try await admin("POST", "/v1/admin/teams", #"{"name":"ops"}"#)
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
        url: "http://127.0.0.1:\(controlPort)", tokenFile: directory.file("\(id).token"),
        publicKeyFile: directory.file("control/signing-key.pub"),
        caFile: nil, stateDirectory: directory.file("\(id)-state"),
        local: AgentConfiguration(policy: Policy(version: "none", catalog: Catalog([]))),
        identity: ServiceIdentity(service: "checkout", namespace: "shop", pod: id),
        upstream: UpstreamClient(group: group), group: group,
        maxPolicyAgeSeconds: 3600, flushInterval: flushInterval, pepper: Secret(pepper), logger: logger,
        audit: MemoryAuditSink())
    let server = try AgentServer(
        runtime: mode.runtime, group: group, address: ListenAddress(host: "127.0.0.1", port: 0), logger: logger)
    let serviceGroup = ServiceGroup(
        configuration: .init(services: mode.services + [.init(service: server)], logger: logger))
    Task { try await serviceGroup.run() }
    let port = try await server.boundPort.get()
    while (try? await TestHTTPClient.get("/readyz", port: port, group: group).status) != 200 {
        try await Task.sleep(for: .milliseconds(20))
    }
    return Agent(mode: mode, serviceGroup: serviceGroup, port: port)
}

func chat(_ port: Int, key: String? = nil, model: String = "gpt-test") async -> Int {
    let json = #"{"model":"\#(model)","messages":[{"role":"user","content":"Say hello to the benchmark"}]}"#
    return
        (try? await TestHTTPClient.post(
            "/v1/chat/completions", json: json, headers: key.map { [("Authorization", "Bearer \($0)")] } ?? [],
            port: port, group: group
        ).status) ?? 0
}

var agents: [Agent] = []
for index in 0..<agentCount {
    agents.append(try await startAgent("pod-\(index)", flushInterval: .seconds(1)))
}
print("\(agentCount) agents ready; flush and lease renewal every 1 s")

// 1. Fleet limits under uneven open-loop demand, for each fleet size: a team of 30 calls a
// minute per agent; a quarter of the agents busy (3 calls/s each), the rest quiet (0.3/s,
// 18 a minute, below an even split of 30). Calls leave on schedule whatever the answers.
final class Tally: Sendable {
    let counts = Mutex<[Int: (admitted: Int, tried: Int)]>([:])
    /// Admitted calls by the second they were sent in, from the window's start.
    let bySecond = Mutex<[Int: Int]>([:])
}
let fleets = (environment["BENCH_FAIR_FLEETS"] ?? "8,50").split(separator: ",").compactMap { Int($0) }.filter {
    $0 <= agentCount
}
let warmupSeconds = Int(environment["BENCH_WARMUP_SECONDS"] ?? "") ?? 40
let chatBody = #"{"model":"gpt-test","messages":[{"role":"user","content":"Say hello to the benchmark"}]}"#
for fleet in fleets {
    let perMinute = 30 * fleet
    try await admin(
        "POST", "/v1/admin/teams", #"{"name":"fair-\#(fleet)","limits":{"requests_per_minute":\#(perMinute)}}"#)
    let key =
        try await admin("POST", "/v1/admin/keys", #"{"id":"fair-\#(fleet)","team":"fair-\#(fleet)"}"#)["key"] as! String
    let tally = Tally()
    let busy = 0..<(fleet / 4)
    let start = ContinuousClock.now
    let window = (start: start + .seconds(warmupSeconds), end: start + .seconds(warmupSeconds + windowSeconds))
    var cpuAtStart = 0.0
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        for index in 0..<fleet {
            let port = agents[index].port
            let period: Duration = busy.contains(index) ? .milliseconds(333) : .milliseconds(3_333)
            tasks.addTask {
                try await withThrowingTaskGroup(of: Void.self) { calls in
                    var next = start + period * (Double(index) / Double(fleet))
                    while next < window.end {
                        let sentAt = next
                        try await Task.sleep(until: sentAt)
                        calls.addTask {
                            let status =
                                (try? await TestHTTPClient.post(
                                    "/v1/chat/completions", json: chatBody,
                                    headers: [("Authorization", "Bearer \(key)")],
                                    port: port, group: group
                                ).status) ?? 0
                            guard sentAt >= window.start else { return }
                            tally.counts.withLock {
                                $0[index, default: (0, 0)].tried += 1
                                if status == 200 { $0[index, default: (0, 0)].admitted += 1 }
                            }
                            if status == 200 {
                                let second = Int(Double((sentAt - window.start).components.seconds))
                                tally.bySecond.withLock { $0[second, default: 0] += 1 }
                            }
                        }
                        next = next + period
                    }
                    try await calls.waitForAll()
                }
            }
        }
        tasks.addTask { try await Task.sleep(until: window.start) }
        try await tasks.next()
        cpuAtStart = control.usage.cpuSeconds
        try await tasks.waitForAll()
    }
    let cpuUsed = control.usage.cpuSeconds - cpuAtStart
    let counts = tally.counts.withLock { $0 }
    let admitted = counts.values.map(\.admitted).reduce(0, +)
    let allowed = Double(perMinute * windowSeconds) / 60
    // The fullest and emptiest 60 s (or whole-window) stretch, sliding by a second.
    let bySecond = tally.bySecond.withLock { $0 }
    let span = min(60, windowSeconds)
    let slides = (0...(windowSeconds - span)).map { from in
        (from..<(from + span)).map { bySecond[$0] ?? 0 }.reduce(0, +)
    }
    let allowedInSpan = Double(perMinute * span) / 60
    let busyCounts = busy.map { counts[$0] ?? (0, 0) }
    let quiet = (busy.upperBound..<fleet).map { counts[$0] ?? (0, 0) }
    let quietRefused = quiet.map { $0.tried - $0.admitted }.reduce(0, +)
    let busyAdmitted = busyCounts.map { Double($0.admitted) }
    let jain =
        pow(busyAdmitted.reduce(0, +), 2) / (Double(busyAdmitted.count) * busyAdmitted.map { $0 * $0 }.reduce(0, +))
    let mean = busyAdmitted.reduce(0, +) / Double(max(1, busyAdmitted.count))
    let busyRange = "\(Int(busyAdmitted.min() ?? 0)) / \(Int(mean)) / \(Int(busyAdmitted.max() ?? 0))"
    let heading =
        "\(fleet) agents: \(perMinute)/min, \(busy.count) busy at 3 calls/s,"
        + " \(fleet - busy.count) quiet at 0.3 calls/s, \(windowSeconds) s after \(warmupSeconds) s"
    let rows: [(String, String)] = [
        ("allowed in the window (the limit's rate)", "\(Int(allowed))"),
        ("admitted fleet-wide", "\(admitted) (\(String(format: "%.1f", Double(admitted) / allowed * 100)) %)"),
        (
            "admitted in a \(span) s stretch: least / most (of \(Int(allowedInSpan)))",
            "\(slides.min() ?? 0) / \(slides.max() ?? 0)"
        ),
        ("overshoot beyond 2 % + 1 call per agent", "\(max(0, admitted - Int(allowed * 1.02) - fleet)) calls"),
        ("busy agents' admitted: min / mean / max (Jain fairness)", "\(busyRange) (\(String(format: "%.3f", jain)))"),
        ("quiet agents' calls refused", "\(quietRefused) of \(quiet.map(\.tried).reduce(0, +))"),
        (
            "control-plane CPU per agent per 1 s cycle (flush + lease renewal)",
            "\(String(format: "%.3f", cpuUsed * 1000 / Double(fleet * windowSeconds))) ms"
        ),
    ]
    print("\n| \(heading) | value |\n| --- | ---: |")
    for (label, value) in rows { print("| \(label) | \(value) |") }
}

// 2. Revocation: time until every agent refuses the key.
for agent in agents where await chat(agent.port, key: revokedKey) != 200 {
    fatalError("the key to revoke is refused before revocation")
}
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
func milliseconds(_ duration: Duration) -> String {
    String(
        format: "%.0f ms", Double(duration.components.attoseconds) / 1e15 + Double(duration.components.seconds) * 1000)
}
print(
    "| revocation refused by all \(agentCount) agents: p50 / max | "
        + "\(milliseconds(delays[delays.count / 2])) / \(milliseconds(delays.last!)) |")

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
let bytesLine = String(decoding: metrics, as: UTF8.self).split(separator: "\n").first {
    $0.hasPrefix("sluice_usage_flushed_bytes_total")
}
let bytes = Double(bytesLine?.split(separator: " ").last ?? "0") ?? 0
print("| usage flushed at 100 calls/s (two aliases), per agent per minute | \(Int(bytes * 60 / 30)) bytes |")

for agent in agents + [sized] { await agent.serviceGroup.triggerGracefulShutdown() }
await control.stop()
try await mock.stop()
directory.remove()
