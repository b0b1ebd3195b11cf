import Logging
import ServiceLifecycle
import SluicePolicy
import Synchronization
import UnixSignals

/// Reloads the configuration file on SIGHUP and whenever its contents change (checked every
/// `pollInterval`; nil checks only on SIGHUP). A file that fails to load or validate is refused with a logged reason,
/// and the policy in force stays. Connections are never touched: calls in flight finish
/// under the policy that admitted them.
public final class ConfigReloader: Service {
    private let path: String
    private let runtime: AgentRuntime
    private let environment: [String: String]
    private let logger: Logger
    private let pollInterval: Duration?
    private let handlesSignals: Bool
    /// The content version last refused, so polling does not log the same refusal forever.
    private let lastRejected = Mutex<String?>(nil)

    public init(
        path: String, runtime: AgentRuntime, environment: [String: String], logger: Logger,
        pollInterval: Duration? = .seconds(2), handlesSignals: Bool = true
    ) {
        self.path = path
        self.runtime = runtime
        self.environment = environment
        self.logger = logger
        self.pollInterval = pollInterval
        self.handlesSignals = handlesSignals
    }

    static let pollReason = "file changed"

    /// What a reload attempt did.
    public enum Outcome: Sendable, Equatable {
        case reloaded(version: String)
        case unchanged
        case rejected(String)
    }

    /// Reads the file and puts it in force if it differs from the policy in force.
    @discardableResult
    public func reloadNow(reason: String) -> Outcome {
        guard let bytes = readWholeFile(path) else {
            return reject("cannot read \(path)", reason: reason)
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let version = contentVersion(text)
        guard version != runtime.activePolicy.version else { return .unchanged }
        if reason == Self.pollReason, lastRejected.withLock({ $0 == version }) { return .unchanged }
        lastRejected.withLock { $0 = version }
        do {
            let configuration = try ConfigLoader(environment: environment).load(yaml: text)
            if configuration.settings != runtime.settings {
                logger.warning("sluice_settings changed; settings apply at the next restart, policy applies now")
            }
            try runtime.reload(configuration)
            lastRejected.withLock { $0 = nil }
            for warning in configuration.warnings { logger.warning("configuration: \(warning)") }
            logger.notice(
                "policy reloaded", metadata: ["version": "\(configuration.policy.version)", "trigger": "\(reason)"])
            return .reloaded(version: configuration.policy.version)
        } catch let error as ConfigError {
            return reject(error.message, reason: reason)
        } catch let error as PolicyError {
            return reject(error.message, reason: reason)
        } catch {
            return reject("\(error)", reason: reason)
        }
    }

    private func reject(_ message: String, reason: String) -> Outcome {
        runtime.metrics.policyRejected()
        logger.error(
            "configuration rejected; the previous policy stays in force",
            metadata: [
                "error": "\(message)", "trigger": "\(reason)", "version_in_force": "\(runtime.activePolicy.version)",
            ])
        return .rejected(message)
    }

    public func run() async throws {
        let signals = handlesSignals ? await UnixSignalsSequence(trapping: .sighup) : nil
        await withTaskGroup(of: Void.self) { group in
            if let signals {
                group.addTask {
                    for await _ in signals.cancelOnGracefulShutdown() {
                        self.reloadNow(reason: "SIGHUP")
                    }
                }
            }
            if let pollInterval {
                group.addTask {
                    while !Task.isCancelled {
                        do {
                            try await Task.sleep(for: pollInterval)
                        } catch {
                            return
                        }
                        self.reloadNow(reason: Self.pollReason)
                    }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }
}
