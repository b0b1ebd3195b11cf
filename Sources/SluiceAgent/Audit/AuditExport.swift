import Logging
import NIOCore
import SluiceAPI
import SluiceExport
import SluiceHTTP2
import SluicePolicy

/// Writes to an inner sink and hands every line to the exporters. The request path pays a
/// lock and an append per exporter; encoding and posting happen on the exporters' tasks.
public final class ExportingAuditSink: AuditSink {
    let inner: any AuditSink
    public let exporters: [BatchExporter]

    public init(inner: any AuditSink, exporters: [BatchExporter]) {
        self.inner = inner
        self.exporters = exporters
    }

    public func write(_ line: [UInt8]) {
        inner.write(line)
        for exporter in exporters { exporter.enqueue(line) }
    }

    public func flush() { inner.flush() }
}

/// The audit log's exporters: each line as the audit log holds it, to a webhook as
/// `{"service", "pod", "records": [line, …]}` or as OTLP log records (docs/audit-export.md).
enum AuditExport {
    static func exporter(
        _ destination: ExportDestination, settings: ExportSettings, identity: ServiceIdentity,
        upstream: UpstreamClient, group: any EventLoopGroup, logger: Logger
    ) -> BatchExporter {
        BatchExporter(
            destination: destination, settings: settings, subject: "audit", upstream: upstream, group: group,
            logger: logger, clock: { Clocks.wallNanoseconds() }
        ) { records in
            switch destination.format {
            case .webhook:
                ExportEncoding.webhook(records, envelope: [("service", identity.qualifiedName), ("pod", identity.pod)])
            case .otlp:
                ExportEncoding.otlpLogs(
                    records,
                    resource: [
                        ("service.name", "sluice-agent"), ("service.namespace", identity.namespace),
                        ("sluice.service", identity.qualifiedName), ("k8s.pod.name", identity.pod),
                    ], scope: "sluice.audit", describe: logFields)
            }
        }
    }

    /// The fields a log search filters on, and a severity from the status: 5xx an error, a
    /// refusal a warning, the rest information.
    static func logFields(_ line: JSONValue?) -> ExportEncoding.LogFields {
        var fields = ExportEncoding.LogFields()
        for name in ["request_id", "team", "project", "key_id", "alias", "upstream_model", "error", "rule"] {
            if let value = line?[name]?.stringValue { fields.attributes.append(("sluice.\(name)", value)) }
        }
        let status = line?["status"]?.intValue ?? 0
        fields.intAttributes = [("http.response.status_code", status)]
        fields.severity = status >= 500 ? (17, "ERROR") : status >= 400 ? (13, "WARN") : (9, "INFO")
        return fields
    }
}
