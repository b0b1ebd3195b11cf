import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SluiceExport
import SluiceHTTP2
import SluicePolicy
import UnixSignals

/// Everything `sluice-agent serve` is told, as values: the command line turns its flags
/// into one of these, and tests build one too, so both run the same wiring.
public struct AgentOptions: Sendable {
    /// The LiteLLM-compatible YAML file. Required without a control plane; with one it
    /// supplies only `sluice_settings` and `sluice_identity`.
    public var configPath: String?
    /// Policy from a control plane instead of the file.
    public var controlPlane: ControlPlaneOptions?
    public var listen = ListenAddress(host: "127.0.0.1", port: 4000)
    /// The admin listener serving `/metrics`, `/healthz` and `/readyz`; nil turns it off.
    public var metricsListen: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 9464)
    /// Listening beyond loopback lets anyone who can reach the address spend this
    /// service's budget, so it must be asked for.
    public var allowNonLoopback = false
    /// The admin listener may listen beyond loopback (on the pod IP, for kubelet probes and
    /// Prometheus). It serves no calls, so this exposes figures, never a budget.
    public var allowNonLoopbackAdmin = false
    /// How often the file is checked for changes; nil reloads only on SIGHUP.
    public var reloadPollInterval: Duration? = .seconds(2)
    /// SIGTERM/SIGINT shut down gracefully and SIGHUP reloads. Signals are process-wide,
    /// so tests running several agents in one process turn this off.
    public var handlesSignals = true
    /// Upstream connect timeout; nil takes `sluice_settings.connect_timeout_seconds`.
    public var connectTimeout: TimeAmount?
    /// Where identity (`SLUICE_SERVICE`, `POD_NAME`, …), `os.environ/` credentials and the
    /// key pepper are read from.
    public var environment: [String: String]
    public var audit: any AuditSink
    /// Wall-clock nanoseconds for limits, budgets and policy age.
    public var clock: @Sendable () -> Int64 = { Clocks.wallNanoseconds() }
    /// Shared gateway mode: set, the agent serves callers that are not in its pod.
    public var gateway: GatewayOptions?
    /// Where audit lines are exported besides ``audit`` (at most one of each format).
    public var auditExport: [ExportDestination] = []
    public var auditExportSettings = ExportSettings()
    /// Where call spans go (OTLP/HTTP JSON traces); nil emits none.
    public var traces: ExportDestination?
    /// The share of calls traced when the caller sends no `traceparent` (0 to 1).
    public var traceSampleRatio = 1.0

    public init(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        audit: any AuditSink = FileDescriptorAuditSink()
    ) {
        self.environment = environment
        self.audit = audit
    }
}

/// Shared gateway mode, for callers without a sidecar (CI, notebooks, other clusters): the
/// same agent as a central endpoint. It may listen beyond loopback only with TLS, and it
/// serves no keyless caller: identity comes from keys, static tokens or trusted headers.
public struct GatewayOptions: Sendable {
    /// Server certificate chain and private key (PEM); nil only on a loopback address.
    public var tls: TLSServerConfiguration?
    /// How often the certificate and key files are checked for changes.
    public var tlsReloadInterval: Duration = .seconds(10)

    public init(certificateFile: String?, privateKeyFile: String?) {
        tls = certificateFile.flatMap { certificate in
            privateKeyFile.map {
                TLSServerConfiguration(
                    certificateChainFile: certificate, privateKeyFile: $0, applicationProtocols: ["http/1.1"])
            }
        }
    }
}

/// How the agent reaches its control plane.
public struct ControlPlaneOptions: Sendable {
    /// Base URL, http:// or https://.
    public var url: String
    /// The agent's token (from `POST /v1/admin/agents`).
    public var tokenFile: String?
    /// The control plane's Ed25519 public key, base64.
    public var publicKeyFile: String?
    /// CAs to trust for an https control plane; nil: the system store.
    public var caFile: String?
    /// The cached bundle and the usage spool (mode 0700).
    public var stateDirectory = ".state/agent"
    public var flushInterval: Duration = .seconds(5)
    /// How long the final flush at shutdown may take.
    public var shutdownFlushDeadline: Duration = .seconds(10)
    /// Longest the control plane may go unconfirmed before calls get 503 (fail closed).
    public var maxPolicyAgeSeconds = 86_400.0
    /// The environment variable holding the key pepper.
    public var pepperVariable = "SLUICE_KEY_PEPPER"

