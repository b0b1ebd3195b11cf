import ArgumentParser
import Foundation
import Logging
import NIOPosix
import SluiceAgent
import SluiceExport
import SluicePolicy

@main
struct SluiceAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-agent",
        abstract:
            "The Sluice sidecar: an OpenAI-compatible endpoint on loopback that enforces policy and forwards"
            + " over HTTP/2.",
        subcommands: [Serve.self, NewKey.self, HashKey.self],
        defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the agent (the default when no subcommand is given).")

    @Option(
        help: """
            Path of the LiteLLM-compatible YAML configuration. With --control-plane it is optional and supplies \
            only sluice_settings and sluice_identity.
            """
    )
    var config: String?

    @Option(
        help: "Base URL of the control plane (http:// or https://). Policy then comes from it, and usage goes to it.")
    var controlPlane: String?

    @Option(help: "File holding this agent's token for the control plane (from POST /v1/admin/agents).")
    var agentTokenFile: String?

    @Option(help: "File holding the control plane's Ed25519 public key, base64 (its data directory's signing-key.pub).")
    var policyPublicKey: String?

    @Option(help: "PEM file of CAs to trust for an https control plane (default: the system store).")
    var controlPlaneCa: String?

    @Option(help: "Directory for the cached policy bundle and the usage spool (mode 0700).")
    var stateDir = ".state/agent"

    @Option(help: "How often usage is flushed to the control plane, in seconds.")
    var flushIntervalSeconds = 5.0

    @Option(help: "Longest time the control plane may go unconfirmed before calls get 503 (fail closed), in seconds.")
    var policyMaxAgeSeconds = 86_400.0

    @Option(help: "Environment variable holding the key pepper, needed when the control plane's policy holds keys.")
    var pepperEnv = "SLUICE_KEY_PEPPER"

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen = "127.0.0.1:4000"

    @Flag(help: "Allow listening on a non-loopback address (anyone who can reach it can spend this service's budget).")
    var allowNonLoopback = false

    @Flag(help: "Allow the admin port (metrics and probes, no calls) beyond loopback, e.g. on the pod IP for kubelets.")
    var allowNonLoopbackAdmin = false

    @Flag(help: "Run as a shared gateway for callers without a sidecar: no keyless callers; beyond loopback, TLS.")
    var gateway = false

    @Option(help: "PEM certificate chain the gateway serves (reloaded when the file changes).")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert.")
    var tlsKey: String?

    @Option(help: "Event-loop threads. One is plenty for a sidecar; more only for very high request rates.")
    var threads = 1

    @Option(help: "Address of the admin listener serving Prometheus /metrics, HOST:PORT; \"off\" disables it.")
    var metricsListen = "127.0.0.1:9464"

    @Option(help: "How often to check the configuration file for changes, in seconds; 0 reloads on SIGHUP only.")
    var reloadPollSeconds = 2.0

    @Option(help: "Export every audit line to this URL in JSON batches (docs/audit-export.md).")
    var exportAuditWebhook: String?

    @Option(help: "A header for --export-audit-webhook, NAME=ENV_VAR (the value is read from the environment).")
    var exportAuditWebhookHeader: [String] = []

    @Option(help: "Export every audit line as OTLP/HTTP JSON logs to this URL (a collector's /v1/logs).")
    var exportAuditOtlp: String?

    @Option(help: "A header for --export-audit-otlp, NAME=ENV_VAR (the value is read from the environment).")
    var exportAuditOtlpHeader: [String] = []

    @Option(help: "PEM file of CAs to trust for https export destinations (default: the system store).")
    var exportAuditCaFile: String?

    @Option(help: "Audit lines held for export at most; past it new lines are dropped and counted.")
    var exportAuditQueue = ExportSettings().queueRecords

    @Option(help: "Send a span per call (and per upstream attempt) as OTLP/HTTP JSON to this URL (/v1/traces).")
    var otlpTraces: String?

    @Option(help: "A header for --otlp-traces, NAME=ENV_VAR (the value is read from the environment).")
    var otlpTracesHeader: [String] = []

    @Option(help: "Share of calls traced when the caller sends no traceparent, 0 to 1.")
    var traceSampleRatio = 1.0

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "sluice-agent")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        let agent: BuiltAgent
        do {
            agent = try buildAgent(try options(), group: group, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("sluice-agent: \(error.message)\n".utf8))
            try? await group.shutdownGracefully()
            throw ExitCode(2)
        }
        do {
            try await agent.services.run()
        } catch {
            logger.error("sluice-agent failed: \(error)")
            try? await group.shutdownGracefully()
            throw ExitCode(1)
        }
        try await group.shutdownGracefully()
    }

    /// The flags as ``AgentOptions``.
    private func options() throws(ConfigError) -> AgentOptions {
        var options = AgentOptions()
        options.configPath = config
        options.listen = try ListenAddress(parsing: listen)
        options.metricsListen = metricsListen == "off" ? nil : try ListenAddress(parsing: metricsListen)
        options.allowNonLoopback = allowNonLoopback
        options.allowNonLoopbackAdmin = allowNonLoopbackAdmin
        options.reloadPollInterval = reloadPollSeconds > 0 ? .milliseconds(Int64(reloadPollSeconds * 1000)) : nil
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ConfigError("--tls-cert and --tls-key go together")
        }
        if tlsCert != nil, !gateway {
            throw ConfigError("--tls-cert serves TLS only as a shared gateway: add --gateway")
        }
        if gateway { options.gateway = GatewayOptions(certificateFile: tlsCert, privateKeyFile: tlsKey) }
        let environment = options.environment
        do {
            options.auditExport = try ExportDestination.fromFlags(
                prefix: "--export-audit", webhook: exportAuditWebhook, webhookHeaders: exportAuditWebhookHeader,
                otlp: exportAuditOtlp, otlpHeaders: exportAuditOtlpHeader, caFile: exportAuditCaFile,
                environment: environment)
        } catch {
            throw ConfigError(error.message)
        }
        guard (1...10_000_000).contains(exportAuditQueue) else {
            throw ConfigError("--export-audit-queue must be 1 to 10000000")
        }
        options.auditExportSettings.queueRecords = exportAuditQueue
        if let otlpTraces {
            do {
                options.traces = try ExportDestination.parse(
                    flag: "--otlp-traces", format: .otlp, url: otlpTraces, headers: otlpTracesHeader,
                    caFile: exportAuditCaFile, environment: environment)
            } catch {
                throw ConfigError(error.message)
            }
        } else if !otlpTracesHeader.isEmpty {
            throw ConfigError("--otlp-traces-header needs --otlp-traces")
        }
        options.traceSampleRatio = traceSampleRatio
        if let controlPlane {
            var link = ControlPlaneOptions(url: controlPlane)
            link.tokenFile = agentTokenFile
            link.publicKeyFile = policyPublicKey
            link.caFile = controlPlaneCa
            link.stateDirectory = stateDir
            link.flushInterval = .milliseconds(Int64(flushIntervalSeconds * 1000))
            link.maxPolicyAgeSeconds = policyMaxAgeSeconds
            link.pepperVariable = pepperEnv
            options.controlPlane = link
        }
        return options
    }
}

