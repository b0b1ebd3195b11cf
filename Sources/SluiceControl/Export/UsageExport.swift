import Foundation
import Logging
import NIOCore
import SluiceAPI
import SluiceExport
import SluiceHTTP2
import SluiceWire

/// Fleet usage to webhooks and OTLP collectors, from the control plane: each usage batch
/// an agent sends is exported once it is applied, a record per delta (an hour's window of
/// one team, project, service, key and model), so the records sum to exactly what the
/// rollups hold. A batch replayed by an agent is applied once, and exported once.
public struct UsageExport: Sendable {
    public let exporters: [BatchExporter]

    public init(exporters: [BatchExporter] = []) { self.exporters = exporters }

    /// One exporter per destination, encoding usage records for its format.
    public init(
        destinations: [ExportDestination], settings: ExportSettings, upstream: UpstreamClient,
        group: any EventLoopGroup, logger: Logger
    ) {
        exporters = destinations.map { destination in
            BatchExporter(
                destination: destination, settings: settings, subject: "usage", upstream: upstream, group: group,
                logger: logger, clock: { Int64(Date().timeIntervalSince1970 * 1e9) }
            ) { records in
                switch destination.format {
                case .webhook: ExportEncoding.webhook(records, envelope: [("source", "sluice-control")])
                case .otlp:
                    ExportEncoding.otlpLogs(
                        records, resource: [("service.name", "sluice-control")], scope: "sluice.usage",
                        describe: Self.logFields)
                }
            }
        }
    }

    /// What each destination's exporter has done with the records handed to it.
    public struct Status: Encodable, Sendable {
        public var destination: String
        public var sent: Int
        public var dropped: Int
        public var failed: Int
        public var queued: Int
    }

    public var status: [Status] {
        exporters.map { exporter in
            let counts = exporter.counts
            return Status(
                destination: exporter.destination.format.rawValue, sent: counts.sent, dropped: counts.dropped,
                failed: counts.failed, queued: counts.queued)
        }
    }

    /// Hands an applied batch's deltas to every exporter.
    func export(_ batch: UsageBatch) {
        guard !exporters.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let records = batch.deltas.enumerated().compactMap { index, delta in
            try? Array(encoder.encode(UsageExportRecord(batch: batch, index: index, delta: delta)))
        }
        for exporter in exporters {
            for record in records { exporter.enqueue(record) }
        }
    }

    static func logFields(_ record: JSONValue?) -> ExportEncoding.LogFields {
        var fields = ExportEncoding.LogFields()
        for name in ["record_id", "team", "project", "service", "key_id", "model"] {
            if let value = record?[name]?.stringValue { fields.attributes.append(("sluice.\(name)", value)) }
        }
        fields.intAttributes = [("sluice.requests", record?["requests"]?.intValue ?? 0)]
        return fields
    }
}

/// One exported usage record: a delta of one batch, named so a receiver can drop a repeat.
struct UsageExportRecord: Encodable {
    /// `agent:epoch:sequence:index`: the same on every delivery of the same delta.
    var recordID: String
    var agentID: String
    var windowStart: Int64
    var windowEnd: Int64
    var team: String?
    var project: String?
    var service: String
    var keyID: String?
    var model: String
    var requests: Int64
    var promptTokens: Int64
    var completionTokens: Int64
    var cachedPromptTokens: Int64
    var cacheCreationTokens: Int64
    var costUSD: Double
    var costPicoUSD: Int64
    var denials: [String: Int64]
    var denialRules: [String: Int64]?

    init(batch: UsageBatch, index: Int, delta: UsageDelta) {
        recordID = "\(batch.agentID):\(batch.epoch):\(batch.sequence):\(index)"
        agentID = batch.agentID
        windowStart = delta.hour
        windowEnd = delta.hour + 3600
        team = delta.team
        project = delta.project
        service = delta.service
        keyID = delta.keyID
        model = delta.model
        requests = delta.requests
        promptTokens = delta.promptTokens
        completionTokens = delta.completionTokens
        cachedPromptTokens = delta.cachedPromptTokens
        cacheCreationTokens = delta.cacheCreationTokens
        costUSD = Double(delta.costPicoUSD) / 1e12
        costPicoUSD = delta.costPicoUSD
        denials = delta.denials
        denialRules = delta.denialRules.isEmpty ? nil : delta.denialRules
    }

    enum CodingKeys: String, CodingKey {
        case recordID = "record_id"
        case agentID = "agent_id"
        case windowStart = "window_start"
        case windowEnd = "window_end"
        case team, project, service
        case keyID = "key_id"
        case model, requests
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case cachedPromptTokens = "cached_tokens"
        case cacheCreationTokens = "cache_creation_tokens"
        case costUSD = "cost_usd"
        case costPicoUSD = "cost_pico_usd"
        case denials
        case denialRules = "denial_rules"
    }
}