    public init(url: String) {
        self.url = url
    }
}

/// An agent wired and ready to run: ``services`` runs it until a signal or
/// `triggerGracefulShutdown()`, and stops the pieces in the order that loses no usage
/// (the server drains first, the usage flusher sends last).
public struct BuiltAgent: Sendable {
    public let runtime: AgentRuntime
    public let server: AgentServer
    public let metricsServer: MetricsServer?
    /// Set when policy comes from the file.
    public let reloader: ConfigReloader?
    /// Set when policy comes from a control plane.
    public let controlPlane: ControlPlaneMode?
    public let services: ServiceGroup
}

/// Builds the agent `options` describe: checks the options, loads the file, opens the
/// control-plane link or the config reloader, and wires every service. `sluice-agent` and
/// the tests both start agents through this one function.
///
/// Throws ``ConfigError`` naming what is wrong; nothing is started then.
public func buildAgent(_ options: AgentOptions, group: any EventLoopGroup, logger: Logger) throws(ConfigError)
    -> BuiltAgent
{
    if let gateway = options.gateway, gateway.tls == nil, !options.listen.isLoopback {
        throw ConfigError(
            "refusing to serve as a gateway on \(options.listen) without TLS: give --tls-cert and --tls-key, so keys"
                + " and prompts never cross the network in the clear")
    }
    for format in ExportDestination.Format.allCases
    where options.auditExport.filter({ $0.format == format }).count > 1 {
        throw ConfigError("--export-audit-\(format.rawValue) may be given once")
    }
    guard (0...1).contains(options.traceSampleRatio) else { throw ConfigError("--trace-sample-ratio must be 0 to 1") }
    guard options.listen.isLoopback || options.allowNonLoopback || options.gateway != nil else {
        throw ConfigError(
            "refusing to listen on \(options.listen): the agent serves only its own pod over loopback, and anyone"
                + " who can reach a non-loopback address could spend this service's budget."
                + " Pass --allow-non-loopback to do it anyway.")
    }
    if let metrics = options.metricsListen, !metrics.isLoopback, !options.allowNonLoopback,
        !options.allowNonLoopbackAdmin
    {
        throw ConfigError(
            "refusing to serve metrics on \(metrics): pass --allow-non-loopback-admin to expose the admin port"
                + " beyond loopback")
    }
    var configuration = try localConfiguration(options)
    if options.gateway != nil { configuration.settings.refusesKeyless = true }
    for warning in configuration.warnings { logger.warning("configuration: \(warning)") }

    var upstreamSettings = UpstreamClient.Configuration()
    upstreamSettings.connectTimeout =
        options.connectTimeout ?? .nanoseconds(Int64(configuration.settings.connectTimeoutSeconds * 1e9))
    let upstream = UpstreamClient(group: group, configuration: upstreamSettings)
    let identity = ServiceIdentity.fromEnvironment(options.environment, overrides: configuration.identity)

    let exporters = options.auditExport.map { destination in
        AuditExport.exporter(
            destination, settings: options.auditExportSettings, identity: identity, upstream: upstream, group: group,
            logger: logger)
    }
    let audit = exporters.isEmpty ? options.audit : ExportingAuditSink(inner: options.audit, exporters: exporters)
    let tracer = options.traces.map { destination in
        CallTracer(
            destination: destination, sampleRatio: options.traceSampleRatio, settings: options.auditExportSettings,
            identity: identity, upstream: upstream, group: group, logger: logger)
    }

    let runtime: AgentRuntime
    let reloader: ConfigReloader?
    let link: ControlPlaneMode?
    // Listed before the server: a service group stops in reverse order, so the server
    // drains first and the flusher, stopping last, sends the final calls' usage.
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
    let trustedIdentity = try configuration.settings.trustedIdentity.map { settings throws(ConfigError) in
        try TrustedIdentity(settings)
    }
    if let controlPlane = options.controlPlane {
        let mode: ControlPlaneMode
        do {
            mode = try ControlPlaneMode.start(
                url: controlPlane.url, tokenFile: controlPlane.tokenFile, publicKeyFile: controlPlane.publicKeyFile,
                caFile: controlPlane.caFile, stateDirectory: controlPlane.stateDirectory, local: configuration,
                identity: identity, upstream: upstream, group: group,
                maxPolicyAgeSeconds: controlPlane.maxPolicyAgeSeconds, flushInterval: controlPlane.flushInterval,
                shutdownFlushDeadline: controlPlane.shutdownFlushDeadline,
                pepper: options.environment[controlPlane.pepperVariable].flatMap { $0.isEmpty ? nil : Secret($0) },
                logger: logger, environment: options.environment, audit: audit,
                trustedIdentity: trustedIdentity, tracer: tracer, clock: options.clock)
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError("\(error)")
        }
        link = mode
        runtime = mode.runtime
        reloader = nil
        services = mode.services
    } else {
        do {
            runtime = try AgentRuntime(
                configuration: configuration, identity: identity, upstream: upstream, audit: audit,
                trustedIdentity: trustedIdentity, tracer: tracer, clock: options.clock)
        } catch {
            throw ConfigError(error.message)
        }
        link = nil
        logger.info(
            "policy in force",
            metadata: [
                "version": "\(runtime.activePolicy.version)", "service": "\(identity.qualifiedName)",
                "keys": "\(configuration.policy.keys.count)",
            ])
        reloader = options.configPath.map { path in
            ConfigReloader(
                path: path, runtime: runtime, environment: options.environment, logger: logger,
                pollInterval: options.reloadPollInterval, handlesSignals: options.handlesSignals)
        }
        if let reloader { services.append(.init(service: reloader)) }
    }
    if let refresher = trustedIdentity?.keyRefresher(upstream: upstream, group: group, logger: logger) {
        services.insert(.init(service: refresher), at: 0)
    }
    // First, so they stop last: the drained server's final lines are exported too.
    services.insert(contentsOf: (exporters + (tracer.map { [$0.exporter] } ?? [])).map { .init(service: $0) }, at: 0)
    let server: AgentServer
    do {
        server = try AgentServer(
            runtime: runtime, group: group, address: options.listen, logger: logger, tls: options.gateway?.tls,
            tlsReloadInterval: options.gateway?.tlsReloadInterval ?? .seconds(10))
    } catch {
        throw ConfigError("the gateway's TLS certificate or key cannot be used: \(error.message)")
    }
    services.append(.init(service: server))
    let metricsServer = options.metricsListen.map { address in
        MetricsServer(runtime: runtime, group: group, address: address, logger: logger)
    }
    if let metricsServer { services.append(.init(service: metricsServer)) }
    let serviceGroup = ServiceGroup(
        configuration: .init(
            services: services, gracefulShutdownSignals: options.handlesSignals ? [.sigterm, .sigint] : [],
            logger: logger))
    return BuiltAgent(
        runtime: runtime, server: server, metricsServer: metricsServer, reloader: reloader, controlPlane: link,
        services: serviceGroup)
}

/// The agent's own file, or (with a control plane and no file) an empty policy that the
/// control plane's bundle replaces.
private func localConfiguration(_ options: AgentOptions) throws(ConfigError) -> AgentConfiguration {
    try CrashPoints.configure(environment: options.environment)
    if let path = options.configPath {
        guard let bytes = readWholeFile(path) else {
            throw ConfigError("cannot read the configuration file \(path)")
        }
        return try ConfigLoader(environment: options.environment).load(yaml: String(decoding: bytes, as: UTF8.self))
    }
    guard options.controlPlane != nil else {
        throw ConfigError(
            "give --config FILE, or --control-plane URL with --agent-token-file and --policy-public-key")
    }
    return AgentConfiguration(policy: Policy(version: "none", catalog: Catalog([])))
}
