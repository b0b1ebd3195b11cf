import ArgumentParser
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import SluiceControl
import SluiceExport
import SluiceHTTP2
import SluicePolicy

@main
struct SluiceControlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-control",
        abstract:
            "The Sluice control plane: keys, teams, catalog, limits and fleet usage,"
            + " served to agents as signed policy bundles."
    )

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen = "127.0.0.1:8080"

    @Option(
        help: """
            Database: sqlite:PATH, or postgres://user[:password]@host[:port]/database for several replicas. \
            The default is sluice.db in the data directory.
            """
    )
    var db: String?

    @Option(help: "Directory for the database, the bundle signing key and the key pepper.")
    var dataDir = ".state/control"

    @Option(help: "File holding the admin token (otherwise SLUICE_ADMIN_TOKEN).")
    var adminTokenFile: String?

    @Option(
        help: "File holding a viewer token: it logs in to the dashboard (/ui) read-only (else SLUICE_VIEWER_TOKEN)."
    )
    var viewerTokenFile: String?

    @Option(help: "PEM certificate chain to serve over TLS (with --tls-key); agents then use https://.")
    var tlsCert: String?

    @Option(help: "PEM private key for --tls-cert.")
    var tlsKey: String?

    @Option(help: "Serve the sidecar injection webhook (POST /mutate) with this configuration (JSON).")
    var injectionConfig: String?

    @Option(
        help: """
            Accept agents' Kubernetes service-account tokens, verified as this file says (JSON; \
            TokenReview or the cluster's key set, and which services each namespace may claim).
            """)
    var agentIdentityConfig: String?

    @Option(
        help: """
            In a cluster: take the admin token, signing key and key pepper from a Secret (generated \
            when absent), and optionally a generated serving certificate and the webhook's caBundle, \
            as this file says (JSON).
            """)
    var kubernetesBootstrap: String?

    @Option(help: "Days hourly usage rollups are kept (32 or more: monthly budgets outside UTC read them).")
    var hourlyUsageRetentionDays = UsageRetention().hourlyDays

    @Option(help: "Days daily usage rollups are kept (at least the hourly retention).")
    var dailyUsageRetentionDays = UsageRetention().dailyDays

    @Option(
        help: """
            Days an agent's usage mark outlives its last batch (a batch replayed after that counts again).
            """)
    var usageMarkRetentionDays = UsageRetention().markDays

    @Option(
        help: """
            Post alert notices (budgets, alert-only limits, spikes) to the webhooks this file names \
            (JSON; each signed with its own secret, see docs/alerts.md).
            """)
    var alertWebhooks: String?

    @Option(help: "Export every applied usage batch, a record per delta, to this URL in JSON batches.")
    var exportUsageWebhook: String?

    @Option(help: "A header for --export-usage-webhook, NAME=ENV_VAR (the value is read from the environment).")
    var exportUsageWebhookHeader: [String] = []

    @Option(help: "Export every applied usage batch as OTLP/HTTP JSON logs to this URL (a collector's /v1/logs).")
    var exportUsageOtlp: String?

    @Option(help: "A header for --export-usage-otlp, NAME=ENV_VAR (the value is read from the environment).")
    var exportUsageOtlpHeader: [String] = []

    @Option(help: "PEM file of CAs to trust for https usage export destinations (default: the system store).")
    var exportUsageCaFile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "sluice-control")
        let environment = ProcessInfo.processInfo.environment
        let controlPlane: ControlPlane
        var services: [any Service] = []
        do {
            let parts = listen.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]), (0...65535).contains(port) else {
                throw ControlStartError("--listen must be HOST:PORT, for example 127.0.0.1:8080")
            }
            var environment = environment
            var bootstrapped: ClusterBootstrap.Outcome?
            if let kubernetesBootstrap {
                let group = MultiThreadedEventLoopGroup.singleton
                let bootstrap = try ClusterBootstrap.load(
                    file: kubernetesBootstrap, dataDirectory: dataDir, logger: logger,
                    upstream: UpstreamClient(group: group), group: group)
                let outcome = try await bootstrap.run()
                environment["SLUICE_KEY_PEPPER"] = outcome.keyPepper.reveal()
                if let certificate = outcome.certificatePEM {
                    services.append(WebhookBundleKeeper(bootstrap: bootstrap, certificatePEM: certificate))
                }
                if bootstrap.settings.trustConfigMap != nil {
                    services.append(TrustConfigMapKeeper(bootstrap: bootstrap, publicKey: outcome.policyPublicKey))
                }
                bootstrapped = outcome
            }
            var options = ControlOptions(
                adminToken: try bootstrapped?.adminToken ?? readAdminToken(environment: environment),
                environment: environment)
            options.viewerToken = try readViewerToken(environment: environment)
            options.host = String(parts[0])
            options.port = port
            options.database = db
            options.dataDirectory = dataDir
            options.usageRetention = UsageRetention(
                hourlyDays: hourlyUsageRetentionDays, dailyDays: dailyUsageRetentionDays,
                markDays: usageMarkRetentionDays)
            try options.usageRetention.validate()
            switch (tlsCert, tlsKey) {
            case (nil, nil) where bootstrapped?.tls != nil:
                let files = bootstrapped?.tls
                options.tls = TLSServerConfiguration(
                    certificateChainFile: files?.certificateFile ?? "", privateKeyFile: files?.keyFile ?? "",
                    applicationProtocols: ["http/1.1"])
            case (let certificate?, let key?):
                options.tls = TLSServerConfiguration(
                    certificateChainFile: certificate, privateKeyFile: key, applicationProtocols: ["http/1.1"])
            case (nil, nil):
                break
            default:
                throw ControlStartError("--tls-cert and --tls-key go together")
            }
            if let injectionConfig { try options.loadInjection(from: injectionConfig) }
            if let agentIdentityConfig { try options.loadAgentIdentity(from: agentIdentityConfig) }
            if let alertWebhooks { options.alertWebhooks = try AlertWebhooks.load(from: alertWebhooks) }
            do {
                options.usageExport = try ExportDestination.fromFlags(
                    prefix: "--export-usage", webhook: exportUsageWebhook, webhookHeaders: exportUsageWebhookHeader,
                    otlp: exportUsageOtlp, otlpHeaders: exportUsageOtlpHeader, caFile: exportUsageCaFile,
                    environment: environment)
            } catch {
                throw ControlStartError(error.message)
            }
            controlPlane = try ControlPlane(options, logger: logger)
        } catch let error as ControlStartError {
            FileHandle.standardError.write(Data("sluice-control: \(error.message)\n".utf8))
            throw ExitCode(2)
        } catch {
            FileHandle.standardError.write(Data("sluice-control: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [controlPlane] + services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    private func readViewerToken(environment: [String: String]) throws -> Secret? {
        if let viewerTokenFile {
            guard let text = try? String(contentsOfFile: viewerTokenFile, encoding: .utf8) else {
                throw ControlStartError("cannot read --viewer-token-file \(viewerTokenFile)")
            }
            return Secret(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return environment["SLUICE_VIEWER_TOKEN"].flatMap { $0.isEmpty ? nil : Secret($0) }
    }

    private func readAdminToken(environment: [String: String]) throws -> Secret {
        var token = environment["SLUICE_ADMIN_TOKEN"] ?? ""
        if let adminTokenFile {
            guard let text = try? String(contentsOfFile: adminTokenFile, encoding: .utf8) else {
                throw ControlStartError("cannot read --admin-token-file \(adminTokenFile)")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard token.utf8.count >= 16 else {
            throw ControlStartError(
                "set SLUICE_ADMIN_TOKEN (or --admin-token-file) to an admin token of at least 16 characters")
        }
        return Secret(token)
    }
}
