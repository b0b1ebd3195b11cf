import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SluiceAPI
import SluiceAgent
import SluiceHTTP2
import SluiceTestSupport
import Testing

/// A real agent on 127.0.0.1 (port 0) in front of a real mock provider, for one test.
/// Tests take one through ``with(upstream:aliases:settings:mockConfigure:_:)``, which shuts
/// it down however the test ends, so a failing `#require` leaks no event-loop group.
final class AgentHarness: ScopedHarness, @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let certificate: TestCertificate
    let mock: MockProvider
    let audit = MemoryAuditSink()
    private(set) var agentPort = 0
    private(set) var metricsPort = 0
    private(set) var agent: BuiltAgent?
    /// The YAML the agent was started with, for tests that reload an edited copy.
    private(set) var yaml = ""
    private var serviceTask: Task<Void, any Error>?
    private var serviceGroup: ServiceGroup? { agent?.services }
    private(set) var isShutDown = false
    /// Changes the options the next ``startAgent(yaml:)`` builds the agent with.
    var configureOptions: (inout AgentOptions) -> Void = { _ in }

    enum Upstream { case tls, h2c, http1 }

    /// - Parameter aliases: alias → upstream model (mock directives go in the model name).
    init(
        upstream: Upstream = .tls, aliases: [String: String] = ["gpt-test": "mock"], settings: String = "",
        mockConfigure: (inout MockProvider.Configuration) -> Void = { _ in }
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        self.group = group
        let certificate: TestCertificate
        do {
            certificate = try TestCertificate()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        self.certificate = certificate
        var configuration: MockProvider.Configuration
        switch upstream {
        case .tls: configuration = .init(transport: .tls(certificate.serverConfiguration))
        case .h2c: configuration = .init(transport: .plaintext)
        case .http1: configuration = .init(transport: .http1Only)
        }
        mockConfigure(&configuration)
        do {
            mock = try MockProvider(configuration: configuration, group: group)
        } catch {
            try? await group.shutdownGracefully()
            certificate.directory.remove()
            throw error
        }
        let mockPort: Int
        do {
            mockPort = try await mock.start()
        } catch {
            try? await shutdown()
            throw error
        }
        let scheme = upstream == .tls ? "https" : "http"
        var yaml = "model_list:\n"
        if aliases.isEmpty { yaml += "  []\n" }
        for (alias, model) in aliases.sorted(by: { $0.key < $1.key }) {
            yaml += """
                  - model_name: \(alias)
                    litellm_params:
                      model: openai/\(model)
                      api_base: \(scheme)://127.0.0.1:\(mockPort)/v1
                      api_key: sk-test-provider-secret-0123456789
                      ssl_verify: \(certificate.certificatePath)
                    model_info:
                      input_cost_per_token: 0.000001
                      output_cost_per_token: 0.000002

                """
        }
        // Settings may name the mock (a JWKS it serves): `$MOCK_PORT`, and `$MOCK_CA` to trust it.
        yaml += settings.replacingOccurrences(of: "$MOCK_PORT", with: "\(mockPort)")
            .replacingOccurrences(of: "$MOCK_CA", with: certificate.certificatePath)
        do {
            try await startAgent(yaml: yaml)
        } catch {
            try? await shutdown()
            throw error
        }
    }

    /// Starts the agent on `yaml`, written to ``configPath``, through the production wiring
    /// (`buildAgent`, config reloader included). Reloads happen when a test calls
    /// ``reloader``'s `reloadNow`: no polling, and no SIGHUP (signals are process-wide).
    func startAgent(yaml: String) async throws {
        self.yaml = yaml
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        var options = AgentOptions(
            environment: ["SLUICE_SERVICE": "checkout", "SLUICE_NAMESPACE": "shop", "POD_NAME": "checkout-7d9f"],
            audit: audit)
        options.configPath = configPath
        options.listen = ListenAddress(host: "127.0.0.1", port: 0)
        options.metricsListen = ListenAddress(host: "127.0.0.1", port: 0)
        options.handlesSignals = false
        options.reloadPollInterval = nil
        options.connectTimeout = .seconds(2)
        configureOptions(&options)
        let agent = try buildAgent(options, group: group, logger: Logger(label: "test"))
        self.agent = agent
        serviceTask = Task { try await agent.services.run() }
        agentPort = try await agent.server.boundPort.get()
        metricsPort = try await agent.metricsServer?.boundPort.get() ?? 0
    }

    var runtime: AgentRuntime? { agent?.runtime }
    var reloader: ConfigReloader? { agent?.reloader }
    var configPath: String { certificate.directory.file("agent.yaml") }

    /// Replaces the running agent with one serving `yaml` (same mock, same group).
    func restartAgent(yaml: String) async throws {
        try await stopAgent()
        try await startAgent(yaml: yaml)
    }

    /// Sends raw request bytes (malformed ones included) and returns the first response.
    func send(raw text: String) async throws -> TestResponse {
        try await TestHTTPClient.send(raw: Array(text.utf8), port: agentPort, group: group)
    }

    func post(_ json: String, path: String = "/v1/chat/completions", headers: [(String, String)] = []) async throws
        -> TestResponse
    {
        try await TestHTTPClient.post(path, json: json, headers: headers, port: agentPort, group: group)
    }

    func chat(
        model: String = "gpt-test", stream: Bool = false, extra: String = "", key: String? = nil,
        content: String = "Hello there", extraHeaders: [(String, String)] = []
    ) async throws -> TestResponse {
        try await post(
            #"{"model":"\#(model)","stream":\#(stream),"#
                + #""messages":[{"role":"user","content":\#(jsonString(content))}]\#(extra)}"#,
            headers: (key.map { [("Authorization", "Bearer \($0)")] } ?? []) + extraHeaders)
    }

    /// The Prometheus text the admin port serves.
    func metricsText() async throws -> String {
        try await TestHTTPClient.get("/metrics", port: metricsPort, group: group).text
    }

    /// The first `count` audit lines, decoded, once they have been written.
    func auditRecords(_ count: Int) async -> [[String: Any]] {
        await audit.waitForLines(count).prefix(count).compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    /// Begins graceful shutdown and returns once the agent has drained and stopped.
    func stopAgent() async throws {
        await serviceGroup?.triggerGracefulShutdown()
        try await serviceTask?.value
        if let runtime { Self.checkSettlements(runtime) }
        agent = nil
        serviceTask = nil
    }

    /// Every call the agent saw was settled exactly once: a path that forgets to settle, or
    /// settles twice, fails whichever test took it.
    static func checkSettlements(_ runtime: AgentRuntime, sourceLocation: SourceLocation = #_sourceLocation) {
        let text = runtime.metrics.registry.emitToString()
        for line in text.split(separator: "\n")
        where line.hasPrefix("sluice_calls_unsettled_total") || line.hasPrefix("sluice_calls_settled_twice_total") {
            if !line.hasSuffix(" 0") {
                Issue.record("settlement invariant broken: \(line)", sourceLocation: sourceLocation)
            }
        }
    }

    /// Stops whatever still runs (agent, mock, event loops) and removes the files. Safe to
    /// call more than once, and after ``stopAgent()``.
    func shutdown() async throws {
        guard !isShutDown else { return }
        isShutDown = true
        try await stopAgent()
        try await mock.stop()
        try await group.shutdownGracefully()
        certificate.directory.remove()
    }

    /// Runs `body` with a started harness and shuts it down afterwards, also when `body`
    /// throws.
    static func with(
        upstream: Upstream = .tls, aliases: [String: String] = ["gpt-test": "mock"], settings: String = "",
        mockConfigure: (inout MockProvider.Configuration) -> Void = { _ in },
        _ body: (AgentHarness) async throws -> Void
    ) async throws {
        try await with(
            starting: {
                try await AgentHarness(
                    upstream: upstream, aliases: aliases, settings: settings, mockConfigure: mockConfigure)
            }, body)
    }

}

/// The value of one Prometheus sample whose line contains every one of `parts`.
func sample(_ text: String, _ name: String, _ parts: [String]) -> Double? {
    text.split(separator: "\n").first { line in line.hasPrefix(name + "{") && parts.allSatisfy { line.contains($0) } }
        .flatMap { Double($0.split(separator: " ").last ?? "") }
}
