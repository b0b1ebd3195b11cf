import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SluiceAgent
import SluiceControl
import SluiceHTTP2
import SluicePolicy
import SluiceTestSupport
import Synchronization

/// A wall clock a test can move: real time plus an offset, so an hour can pass in a step.
final class TestClock: Sendable {
    private let offset = Atomic<Int64>(0)

    var now: @Sendable () -> Int64 { { [self] in Clocks.wallNanoseconds() + self.offset.load(ordering: .relaxed) } }

    func advance(seconds: Int64) { offset.add(seconds * 1_000_000_000, ordering: .relaxed) }
}

/// A real control plane (SQLite file, fixed port so that it can be stopped and started
/// again at the same address), a real mock provider, and real agents wired to both, all on
/// 127.0.0.1 in this process.
final class SyncHarness: ScopedHarness, @unchecked Sendable {
    static let adminToken = "sync-admin-token-0123456789"
    static let pepper = Secret("sync-test-pepper-0123456789")
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let directory: TemporaryDirectory
    let mock: MockProvider
    private(set) var mockPort = 0
    let controlPort: Int
    private var control: (group: ServiceGroup, task: Task<Void, any Error>)?
    /// Agents started here, stopped at shutdown if a test did not.
    private let startedAgents = Mutex<[Agent]>([])
    private let startedProcesses = Mutex<[ExternalProcess]>([])
    private let isShutDown = Mutex(false)

    /// Set when the control plane serves TLS: its certificate, which is also the CA agents trust.
    let certificate: TestCertificate?

    /// Applied to the control plane's options at every start (service-account identity, …).
    let configureControl: @Sendable (inout ControlOptions) -> Void

    init(tls: Bool = false, configureControl: @escaping @Sendable (inout ControlOptions) -> Void = { _ in })
        async throws
    {
        self.configureControl = configureControl
        certificate = tls ? try TestCertificate() : nil
        directory = try TemporaryDirectory()
        mock = try MockProvider(configuration: .init(transport: .plaintext), group: group)
        mockPort = try await mock.start()
        controlPort = try await ExternalProcess.freePort(group: group)
        try await startControl()
    }

    /// The control plane's public key, base64, as its data directory holds it for agents.
    var publicKeyText: String {
        (try? String(contentsOfFile: directory.file("control-data/signing-key.pub"), encoding: .utf8)) ?? ""
    }

    /// Starts the control plane (the production wiring, `ControlPlane`) on `controlPort`,
    /// on `database` (the same file by default, so a restart keeps its state).
    func startControl(database: String = "control.db", newSigningKey: Bool = false) async throws {
        let data = directory.file("control-data")
        if newSigningKey {
            // A new key is made at start when the data directory has none.
            try? FileManager.default.removeItem(atPath: data + "/signing-key")
        }
        var options = ControlOptions(
            adminToken: Secret(Self.adminToken), environment: ["SLUICE_KEY_PEPPER": Self.pepper.reveal()])
        options.port = controlPort
        options.database = "sqlite:" + directory.file(database)
        options.dataDirectory = data
        options.policyPollInterval = .milliseconds(200)
        if let certificate {
            options.tls = TLSServerConfiguration(
                certificateChainFile: certificate.certificatePath, privateKeyFile: certificate.privateKeyPath,
                applicationProtocols: ["http/1.1"])
        }
        configureControl(&options)
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        options.onListening = { port in continuation.yield(port) }
        let controlPlane = try ControlPlane(options, logger: Logger(label: "control"))
        let serviceGroup = ServiceGroup(
            configuration: .init(services: [controlPlane], logger: Logger(label: "control")))
        let task = Task { try await serviceGroup.run() }
        control = (serviceGroup, task)
        for await _ in stream { break }
    }

    func stopControl() async throws {
        guard let control else { return }
        await control.group.triggerGracefulShutdown()
        try await control.task.value
        self.control = nil
    }

    // MARK: - Admin API

    func admin(_ method: String, _ path: String, json: String = "") async throws -> TestResponse {
        guard let certificate else {
            return try await TestHTTPClient.request(
                method, path, json: json, bearer: Self.adminToken, port: controlPort, group: group)
        }
        // Over TLS, through the agent's own control-plane client (GET and POST are enough here).
        let client = try ControlPlaneClient(
            url: controlURL, token: Secret(Self.adminToken), caFile: certificate.certificatePath,
            upstream: UpstreamClient(group: group), group: group)
        let response =
            method == "GET"
            ? try await client.get(path, timeout: .seconds(10))
            : try await client.post(path, json: Array(json.utf8), timeout: .seconds(10))
        return TestResponse(status: response.status, headers: response.headers, body: response.body)
    }

    /// The control plane's base URL: https when it serves TLS.
    var controlURL: String { "\(certificate == nil ? "http" : "https")://127.0.0.1:\(controlPort)" }

    func adminJSON(_ method: String, _ path: String, json: String = "") async throws -> Any {
        let response = try await admin(method, path, json: json)
        guard (200..<300).contains(response.status) else {
            throw TestClientError(message: "\(method) \(path) answered \(response.status): \(response.text)")
        }
        return try JSONSerialization.jsonObject(with: Data(response.body))
    }

