import SluiceAPI

/// The bodies exporters post, built from the records' bytes: each record goes out exactly
/// as it was handed over.
public enum ExportEncoding {
    /// What an OTLP log record says about one record besides its body.
    public struct LogFields: Sendable {
        public var attributes: [(key: String, value: String)] = []
        public var intAttributes: [(key: String, value: Int)] = []
        /// OTLP severity number and text (9 `INFO`, 13 `WARN`, 17 `ERROR`).
        public var severity: (number: Int, text: String) = (9, "INFO")

        public init() {}
    }

    /// `{<envelope fields>, "records": [record, …]}`.
    public static func webhook(_ records: [ExportRecord], envelope: [(key: String, value: String)]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(records.reduce(64) { $0 + $1.line.count + 1 })
        out.append(UInt8(ascii: "{"))
        for (key, value) in envelope {
            appendJSONString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            appendJSONString(value, to: &out)
            out.append(UInt8(ascii: ","))
        }
        out += #""records":["#.utf8
        for (index, record) in records.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += trimmed(record.line)
        }
        out += "]}".utf8
        return out
    }

    /// OTLP/HTTP JSON (`ExportLogsServiceRequest`): one resource, one scope, a log record per
    /// record with the record as its string body and `describe`'s attributes and severity.
    public static func otlpLogs(
        _ records: [ExportRecord], resource: [(key: String, value: String)], scope: String,
        describe: (JSONValue?) -> LogFields
    ) -> [UInt8] {
        var out: [UInt8] = []
        openOTLP(signal: "Logs", items: "logRecords", resource: resource, scope: scope, into: &out)
        for (index, record) in records.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            let line = trimmed(record.line)
            let fields = describe(try? JSONValue.parseObject(Array(line)))
            out += #"{"timeUnixNano":""#.utf8
            out += String(record.nanoseconds).utf8
            out += #"","observedTimeUnixNano":""#.utf8
            out += String(record.nanoseconds).utf8
            out += #"","severityNumber":\#(fields.severity.number),"severityText":"#.utf8
            appendJSONString(fields.severity.text, to: &out)
            out += #","body":{"stringValue":"#.utf8
            appendJSONString(String(decoding: line, as: UTF8.self), to: &out)
            out += #"},"attributes":["#.utf8
            var first = true
            for (key, value) in fields.attributes {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                attribute(key, value, to: &out)
            }
            for (key, value) in fields.intAttributes {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                out += #"{"key":"#.utf8
                appendJSONString(key, to: &out)
                out += #","value":{"intValue":"\#(value)"}}"#.utf8
            }
            out += "]}".utf8
        }
        out += "]}]}]}".utf8
        return out
    }

    /// An OTLP/JSON export request up to its list of items: one resource with `resource` as
    /// string attributes, one scope named `scope`. The caller adds the items and `]}]}]}`.
    private static func openOTLP(
        signal: String, items: String, resource: [(key: String, value: String)], scope: String,
        into out: inout [UInt8]
    ) {
        out += #"{"resource\#(signal)":[{"resource":{"attributes":["#.utf8
        for (index, (key, value)) in resource.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            attribute(key, value, to: &out)
        }
        out += #"]},"scope\#(signal)":[{"scope":{"name":"#.utf8
        appendJSONString(scope, to: &out)
        out += #"},"\#(items)":["#.utf8
    }

    private static func attribute(_ key: String, _ value: String, to out: inout [UInt8]) {
        out += #"{"key":"#.utf8
        appendJSONString(key, to: &out)
        out += #","value":{"stringValue":"#.utf8
        appendJSONString(value, to: &out)
        out += "}}".utf8
    }

    private static func trimmed(_ line: [UInt8]) -> ArraySlice<UInt8> {
        line.last == UInt8(ascii: "\n") ? line.dropLast() : line[...]
    }
}

extension ExportEncoding {
    /// OTLP/HTTP JSON (`ExportTraceServiceRequest`): one resource, one scope, the records as
    /// its spans (each record one OTLP/JSON span object).
    public static func otlpSpans(
        _ records: [ExportRecord], resource: [(key: String, value: String)], scope: String
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(records.reduce(256) { $0 + $1.line.count + 1 })
        openOTLP(signal: "Spans", items: "spans", resource: resource, scope: scope, into: &out)
        for (index, record) in records.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += record.line
        }
        out += "]}]}]}".utf8
        return out
    }
}
