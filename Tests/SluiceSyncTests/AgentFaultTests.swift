import Foundation
import NIOCore
import NIOPosix
import SluiceAgent
import SluiceTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Fault tests on real processes: `sluice-control` and `sluice-agent` binaries, killed with
/// SIGKILL, on real sockets, a real SQLite file and a real PostgreSQL server.
@Suite("fault tests: real agents and control planes, killed and restarted", .serialized)
struct AgentFaultTests {
    static func binary(_ name: String) -> String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// A `sluice-control` process that can be killed and started again on the same port,
    /// database and data directory.
    final class ControlProcess: @unchecked Sendable {
        let port: Int
        let database: String
        let dataDirectory: String
        let logPath: String
        let group: any EventLoopGroup
        private(set) var process: ExternalProcess?

        init(port: Int, database: String, dataDirectory: String, logPath: String, group: any EventLoopGroup) {
            self.port = port
            self.database = database
            self.dataDirectory = dataDirectory
            self.logPath = logPath
            self.group = group
        }

        func start() async throws {
            process = try await ExternalProcess(
                executable: AgentFaultTests.binary("sluice-control"),
                arguments: ["--listen", "127.0.0.1:\(port)", "--db", database, "--data-dir", dataDirectory],
                port: port, group: group,
                environment: [
                    "SLUICE_ADMIN_TOKEN": SyncHarness.adminToken, "SLUICE_KEY_PEPPER": SyncHarness.pepper.reveal(),
                    "PATH": "/usr/bin:/bin",
                ],
                stderrPath: logPath)
        }

        func kill9() async {
            guard let process else { return }
            process.send(signal: SIGKILL)
            _ = await process.waitForExit()
            self.process = nil
        }

        func admin(_ method: String, _ path: String, json: String = "") async throws -> TestResponse {
            try await TestHTTPClient.request(
                method, path, json: json, bearer: SyncHarness.adminToken, port: port, group: group)
        }

        /// A model on `mockPort`, every service keyless, and a token file for `agentID`.
        func seed(mockPort: Int, agentIDs: [String], directory: TemporaryDirectory) async throws {
            #expect(
                try await admin(
                    "POST", "/v1/admin/models",
                    json: """
                        {"alias":"gpt-test","deployments":[{"api_base":"http://127.0.0.1:\(mockPort)/v1",
                         "upstream_model":"mock"}],
                         "input_cost_per_token":0.000001,"output_cost_per_token":0.000002}
                        """
                ).status == 201)
            #expect(try await admin("POST", "/v1/admin/services", json: #"{"name":"*","keyless":true}"#).status == 201)
            for id in agentIDs {
                let response = try await admin("POST", "/v1/admin/agents", json: #"{"id":"\#(id)"}"#)
                let token =
                    (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["token"] as? String
                    ?? ""
                try token.write(toFile: directory.file("\(id).token"), atomically: true, encoding: .utf8)
            }
        }
    }

    /// Starts a `sluice-agent` process for `id` and returns once it is ready (policy in force).
    static func startAgent(
        id: String, control: ControlProcess, directory: TemporaryDirectory, group: any EventLoopGroup,
        flushIntervalSeconds: Double, crashAt: String? = nil
    ) async throws -> ExternalProcess {
        let port = try await ExternalProcess.freePort(group: group)
        var environment = [
            "PATH": "/usr/bin:/bin", "SLUICE_SERVICE": "checkout", "SLUICE_NAMESPACE": "shop", "POD_NAME": id,
        ]
        if let crashAt { environment["SLUICE_TEST_CRASH_AT"] = crashAt }
        let agent = try await ExternalProcess(
            executable: binary("sluice-agent"),
            arguments: [
                "--control-plane", "http://127.0.0.1:\(control.port)", "--agent-token-file",
                directory.file("\(id).token"),
                "--policy-public-key", "\(control.dataDirectory)/signing-key.pub", "--state-dir",
                directory.file("\(id)-state"),
                "--listen", "127.0.0.1:\(port)", "--metrics-listen", "off", "--flush-interval-seconds",
                String(flushIntervalSeconds),
            ],
            port: port, group: group, environment: environment, stderrPath: directory.file("\(id).log"))
        let ready = await eventually {
            (try? await TestHTTPClient.get("/readyz", port: port, group: group).status) == 200
        }
        #expect(ready, "agent \(id) never became ready")
        return agent
    }