    /// One alias on the mock provider, priced, and every service allowed keyless.
    func seedPolicy(alias: String = "gpt-test") async throws {
        _ = try await adminJSON(
            "POST", "/v1/admin/models",
            json: """
                {"alias":"\(alias)",
                 "deployments":[{"api_base":"http://127.0.0.1:\(mockPort)/v1","upstream_model":"mock"}],
                 "input_cost_per_token":0.000001,"output_cost_per_token":0.000002}
                """)
        _ = try await adminJSON("POST", "/v1/admin/services", json: #"{"name":"*","keyless":true}"#)
    }

    func agentToken(_ id: String, boundTo service: String? = nil) async throws -> String {
        let binding = service.map { #","service":"\#($0)""# } ?? ""
        let body =
            try await adminJSON("POST", "/v1/admin/agents", json: #"{"id":"\#(id)"\#(binding)}"#) as? [String: Any]
        return body?["token"] as? String ?? ""
    }

    /// The control plane's totals, and its recorded cost in pico-USD.
    func totals() async throws -> UsageTotals {
        try await UsageTotals.recorded(adminToken: Self.adminToken, port: controlPort, group: group).totals
    }

    func spentPicoUSD() async throws -> Int64 {
        try await UsageTotals.recorded(adminToken: Self.adminToken, port: controlPort, group: group).costPicoUSD
    }

    // MARK: - Agents

    /// An agent in this process, wired to the control plane.
    final class Agent: @unchecked Sendable {
        let mode: ControlPlaneMode
        let server: AgentServer
        let serviceGroup: ServiceGroup
        let task: Task<Void, any Error>
        let port: Int
        /// The admin port serving `/metrics`, when the agent was started with one.
        var metricsPort: Int?
        let stateDirectory: String
        let group: any EventLoopGroup
        /// What the callers saw: calls answered 200 and the usage their answers carried.
        let ledger = Ledger()

        init(
            mode: ControlPlaneMode, server: AgentServer, serviceGroup: ServiceGroup, task: Task<Void, any Error>,
            port: Int,
            stateDirectory: String, group: any EventLoopGroup
        ) {
            self.mode = mode
            self.server = server
            self.serviceGroup = serviceGroup
            self.task = task
            self.port = port
            self.stateDirectory = stateDirectory
            self.group = group
        }

        var runtime: AgentRuntime { mode.runtime }

        func chat(
            model: String = "gpt-test", key: String? = nil, content: String = "Hello there", maxTokens: Int? = nil,
            user: String? = nil
        ) async throws -> TestResponse {
            let limit = maxTokens.map { #","max_tokens":\#($0)"# } ?? ""
            let endUser = user.map { #","user":"\#($0)""# } ?? ""
            let json =
                #"{"model":"\#(model)","messages":[{"role":"user","content":"\#(content)"}]\#(limit)\#(endUser)}"#
            let response = try await TestHTTPClient.post(
                "/v1/chat/completions", json: json,
                headers: key.map { [("Authorization", "Bearer \($0)")] } ?? [], port: port, group: group)
            ledger.count(response)
            return response
        }

        /// Whether the policy in force in this agent refuses `key`: read in process, so a
        /// propagation deadline measures the policy reaching the agent, not how long a call
        /// takes on a machine the rest of the suite is loading.
        func refuses(key: String) -> Bool {
            let now = Int64(Date().timeIntervalSince1970 * 1e9)
            if case .failure = runtime.activePolicy.engine.authenticate(presentedKey: key, now: now) { return true }
            return false
        }

        func readiness() async throws -> (status: Int, body: [String: Any]) {
            let response = try await TestHTTPClient.get("/readyz", port: port, group: group)
            return (
                response.status, (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
            )
        }

        /// SIGTERM's path: drain, then the final flush.
        func stop() async throws {
            await serviceGroup.triggerGracefulShutdown()
            try await task.value
        }
    }

    func startAgent(
        id: String, token: String? = nil, stateDirectory: String? = nil, clock: TestClock = TestClock(),
        maxPolicyAgeSeconds: Double = 3600, flushInterval: Duration = .milliseconds(100), publicKey: String? = nil,
        service: String = "checkout", boundToService: Bool = false,
        environment: [String: String] = [:], publicKeyInEnvironment: Bool = false, trustControlPlaneCA: Bool = true,
        servesMetrics: Bool = false
    ) async throws -> Agent {
        let agentToken: String
        if let token {
            agentToken = token
        } else {
            agentToken = try await self.agentToken(id, boundTo: boundToService ? "shop/\(service)" : nil)
        }
        let tokenFile = directory.file("\(id).token")
        let keyFile = directory.file("\(id).pub")
        try agentToken.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        try (publicKey ?? publicKeyText).write(toFile: keyFile, atomically: true, encoding: .utf8)
        let state = stateDirectory ?? directory.file("\(id)-state")
        // Outages are made on purpose here: their warnings would only bury a failure's output.
        var logger = Logger(label: id)
        logger.logLevel = .error
        // The production wiring, as `sluice-agent --control-plane` builds it.
        var environment = environment
        if publicKeyInEnvironment { environment[ControlPlaneMode.publicKeyVariable] = publicKey ?? publicKeyText }
        if let certificate, trustControlPlaneCA {
            // As an injected agent gets it: the PEM in its environment, not a file.
            environment[ControlPlaneMode.caVariable] = try String(
                contentsOfFile: certificate.certificatePath, encoding: .utf8)
        }
        var options = AgentOptions(
            environment: environment.merging([
                "SLUICE_SERVICE": service, "SLUICE_NAMESPACE": "shop", "POD_NAME": id,
                "SLUICE_KEY_PEPPER": Self.pepper.reveal(),
            ]) { given, _ in given },
            audit: MemoryAuditSink())
        var link = ControlPlaneOptions(url: controlURL)
        link.tokenFile = tokenFile
        link.publicKeyFile = publicKeyInEnvironment ? nil : keyFile
        link.stateDirectory = state
        link.maxPolicyAgeSeconds = maxPolicyAgeSeconds
        link.flushInterval = flushInterval
        link.shutdownFlushDeadline = .seconds(1)
        options.controlPlane = link
        options.listen = ListenAddress(host: "127.0.0.1", port: 0)
        options.metricsListen = servesMetrics ? ListenAddress(host: "127.0.0.1", port: 0) : nil
        options.handlesSignals = false
        options.connectTimeout = .seconds(2)
        options.clock = clock.now
        let built = try buildAgent(options, group: group, logger: logger)
        guard let mode = built.controlPlane else { throw ConfigError("buildAgent made no control-plane link") }
        let task = Task { try await built.services.run() }
        let port = try await built.server.boundPort.get()
        let agent = Agent(
            mode: mode, server: built.server, serviceGroup: built.services, task: task, port: port,
            stateDirectory: state, group: group)
        agent.metricsPort = try await built.metricsServer?.boundPort.get()
        startedAgents.withLock { $0.append(agent) }
        return agent
    }

    /// An agent as its own process on this harness's control plane, flushing and renewing
    /// leases every `flushSeconds`; stopped at shutdown. Ready when its `/readyz` answers 200.
    func startAgentProcess(id: String, flushSeconds: Double = 1) async throws -> ExternalProcess {
        let process = try await Self.launchAgentProcess(
            id: id, controlURL: controlURL, token: try await agentToken(id), publicKey: publicKeyText,
            directory: directory, group: group, flushSeconds: flushSeconds)
        startedProcesses.withLock { $0.append(process) }
        return process
    }

    /// The `sluice-agent` binary built beside the tests, as its own process, linked to the
    /// control plane at `controlURL` with `token`. Returns once it listens.
    static func launchAgentProcess(
        id: String, controlURL: String, token: String, publicKey: String, directory: TemporaryDirectory,
        group: any EventLoopGroup, flushSeconds: Double = 1
    ) async throws -> ExternalProcess {
        let tokenFile = directory.file("\(id).token")
        let keyFile = directory.file("\(id).pub")
        try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        try publicKey.write(toFile: keyFile, atomically: true, encoding: .utf8)
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("sluice-agent").path
        let port = try await ExternalProcess.freePort(group: group)
        return try await ExternalProcess(
            executable: binary,
            arguments: [
                "--control-plane", controlURL, "--agent-token-file", tokenFile, "--policy-public-key", keyFile,
                "--state-dir", directory.file("\(id)-state"), "--flush-interval-seconds", "\(flushSeconds)",
                "--listen", "127.0.0.1:\(port)", "--metrics-listen", "off", "--log-level", "error",
            ],
            port: port, group: group,
            environment: [
                "PATH": "/usr/bin:/bin", "SLUICE_SERVICE": "checkout", "SLUICE_NAMESPACE": "shop", "POD_NAME": id,
                "SLUICE_KEY_PEPPER": Self.pepper.reveal(),
            ],
            stderrPath: directory.file("\(id).stderr"))
    }

    /// Stops every agent still running, the control plane, the mock and the event loops.
    /// Safe to call more than once.
    func shutdown() async throws {
        guard !isShutDown.withLock({ $0 }) else { return }
        isShutDown.withLock { $0 = true }
        for process in startedProcesses.withLock({ $0 }) { await process.stop() }
        for agent in startedAgents.withLock({ $0 }) { try? await agent.stop() }
        try await stopControl()
        try await mock.stop()
        try await group.shutdownGracefully()
        directory.remove()
    }

    /// Runs `body` with a started harness and shuts it down afterwards, also when `body`
    /// throws, so a failing `#require` leaks no agent, server or event-loop group.
    static func with(
        tls: Bool = false, configureControl: @escaping @Sendable (inout ControlOptions) -> Void = { _ in },
        _ body: (SyncHarness) async throws -> Void
    ) async throws {
        try await with(starting: { try await SyncHarness(tls: tls, configureControl: configureControl) }, body)
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; true when it held.
/// Used where the thing awaited is another process's or service's progress, which sends
/// this test no signal.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
