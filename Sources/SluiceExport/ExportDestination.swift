import SluicePolicy

/// Where records are exported, and how: the agent's audit lines, the control plane's usage.
public struct ExportDestination: Sendable {
    /// `webhook`: a JSON batch (`{…, "records": [record, …]}`). `otlp`: OTLP/HTTP JSON logs
    /// (`ExportLogsServiceRequest`), one log record per record.
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

    /// Reads a destination from its flags: `url` (http or https, no query), and headers as
    /// `Name=ENV_VAR`, the value read from the environment so it is never on a command line.
    /// - Parameter flag: the URL flag's name, as errors name it (`--export-audit-otlp`).
    public static func parse(
        flag: String, format: Format, url: String, headers: [String], caFile: String?,
        environment: [String: String]
    ) throws(ExportConfigError) -> ExportDestination {
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(parsing: url, field: flag)
        } catch {
            throw ExportConfigError(error.message)
        }
        var parsed: [(name: String, value: Secret)] = []
        for header in headers {
            let parts = header.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, isHeaderName(parts[0]), !parts[1].isEmpty else {
                throw ExportConfigError("\(flag)-header takes NAME=ENV_VAR, not \(Identifier.quoted(header))")
            }
            guard let value = environment[parts[1]], !value.isEmpty else {
                throw ExportConfigError("\(flag)-header \(parts[0]): the environment variable \(parts[1]) is not set")
            }
            guard !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
                throw ExportConfigError("\(flag)-header \(parts[0]): \(parts[1]) holds a control character")
            }
            parsed.append((parts[0].lowercased(), Secret(value)))
        }
        return ExportDestination(format: format, endpoint: endpoint, headers: parsed, caFile: caFile)
    }

    /// The destinations a binary's `--export-<what>-webhook` and `--export-<what>-otlp` flags
    /// (with their `-header` lists) name, in that order.
    public static func fromFlags(
        prefix: String, webhook: String?, webhookHeaders: [String], otlp: String?, otlpHeaders: [String],
        caFile: String?, environment: [String: String]
    ) throws(ExportConfigError) -> [ExportDestination] {
        var destinations: [ExportDestination] = []
        for (format, url, headers) in [(Format.webhook, webhook, webhookHeaders), (.otlp, otlp, otlpHeaders)] {
            let flag = "\(prefix)-\(format.rawValue)"
            guard let url else {
                if !headers.isEmpty { throw ExportConfigError("\(flag)-header needs \(flag)") }
                continue
            }
            destinations.append(
                try parse(
                    flag: flag, format: format, url: url, headers: headers, caFile: caFile, environment: environment))
        }
        return destinations
    }

    private static func isHeaderName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy {
                (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2D
            }
    }
}

/// Why an export flag was refused; the message names the flag.
public struct ExportConfigError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// How an exporter batches and retries.
public struct ExportSettings: Sendable {
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