    /// One call to `port`, counted in `ledger`; true when it was answered 200.
    static func call(_ ledger: Ledger, port: Int, group: any EventLoopGroup, content: String) async -> Bool {
        guard
            let response = try? await TestHTTPClient.post(
                "/v1/chat/completions",
                json: #"{"model":"gpt-test","messages":[{"role":"user","content":"\#(content)"}]}"#, port: port,
                group: group)
        else { return false }
        return ledger.count(response)
    }

    static func spoolFiles(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/spool")) ?? [])
            .filter { $0.hasPrefix("batch-") || $0.hasPrefix("journal-") }.sorted()
    }

    @Test(
        "an agent SIGKILLed at every point of the flush cycle, 100 times over: totals exactly equal its ledger"
    )
    func agentKilledDuringFlush() async throws {
        let fixture = try await Fixture.start(agentIDs: ["pod-1"])
        let (group, directory, control) = (fixture.group, fixture.directory, fixture.control)
        let ledger = Ledger()
        var killedBy: [String: Int] = [:]

        // Each cycle: calls answered in full, then SIGTERM, whose final flush is where the
        // agent dies: at a named point of the cycle (the agent kills itself with SIGKILL
        // there), or by a SIGKILL from here at a random moment of the flush.
        let points = UsageSpool.CrashPoint.allCases.map(\.rawValue) + ["random"]
        for cycle in 0..<100 {
            let point = points[cycle % points.count]
            let agent = try await Self.startAgent(
                id: "pod-1", control: control, directory: directory, group: group, flushIntervalSeconds: 3600,
                crashAt: point == "random" ? nil : point)
            for call in 0..<(1 + cycle % 3) {
                #expect(await Self.call(ledger, port: agent.port, group: group, content: "cycle \(cycle) call \(call)"))
            }
            agent.send(signal: SIGTERM)
            if point == "random" {
                try await Task.sleep(for: .microseconds(Int.random(in: 0..<20_000)))
                agent.send(signal: SIGKILL)
            }
            let status = await agent.waitForExit()
            killedBy[status == SIGKILL ? point : "\(point) (exited \(status))", default: 0] += 1
        }
        // Every named point was reached and killed the agent there.
        for point in UsageSpool.CrashPoint.allCases {
            #expect(killedBy[point.rawValue] == 20, "\(point.rawValue): \(killedBy)")
        }

        // A last clean run sends whatever the kills left behind, then stops cleanly.
        let last = try await Self.startAgent(
            id: "pod-1", control: control, directory: directory, group: group, flushIntervalSeconds: 3600)
        last.send(signal: SIGTERM)
        #expect(await last.waitForExit() == 0)
        #expect(Self.spoolFiles(directory.file("pod-1-state")).isEmpty)
        let calls: Int64 = (0..<100).reduce(0) { sum, cycle in sum + 1 + Int64(cycle % 3) }
        #expect(ledger.value.requests == calls)
        try await Self.expectTotals(of: control, equal: ledger)
        try await fixture.tearDown()
    }

    /// The control plane's totals against what callers were answered: exactly equal.
    static func expectTotals(of control: ControlProcess, equal ledger: Ledger) async throws {
        let totals = try await UsageTotals.recorded(
            adminToken: SyncHarness.adminToken, port: control.port, group: control.group
        ).totals
        #expect(totals == ledger.value)
    }

    /// What each process-level test starts with: a mock provider, a `sluice-control` process
    /// on SQLite or a fresh PostgreSQL database, seeded with one alias and tokens for `agentIDs`.
    struct Fixture {
        let group: MultiThreadedEventLoopGroup
        let directory: TemporaryDirectory
        let mock: MockProvider
        let mockPort: Int
        let control: ControlProcess

        static func start(agentIDs: [String], store: String = "sqlite") async throws -> Fixture {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
            let directory = try TemporaryDirectory()
            let mock = try MockProvider(configuration: .init(transport: .plaintext), group: group)
            let mockPort = try await mock.start()
            var database = "sqlite:\(directory.file("control.db"))"
            if store == "postgres" {
                let server = try await TemporaryPostgres.server()
                database = "postgres://postgres@127.0.0.1:\(server.port)/\(try await server.createDatabase())"
            }
            let control = ControlProcess(
                port: try await ExternalProcess.freePort(group: group), database: database,
                dataDirectory: directory.file("control"), logPath: directory.file("control.log"), group: group)
            try await control.start()
            try await control.seed(mockPort: mockPort, agentIDs: agentIDs, directory: directory)
            return Fixture(group: group, directory: directory, mock: mock, mockPort: mockPort, control: control)
        }

        func tearDown() async throws {
            await control.kill9()
            try await mock.stop()
            try await group.shutdownGracefully()
            directory.remove()
        }
    }

