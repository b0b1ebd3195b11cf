import NIOCore
import SluiceHTTP2
import SluicePolicy

/// Where audit records are exported, and how.
public struct AuditExportDestination: Sendable {
    /// `webhook`: Sluice's JSON batch (`{"service", "pod", "records": [audit lines]}`).
    /// `otlp`: OTLP/HTTP JSON logs (`ExportLogsServiceRequest`), one log record per line.
    public enum Format: String, Sendable, CaseIterable {
        case webhook, otlp
    }

    public var format: Format
    public var endpoint: Endpoint
    /// Headers sent with every post (an API key, a tenant): their values are secrets, never logged.
    public var headers: [(name: String, value: Secret)]
    /// A PEM bundle to trust for an https endpoint instead of the system store.
    public var caFile: String?

    public init(
        format: Format, endpoint: Endpoint, headers: [(name: String, value: Secret)] = [], caFile: String? = nil
    ) {
        self.format = format
        self.endpoint = endpoint
        self.headers = headers
        self.caFile = caFile
    }

    /// Reads `--export-audit-*` values: `url` (http or https, no query), and headers as
    /// `Name=ENV_VAR`, the value read from the environment so it is never on a command line.
    public static func parse(
        format: Format, url: String, headers: [String], caFile: String?, environment: [String: String]
    ) throws(ConfigError) -> AuditExportDestination {
        let flag = "--export-audit-\(format.rawValue)"
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(parsing: url, field: flag)
        } catch {
            throw ConfigError(error.message)
        }
        var parsed: [(name: String, value: Secret)] = []
        for header in headers {
            let parts = header.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, isHeaderName(parts[0]), !parts[1].isEmpty else {
                throw ConfigError("\(flag)-header takes NAME=ENV_VAR, not \(Identifier.quoted(header))")
            }
            guard let value = environment[parts[1]], !value.isEmpty else {
                throw ConfigError("\(flag)-header \(parts[0]): the environment variable \(parts[1]) is not set")
            }
            guard !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
                throw ConfigError("\(flag)-header \(parts[0]): \(parts[1]) holds a control character")
            }
            parsed.append((parts[0].lowercased(), Secret(value)))
        }
        return AuditExportDestination(format: format, endpoint: endpoint, headers: parsed, caFile: caFile)
    }

    private static func isHeaderName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy {
                (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2D
            }
    }
}

/// How export batches and retries.
public struct AuditExportSettings: Sendable {
    /// Records per post at most.
    public var batchRecords = 500
    /// A post leaves at least this often while records wait.
    public var interval: Duration = .seconds(2)
    /// Records waiting at most; past it new ones are dropped and counted.
    public var queueRecords = 10_000
    /// Posts of one batch before it is given up (counted as failed).
    public var attempts = 5
    /// The wait after the first failed post, doubled after each next one.
    public var firstBackoff: Duration = .seconds(1)
    /// How long the final posts at shutdown may take.
    public var shutdownDeadline: Duration = .seconds(5)

    public init() {}
}

/// Writes to an inner sink and hands every line to the exporters. The request path pays a
/// lock and an append per exporter; encoding and posting happen on the exporters' tasks.
public final class ExportingAuditSink: AuditSink {
    let inner: any AuditSink
    public let exporters: [AuditExporter]

    public init(inner: any AuditSink, exporters: [AuditExporter]) {
        self.inner = inner
        self.exporters = exporters
    }

    public func write(_ line: [UInt8]) {
        inner.write(line)
        for exporter in exporters { exporter.enqueue(line) }
    }

    public func flush() { inner.flush() }
}