/// Reads the pepper from the environment variable named by `--pepper-env`.
private func pepper(fromEnvironment name: String) throws -> Secret {
    guard let value = ProcessInfo.processInfo.environment[name], value.utf8.count >= 16 else {
        FileHandle.standardError.write(
            Data(
                "sluice-agent: set \(name) to the key pepper (at least 16 bytes), as in sluice_policy.key_pepper\n".utf8
            ))
        throw ExitCode(2)
    }
    return Secret(value)
}

struct NewKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new-key",
        abstract:
            "Mint a virtual key: prints the key once (give it to the caller) and the hash line for sluice_policy.keys.")

    @Option(help: "Environment variable holding the key pepper.")
    var pepperEnv = "SLUICE_KEY_PEPPER"

    func run() throws {
        let hasher = KeyHasher(pepper: try pepper(fromEnvironment: pepperEnv))
        var generator = SystemRandomNumberGenerator()
        let key = VirtualKey.generate(using: &generator)
        print("key:  \(key)")
        print("hash: \(hasher.hash(key).encoded)")
    }
}

struct HashKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash-key",
        abstract:
            "Print the hash of a key read from standard input (never from the command line, where ps and shell"
            + " history would keep it)."
    )

    @Option(help: "Environment variable holding the key pepper.")
    var pepperEnv = "SLUICE_KEY_PEPPER"

    func run() throws {
        let hasher = KeyHasher(pepper: try pepper(fromEnvironment: pepperEnv))
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            FileHandle.standardError.write(Data("sluice-agent: give the key on standard input\n".utf8))
            throw ExitCode(2)
        }
        print(hasher.hash(line.trimmingCharacters(in: .whitespaces)).encoded)
    }
}