    @Test("SIGTERM with 100 streams open: every stream ends whole, usage is flushed, the agent exits 0 in time")
    func drainHundredStreams() async throws {
        let fixture = try await Fixture.start(agentIDs: ["pod-drain"])
        let (group, directory, mock, mockPort, control) = (
            fixture.group, fixture.directory, fixture.mock, fixture.mockPort, fixture.control
        )
        // Streams of 20 chunks 50 ms apart: about a second each, so all 100 are open at SIGTERM.
        let slow = """
            {"alias":"slow","deployments":[{"api_base":"http://127.0.0.1:\(mockPort)/v1",
             "upstream_model":"mock+chunks=20+chunk_delay_ms=50"}],
             "input_cost_per_token":0.000001,"output_cost_per_token":0.000002}
            """
        #expect(try await control.admin("POST", "/v1/admin/models", json: slow).status == 201)
        // No periodic flush: only the one at shutdown can deliver the usage.
        let agent = try await Self.startAgent(
            id: "pod-drain", control: control, directory: directory, group: group, flushIntervalSeconds: 3600)

        let streams = 100
        let body =
            #"{"model":"slow","stream":true,"stream_options":{"include_usage":true},"#
            + #""messages":[{"role":"user","content":"drain me"}]}"#
        let port = agent.port
        let calls = Task {
            await withTaskGroup(of: TestResponse?.self) { tasks in
                for _ in 0..<streams {
                    tasks.addTask {
                        try? await TestHTTPClient.post("/v1/chat/completions", json: body, port: port, group: group)
                    }
                }
                var answers: [TestResponse?] = []
                for await answer in tasks { answers.append(answer) }
                return answers
            }
        }
        await mock.waitForRequests(streams)
        let signalled = ContinuousClock.now
        agent.send(signal: SIGTERM)
        let status = await agent.waitForExit()
        let took = ContinuousClock.now - signalled
        let answers = await calls.value

        #expect(status == 0)
        // Well inside a pod's default 30 s grace period.
        #expect(took < .seconds(30), "exited \(took) after SIGTERM")
        let ledger = Ledger()
        for answer in answers {
            guard let answer else {
                Issue.record("a stream got no answer")
                continue
            }
            if !ledger.count(stream: answer) {
                Issue.record("a stream did not end whole: \(answer.status) \(answer.text.suffix(200))")
            }
        }
        #expect(ledger.value.requests == Int64(streams))
        #expect(Self.spoolFiles(directory.file("pod-drain-state")).isEmpty, "usage was left in the spool")
        try await Self.expectTotals(of: control, equal: ledger)
        try await fixture.tearDown()
    }

    @Test(
        "the control plane SIGKILLed mid-flush and restarted, again and again: no loss, no double count",
        arguments: ["sqlite", "postgres"])
    func controlPlaneKilledDuringFlushes(store: String) async throws {
        let ids = ["pod-1", "pod-2", "pod-3"]
        let fixture = try await Fixture.start(agentIDs: ids, store: store)
        let (group, directory, control) = (fixture.group, fixture.directory, fixture.control)
        var agents: [ExternalProcess] = []
        for id in ids {
            agents.append(
                try await Self.startAgent(
                    id: id, control: control, directory: directory, group: group, flushIntervalSeconds: 0.05))
        }
        let ledger = Ledger()
        let running = RunningFlag()

        // Steady calls on every agent while the control plane dies and comes back.
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for agent in agents {
                let port = agent.port
                tasks.addTask {
                    var call = 0
                    while running.isSet {
                        #expect(await Self.call(ledger, port: port, group: group, content: "call \(call)"))
                        call += 1
                    }
                }
            }
            for _ in 0..<5 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 150..<400)))
                await control.kill9()
                try await Task.sleep(for: .milliseconds(Int.random(in: 50..<250)))
                try await control.start()
            }
            try await Task.sleep(for: .milliseconds(200))
            running.clear()
            try await tasks.waitForAll()
        }

        // Drain: each agent stops on SIGTERM after its final flush.
        for agent in agents {
            agent.send(signal: SIGTERM)
            #expect(await agent.waitForExit() == 0)
        }
        for id in ids { #expect(Self.spoolFiles(directory.file("\(id)-state")).isEmpty, "\(id) left usage behind") }
        #expect(ledger.value.requests > 50)
        try await Self.expectTotals(of: control, equal: ledger)
        try await fixture.tearDown()
    }
}

/// Tells load loops to stop.
final class RunningFlag: Sendable {
    private let value = Atomic<Bool>(true)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func clear() { value.store(false, ordering: .relaxed) }
}
