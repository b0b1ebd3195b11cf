import Crypto
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import SluiceExport
import SluiceHTTP2
import SluiceKubernetes
import SluicePolicy

/// Everything `sluice-control` is told, as values: the command line turns its flags into
/// one of these, and tests build one too, so both run the same wiring.
public struct ControlOptions: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (see ``onListening``).
    public var port = 8080
    /// `sqlite:PATH` or `postgres://user[:password]@host[:port]/database`; nil is
    /// `sluice.db` in the data directory.
    public var database: String?
    /// The bundle signing key, the key pepper (unless `SLUICE_KEY_PEPPER` is set) and the
    /// default database live here.
    public var dataDirectory = ".state/control"
    public var adminToken: Secret
    /// Opens the dashboard (`/ui`) read-only; nil: only the admin token logs in.
    public var viewerToken: Secret?
    /// Where `SLUICE_KEY_PEPPER` is read from.
    public var environment: [String: String]
    /// How often a long-poll re-reads the policy version, to see another replica's writes.
    public var policyPollInterval: Duration = .seconds(1)
    /// Least seconds between two budget checks triggered by usage.
    public var budgetCheckInterval: Int64 = 1
    /// Serve over TLS with this certificate chain and key (PEM files, read at start); nil
    /// serves plain HTTP. Agents then use `https://` and trust the chain's CA.
    public var tls: TLSServerConfiguration?
    /// The sidecar injection webhook's settings; nil serves no webhook. The policy public
    /// key in them is replaced by this control plane's own.
    public var injection: InjectionSettings?
    /// Accept agents' projected service-account tokens, verified as these settings say; nil
    /// accepts issued agent tokens only.
    public var agentIdentity: AgentIdentitySettings?
    /// The key set named by `agentIdentity`'s `key_set_file`, read at start.
    public var agentKeySet: JSONWebKeySet?
    /// How long rollups and usage marks are kept.
    public var usageRetention = UsageRetention()
    /// Where alert notices are posted (`--alert-webhooks`).
    public var alertWebhooks = AlertWebhooks()
    /// The wait after a failed alert post, doubled after each next failure (six posts in all).
    public var alertRetryBackoff: Duration = .seconds(2)
    /// Where applied usage is exported (`--export-usage-*`), at most one of each format.
    public var usageExport: [ExportDestination] = []
    public var usageExportSettings = ExportSettings()
    /// Called with the bound port once the server listens.
    public var onListening: @Sendable (Int) async -> Void = { _ in }

    public init(adminToken: Secret, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.adminToken = adminToken
        self.environment = environment
    }

    /// Reads the injection webhook's configuration file (JSON, strict; see
    /// docs/kubernetes.md) and the CA file it names.
    public mutating func loadInjection(from path: String) throws(ControlStartError) {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw ControlStartError("cannot read --injection-config \(path)")
        }
        do {
            var (settings, caFile) = try InjectionSettings.parse(Array(bytes))
            if let caFile {
                guard let pem = try? String(contentsOfFile: caFile, encoding: .utf8), pem.contains("BEGIN CERTIFICATE")
                else {
                    throw ControlStartError(
                        "--injection-config \(path): control_plane_ca_file \(caFile) is no PEM file")
                }
                settings.controlPlaneCA = pem
            }
            injection = settings
        } catch let error as InjectionConfigError {
            throw ControlStartError("--injection-config \(path): \(error.message)")
        } catch let error as ControlStartError {
            throw error
        } catch {
            throw ControlStartError("--injection-config \(path): \(error)")
        }
    }
}

extension ControlOptions {
    /// Reads the agent identity file (JSON, strict; see docs/kubernetes.md) and the key set
    /// file it names, so a mistake stops the control plane at start with the field named.
    public mutating func loadAgentIdentity(from path: String) throws(ControlStartError) {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw ControlStartError("cannot read --agent-identity-config \(path)")
        }
        do throws(KubernetesConfigError) {
            let settings = try AgentIdentitySettings.parse(Array(bytes))
            if case .keySetFile(let keyFile) = settings.verification {
                guard let keyBytes = FileManager.default.contents(atPath: keyFile) else {
                    throw KubernetesConfigError("key_set_file: cannot read \(keyFile)")
                }
                do throws(KubernetesConfigError) {
                    agentKeySet = try JSONWebKeySet.parse(Array(keyBytes))
                } catch {
                    throw KubernetesConfigError("key_set_file \(keyFile): \(error.message)")
                }
            }
            agentIdentity = settings
        } catch {
            throw ControlStartError("--agent-identity-config \(path): \(error.message)")
        }
    }
}

/// The control plane, wired: its store, signing key and pepper are opened when it is
/// built, and ``run()`` runs the rest as structured children of one service: the
/// PostgreSQL connection pool (when there is one), the migrations, then the HTTP server,
/// the budget watcher and the policy publisher. Graceful shutdown stops accepting, lets
/// long-polls and requests finish, and closes the pool last.
public final class ControlPlane: Service, Sendable {
    public let store: any Store
    /// What the log and errors may say of the database (never a password).
    public let databaseDescription: String
    private let postgres: PostgresStore?
    private let signingKey: PolicyPublisher.SigningKey
    private let pepper: Secret
    private let options: ControlOptions
    private let logger: Logger
    private let budgets: BudgetWatcher
    private let alerts: AlertSender
    /// The client alert webhooks and usage export post through.
    private let outbound = UpstreamClient(group: MultiThreadedEventLoopGroup.singleton)
    private let tls: TLSServerContext?
    /// Serves signed bundles and wakes agents' long-polls when the policy changes.
    public let publisher: PolicyPublisher

