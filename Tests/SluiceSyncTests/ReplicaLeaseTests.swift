import Foundation
import NIOPosix
import SluiceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Three real `sluice-control` replicas on one PostgreSQL database behind a load balancer, and
/// 21 `sluice-agent` processes reaching them through it, as in a cluster.
@Suite("fleet-wide limits across control-plane replicas")
struct ReplicaLeaseTests {
    @Test("3 replicas hold one team limit for 21 agents within 2 % + 1 call per agent, also after the allocator dies")
    func threeReplicas() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let directory = try TemporaryDirectory()
        let mock = try MockProvider(configuration: .init(transport: .plaintext), group: group)
        let mockPort = try await mock.start()
        let server = try await TemporaryPostgres.server()
        let url = "postgres://postgres@127.0.0.1:\(server.port)/\(try await server.createDatabase())"
        let shared = directory.file("shared")
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("sluice-control").path
        var replicas: [ExternalProcess] = []
        var agents: [ExternalProcess] = []
        do {
            for index in 0..<3 {
                let port = try await ExternalProcess.freePort(group: group)
                replicas.append(
                    try await ExternalProcess(
                        executable: binary,
                        arguments: ["--listen", "127.0.0.1:\(port)", "--db", url, "--data-dir", shared],
                        port: port, group: group,
                        environment: [
                            "SLUICE_ADMIN_TOKEN": SyncHarness.adminToken,
                            "SLUICE_KEY_PEPPER": SyncHarness.pepper.reveal(),
                            "PATH": "/usr/bin:/bin",
                        ],
                        stderrPath: directory.file("replica-\(index).log")))
            }
            let balancer = try await LoopbackBalancer(backends: replicas.map(\.port), group: group)
            func admin(_ method: String, _ path: String, _ json: String = "") async throws -> [String: Any] {
                let response = try await TestHTTPClient.request(
                    method, path, json: json, bearer: SyncHarness.adminToken, port: balancer.port, group: group)
                guard (200..<300).contains(response.status) else {
                    throw TestClientError(message: "\(method) \(path): \(response.status) \(response.text)")
                }
                return (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
            }
            let deployment = #"{"api_base":"http://127.0.0.1:\#(mockPort)/v1","upstream_model":"mock"}"#
            _ = try await admin("POST", "/v1/admin/models", #"{"alias":"gpt-test","deployments":[\#(deployment)]}"#)
            _ = try await admin("POST", "/v1/admin/services", #"{"name":"*","keyless":true}"#)
            _ = try await admin("PUT", "/v1/admin/settings", #"{"lease_seconds":5,"lease_fallback":"zero"}"#)
            // 30 a minute per agent; 5 busy agents offer 3 calls/s, 16 quiet ones 0.3/s.
            let perMinute = 630
            _ = try await admin(
                "POST", "/v1/admin/teams", #"{"name":"ml","limits":{"requests_per_minute":\#(perMinute)}}"#)
            let key = try #require(
                try await admin("POST", "/v1/admin/keys", #"{"id":"ml-ci","team":"ml"}"#)["key"] as? String)
            let publicKey = try String(contentsOfFile: "\(shared)/signing-key.pub", encoding: .utf8)
            for index in 0..<21 {
                let token = try #require(
                    try await admin("POST", "/v1/admin/agents", #"{"id":"pod-\#(index)"}"#)["token"] as? String)
                agents.append(
                    try await SyncHarness.launchAgentProcess(
                        id: "pod-\(index)", controlURL: "http://127.0.0.1:\(balancer.port)", token: token,
                        publicKey: publicKey, directory: directory, group: group))
            }
            for agent in agents {
                #expect(
                    await eventually {
                        (try? await TestHTTPClient.get("/readyz", port: agent.port, group: group).status) == 200
                    })
            }
            let start = ContinuousClock.now
            let before = (start: start + .seconds(25), end: start + .seconds(45))
            let after = (start: start + .seconds(50), end: start + .seconds(70))
            // At 45 s the replica allocating the grants is SIGKILLed; its agents' connections
            // move to the others through the balancer, and another replica takes the lock.
            let killer = Task {
                try await Task.sleep(until: before.end)
                let allocator = (0..<3).first { index in
                    let log =
                        (try? String(contentsOfFile: directory.file("replica-\(index).log"), encoding: .utf8)) ?? ""
                    return log.contains("allocates the fleet's lease grants")
                }
                let victim = allocator ?? 0
                replicas[victim].send(signal: SIGKILL)
                return (victim, allocator != nil)
            }
            let tallies = try await FleetLimitTests.openLoop(
                ports: agents.map(\.port), key: key, busy: 0..<5, start: start, windows: [before, after], group: group)
            let (victim, wasAllocator) = try await killer.value
            #expect(wasAllocator, "no replica logged that it allocates")
            let survivors = (0..<3).filter { $0 != victim }
            let logs = survivors.map {
                (try? String(contentsOfFile: directory.file("replica-\($0).log"), encoding: .utf8)) ?? ""
            }
            #expect(logs.contains { $0.contains("allocates the fleet's lease grants") }, "no replica took over")
            for (name, tally) in zip(["before", "after"], tallies) {
                let counts = tally.counts.withLock { $0 }
                let admitted = counts.values.map(\.admitted).reduce(0, +)
                let allowed = Double(perMinute * 20) / 60
                // One replica alone would let each agent take up to the whole limit.
                #expect(Double(admitted) <= allowed * 1.02 + 21, "\(name): admitted \(admitted) of \(allowed)")
                #expect(Double(admitted) >= allowed * 0.8, "\(name): admitted only \(admitted) of \(allowed)")
                for index in 0..<21 {
                    #expect((counts[index]?.admitted ?? 0) > 0, "\(name): agent \(index) starved: \(counts)")
                }
            }
        } catch {
            Issue.record("replica fleet failed: \(error)")
        }
        for agent in agents { await agent.stop() }
        for replica in replicas { await replica.stop() }
        try await mock.stop()
        try await group.shutdownGracefully()
        directory.remove()
    }
}
