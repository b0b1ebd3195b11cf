import ArgumentParser
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import SluiceAgent
import SluiceHTTP2

@main
struct SluiceAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-agent",
        abstract: "The Sluice sidecar: an OpenAI-compatible endpoint on loopback that enforces policy and forwards over HTTP/2.")

    @Option(help: "Path of the LiteLLM-compatible YAML configuration.")
    var config: String

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen = "127.0.0.1:4000"

    @Flag(help: "Allow listening on a non-loopback address (anyone who can reach it can spend this service's budget).")
    var allowNonLoopback = false

    @Option(help: "Event-loop threads. One is plenty for a sidecar; more only for very high request rates.")
    var threads = 1

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

        let address: ListenAddress
        let configuration: AgentConfiguration
        do {
            address = try ListenAddress(parsing: listen)
            guard address.isLoopback || allowNonLoopback else {
                throw ConfigError("refusing to listen on \(address): the agent serves only its own pod over loopback, and anyone who can reach a non-loopback address could spend this service's budget. Pass --allow-non-loopback to do it anyway.")
            }
            let text: String
            do {
                text = try String(contentsOfFile: config, encoding: .utf8)
            } catch {
                throw ConfigError("cannot read the configuration file \(config): \(error.localizedDescription)")
            }
            configuration = try ConfigLoader(environment: ProcessInfo.processInfo.environment).load(yaml: text)
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data("sluice-agent: \(error.message)\n".utf8))
            throw ExitCode(2)
        }
        for warning in configuration.warnings {
            logger.warning("configuration: \(warning)")
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        var upstreamSettings = UpstreamClient.Configuration()
        upstreamSettings.connectTimeout = .nanoseconds(Int64(configuration.settings.connectTimeoutSeconds * 1e9))
        let upstream = UpstreamClient(group: group, configuration: upstreamSettings)
        let runtime = AgentRuntime(configuration: configuration,
                                   identity: ServiceIdentity.fromEnvironment(ProcessInfo.processInfo.environment),
                                   upstream: upstream, audit: FileDescriptorAuditSink())
        let server = AgentServer(runtime: runtime, group: group, address: address, logger: logger)
        let services = ServiceGroup(configuration: .init(
            services: [.init(service: server)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await services.run()
        } catch {
            logger.error("sluice-agent failed: \(error)")
            try? await group.shutdownGracefully()
            throw ExitCode(1)
        }
        try await group.shutdownGracefully()
    }
}