    /// Opens the data directory (creating the signing key and pepper on first start) and
    /// the store. Throws ``ControlStartError`` saying what to fix.
    public init(_ options: ControlOptions, logger: Logger) throws(ControlStartError) {
        self.options = options
        self.logger = logger
        if let settings = options.tls {
            do throws(TLSError) {
                tls = try TLSServerContext(configuration: settings)
            } catch {
                throw ControlStartError("--tls-cert/--tls-key: \(error.message)")
            }
        } else {
            tls = nil
        }
        guard options.adminToken.reveal().utf8.count >= 16 else {
            throw ControlStartError("the admin token must be at least 16 characters")
        }
        if let viewer = options.viewerToken {
            guard viewer.reveal().utf8.count >= 16 else {
                throw ControlStartError("the viewer token must be at least 16 characters")
            }
            guard viewer != options.adminToken else {
                throw ControlStartError("the viewer token must differ from the admin token")
            }
        }
        do {
            let directory = try ControlDataDirectory(path: options.dataDirectory)
            signingKey = PolicyPublisher.SigningKey(key: try directory.signingKey())
            pepper = try directory.keyPepper(environment: options.environment)
            switch options.database {
            case nil:
                databaseDescription = "\(options.dataDirectory)/sluice.db"
                store = try SQLiteStore(path: databaseDescription)
                postgres = nil
            case let value? where value.hasPrefix("sqlite:"):
                databaseDescription = String(value.dropFirst("sqlite:".count))
                store = try SQLiteStore(path: databaseDescription)
                postgres = nil
            case let value? where value.hasPrefix("postgres://") || value.hasPrefix("postgresql://"):
                databaseDescription = "postgres://…@" + (value.split(separator: "@").last.map(String.init) ?? "")
                let opened = try PostgresStore(url: value, logger: logger)
                store = opened
                postgres = opened
            case let value?:
                throw ControlStartError(
                    "--db must be sqlite:PATH or postgres://user@host/database, not \(value.prefix(12))…")
            }
            alerts = AlertSender(
                webhooks: options.alertWebhooks.webhooks, logger: logger, upstream: outbound,
                group: MultiThreadedEventLoopGroup.singleton, firstBackoff: options.alertRetryBackoff)
            budgets = BudgetWatcher(
                store: store, logger: logger, interval: options.budgetCheckInterval, sender: alerts)
            publisher = PolicyPublisher(
                store: store, signingKey: signingKey.key, keyPepper: pepper, pollInterval: options.policyPollInterval,
                budgets: budgets)
        } catch let error as ControlStartError {
            throw error
        } catch let error as StoreError {
            throw ControlStartError(error.message)
        } catch {
            throw ControlStartError("\(error)")
        }
    }

    /// The public half of the bundle signing key: what agents verify bundles with.
    public var publicKey: Curve25519.Signing.PublicKey { signingKey.key.publicKey }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            if let postgres { group.addTask { await postgres.run() } }
            try await store.migrate()
            var injection = options.injection
            injection?.policyPublicKey = signingKey.key.publicKey.rawRepresentation.base64EncodedString()
            let (authenticators, counters) = try makeAgentAuthenticators()
            let usageExport = UsageExport(
                destinations: options.usageExport, settings: options.usageExportSettings, upstream: outbound,
                group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            let api = ControlAPI(
                store: store, publisher: publisher, adminToken: options.adminToken, keyPepper: pepper, budgets: budgets,
                agentAuthenticators: authenticators, agentAuthCounters: counters, injection: injection,
                usageExport: usageExport, viewerToken: options.viewerToken, secureCookies: tls != nil)
            let (host, database, directory, logger) = (options.host, databaseDescription, options.dataDirectory, logger)
            let (budgets, publisher) = (self.budgets, self.publisher)
            let onListening = options.onListening
            let application = makeControlApplication(
                api: api, host: host, port: options.port, tls: tls, logger: logger
            ) { port in
                logger.info(
                    "sluice-control listening",
                    metadata: [
                        "address": "\(host):\(port)", "db": "\(database)", "public_key": "\(directory)/signing-key.pub",
                    ])
                await onListening(port)
            }
            // The server first: a service group stops in reverse order, so the publisher
            // ends waiting long-polls before the server drains. Before it, what sends on
            // what the server took in, so it stops after the server has drained.
            var services: [any Service] = usageExport.exporters + [alerts]
            services += [
                application, budgets, publisher,
                UsageRetentionJob(store: store, retention: options.usageRetention, logger: logger),
            ]
            if let postgres { services.append(LeaseCoordinator(store: postgres, book: api.leases, logger: logger)) }
            try await ServiceGroup(configuration: .init(services: services, logger: logger)).run()
            // Everything that used the store has stopped: close the pool.
            group.cancelAll()
        }
    }

    /// The service-account authenticator when `agentIdentity` is set, with its API client.
    private func makeAgentAuthenticators() throws -> ([any AgentAuthenticator], AgentAuthCounters?) {
        guard let settings = options.agentIdentity else { return ([], nil) }
        var api: KubernetesAPIClient?
        let needsAPI: Bool
        switch settings.verification {
        case .tokenReview, .keySetURL: needsAPI = true
        case .keySetFile: needsAPI = settings.needsDeploymentLookups
        }
        if needsAPI {
            let group = MultiThreadedEventLoopGroup.singleton
            api = try KubernetesAPIClient(
                server: settings.apiServer, tokenFile: settings.apiTokenFile, caFile: settings.apiCAFile,
                upstream: UpstreamClient(group: group), group: group)
        }
        let counters = AgentAuthCounters()
        var authLogger = logger
        authLogger[metadataKey: "component"] = "agent-auth"
        let authenticator = ServiceAccountAuthenticator(
            settings: settings, api: api, counters: counters, keySet: options.agentKeySet, logger: authLogger)
        return ([authenticator], counters)
    }
}
