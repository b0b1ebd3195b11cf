import Crypto
import Foundation
import SluicePolicy
import SluiceWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Turns signed bundle bytes into the agent's configuration, and keeps the last accepted
/// bundle in the state directory so that a restarted agent serves at once.
///
/// The cache file's modification time records when the control plane last confirmed the
/// bundle current, so a restart during an outage does not reset the policy's age.
public struct PolicyBundleSource: Sendable {
    /// Ed25519 public keys are immutable values; this wrapper only lets one cross isolation.
    struct PublicKey: @unchecked Sendable {
        let key: Curve25519.Signing.PublicKey
    }

    let publicKey: PublicKey
    let pepper: Secret?
    /// The agent's own knobs and identity (from the optional local file): the bundle
    /// carries policy only.
    let settings: AgentSettings
    let identity: IdentityOverrides
    let environment: [String: String]
    public let cachePath: String

    public init(
        publicKeyText: String, pepper: Secret?, settings: AgentSettings, identity: IdentityOverrides,
        environment: [String: String], stateDirectory: String
    ) throws(ConfigError) {
        let trimmed = publicKeyText.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let raw = Data(base64Encoded: trimmed),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else {
            throw ConfigError(
                "--policy-public-key must hold the control plane's Ed25519 public key, base64 (signing-key.pub)")
        }
        publicKey = PublicKey(key: key)
        self.pepper = pepper
        self.settings = settings
        self.identity = identity
        self.environment = environment
        cachePath = "\(stateDirectory)/policy-bundle.json"
    }

    /// A bundle checked and compiled, not yet in force.
    public struct Accepted: Sendable {
        public var version: Int64
        public var configuration: AgentConfiguration
        public var spoolFailure: UsageSpool.FailureMode
        public var spoolMemoryCap: Int
        public var leaseFallback: LeaseFallback
        /// Agents holding leases when the bundle was built (nil: not said).
        public var activeAgents: Int?
        let bytes: [UInt8]
    }

    /// Checks `bytes` (signature, version above `currentVersion`, pepper, every field) and
    /// compiles them. Throws, naming the fault, for anything that may not be put in force.
    public func accept(_ bytes: [UInt8], above currentVersion: Int64?) throws(WireError) -> Accepted {
        let document = try SignedBundle.open(bytes, publicKey: publicKey.key, above: currentVersion, pepper: pepper)
        let context = PolicyDocument.LocalContext(
            keyPepper: pepper,
            credential: { [environment] name in environment[name].flatMap { $0.isEmpty ? nil : Secret($0) } },
            timeZone: { [environment] name in resolveTimeZone(name, environment: environment) })
        let (policy, warnings) = try document.policy(in: context)
        guard let failure = UsageSpool.FailureMode(rawValue: document.settings.usageSpoolFailure) else {
            throw WireError("settings.usage_spool_failure must be allow_in_memory or fail_closed")
        }
        guard let fallback = document.settings.fallback else {
            throw WireError(
                "settings.lease_fallback must be fraction (with lease_fallback_fraction in (0, 1]), zero or unlimited")
        }
        let configuration = AgentConfiguration(
            policy: policy, settings: settings, identity: identity, warnings: warnings)
        return Accepted(
            version: document.version, configuration: configuration, spoolFailure: failure,
            spoolMemoryCap: max(0, document.settings.usageSpoolMemoryCap), leaseFallback: fallback,
            activeAgents: document.activeAgents, bytes: bytes)
    }

    /// The cached bundle and when it was last confirmed (wall nanoseconds), or nil when
    /// there is none. A cache that fails its checks is an error: it is never half-used.
    public func loadCache() throws -> (accepted: Accepted, confirmedAt: Int64)? {
        guard let bytes = try DurableFiles.read(cachePath, limit: 256 << 20) else { return nil }
        let accepted = try accept(bytes, above: nil)
        var info = stat()
        let confirmedAt =
            stat(cachePath, &info) == 0
            ? Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec) : 0
        return (accepted, confirmedAt)
    }

    /// Stores an accepted bundle (atomically) as confirmed at `time`.
    func store(_ accepted: Accepted, confirmedAt time: Int64) throws(StateFileError) {
        try DurableFiles.replace(cachePath, with: accepted.bytes)
        touch(at: time)
    }

    /// Records that the control plane confirmed the cached bundle current at `time`.
    func touch(at time: Int64) {
        let stamp = timespec(tv_sec: Int(time / 1_000_000_000), tv_nsec: Int(time % 1_000_000_000))
        let times = [stamp, stamp]
        _ = times.withUnsafeBufferPointer { utimensat(AT_FDCWD, cachePath, $0.baseAddress, 0) }
    }
}
