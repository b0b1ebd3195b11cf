import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SluiceHTTP2
import SluicePolicy

/// The agent wired to a control plane: a runtime that starts from the cached bundle (if
/// any), the policy long-poll and the usage flusher.
public struct ControlPlaneMode: Sendable {
    public let runtime: AgentRuntime
    public let policySync: PolicySync
    public let flusher: UsageFlusher
    public let spool: UsageSpool

    /// The flusher and the policy long-poll, to be listed *before* the agent's server in a
    /// service group: shutdown runs in reverse, so the server drains first and the flusher,
    /// stopping last, sends the final calls' usage.
    public var services: [ServiceGroupConfiguration.ServiceConfiguration] {
        [.init(service: flusher), .init(service: policySync)]
    }

    /// The control plane's policy public key (base64), when no `--policy-public-key` file is given.
    public static let publicKeyVariable = "SLUICE_POLICY_PUBLIC_KEY"
    /// PEM of CAs for an https control plane, when no `--control-plane-ca` file is given.
    public static let caVariable = "SLUICE_CONTROL_PLANE_CA"

    /// Reads the token and public key, opens the state directory (recovering the spool),
    /// and puts the cached policy in force when there is one that still verifies.
    public static func start(
        url: String, tokenFile: String?, publicKeyFile: String?, caFile: String?, stateDirectory: String,
        local: AgentConfiguration, identity: ServiceIdentity, upstream: UpstreamClient, group: any EventLoopGroup,
        maxPolicyAgeSeconds: Double, flushInterval: Duration, shutdownFlushDeadline: Duration = .seconds(10),
        pepper: Secret?, logger: Logger,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        audit: any AuditSink = FileDescriptorAuditSink(), trustedIdentity: TrustedIdentity? = nil,
        tracer: CallTracer? = nil, clock: @escaping @Sendable () -> Int64 = { Clocks.wallNanoseconds() }
    ) throws -> ControlPlaneMode {
        guard let tokenFile else { throw ConfigError("--control-plane needs --agent-token-file") }
        let inlineKey = environment[Self.publicKeyVariable].flatMap { $0.isEmpty ? nil : $0 }
        guard publicKeyFile != nil || inlineKey != nil else {
            throw ConfigError("--control-plane needs --policy-public-key (or \(Self.publicKeyVariable))")
        }
        guard maxPolicyAgeSeconds > 0 else { throw ConfigError("--policy-max-age-seconds must be positive") }
        let token = try AgentTokenFile(path: tokenFile)
        let keyText: String
        if let publicKeyFile {
            guard let keyBytes = try DurableFiles.read(publicKeyFile, limit: 4096),
                let text = String(validating: keyBytes, as: UTF8.self)
            else {
                throw ConfigError("cannot read the policy public key from \(publicKeyFile)")
            }
            keyText = text
        } else {
            keyText = inlineKey ?? ""
        }
        try DurableFiles.makeDirectory(stateDirectory)
        // An injected agent gets the control plane's CA in its environment (files in the
        // control plane's namespace cannot be mounted into other namespaces' pods).
        var caFile = caFile
        if caFile == nil, let pem = environment[Self.caVariable], !pem.isEmpty {
            let path = "\(stateDirectory)/control-plane-ca.pem"
            try DurableFiles.replace(path, with: Array(pem.utf8))
            caFile = path
        }
        let client = try ControlPlaneClient(
            url: url, tokenFile: token, claimedService: identity.service, caFile: caFile, upstream: upstream,
            group: group)
        let source = try PolicyBundleSource(
            publicKeyText: keyText, pepper: pepper, settings: local.settings, identity: local.identity,
            environment: environment, stateDirectory: stateDirectory)
        let spool = try UsageSpool(directory: "\(stateDirectory)/spool")
        let status = SyncStatus(maxPolicyAgeSeconds: maxPolicyAgeSeconds)

        var configuration = AgentConfiguration(
            policy: Policy(version: "none", catalog: Catalog([])), settings: local.settings,
            identity: local.identity)
        var cached: (accepted: PolicyBundleSource.Accepted, confirmedAt: Int64)?
        do {
            cached = try source.loadCache()
        } catch {
            logger.error(
                "the cached policy bundle is refused; waiting for the control plane",
                metadata: ["path": "\(source.cachePath)", "error": "\(error)"])
        }
        let leases = LeaseTable()
        if let cached {
            configuration = cached.accepted.configuration
            leases.setFallback(cached.accepted.leaseFallback, activeAgents: cached.accepted.activeAgents, now: clock())
        }
        let runtime = try AgentRuntime(
            configuration: configuration, identity: identity, upstream: upstream, audit: audit,
            sync: status, spool: spool, leases: leases, trustedIdentity: trustedIdentity, tracer: tracer,
            clock: clock)
        if let cached {
            status.policyLoadedFromCache(version: cached.accepted.version, confirmedAt: cached.confirmedAt)
            spool.setFailureMode(cached.accepted.spoolFailure, memoryCap: cached.accepted.spoolMemoryCap)
            logger.info(
                "policy in force",
                metadata: [
                    "version": "\(cached.accepted.version)", "from": "cache",
                    "service": "\(identity.qualifiedName)",
                ])
        }
        let health = spool.health
        logger.info(
            "usage spool open",
            metadata: [
                "directory": "\(spool.directory)", "epoch": "\(health.epoch)",
                "pending_batches": "\((try? spool.pending().count) ?? 0)",
            ])
        return ControlPlaneMode(
            runtime: runtime, policySync: PolicySync(runtime: runtime, client: client, source: source, logger: logger),
            flusher: UsageFlusher(
                runtime: runtime, spool: spool, client: client, interval: flushInterval,
                shutdownDeadline: shutdownFlushDeadline, logger: logger),
            spool: spool)
    }
}
