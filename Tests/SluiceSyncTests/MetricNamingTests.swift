import Foundation
import SluiceTestSupport
import Testing

/// The agent's `/metrics`, as a control-plane agent serves it after real calls, against the
/// Prometheus naming conventions (docs/policy.md#metrics has the table).
@Suite("Prometheus metric names")
struct MetricNamingTests {
    @Test("counters, and only counters, end in _total; every name is sluice_; the spool's records are a counter")
    func conventions() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            let agent = try await harness.startAgent(id: "pod-1", servesMetrics: true)
            // Ready once the first bundle is in force: no call is refused while it comes.
            #expect(await eventually { (try? await agent.readiness().status) == 200 })
            for _ in 0..<3 { #expect(try await agent.chat().status == 200) }
            let port = try #require(agent.metricsPort)
            let text = try await TestHTTPClient.get("/metrics", port: port, group: harness.group).text

            var types: [String: String] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                types[String(parts[2])] = String(parts[3])
            }
            #expect(types.count >= 15, "\(types.sorted { $0.key < $1.key })")
            for (name, type) in types.sorted(by: { $0.key < $1.key }) {
                #expect(name.hasPrefix("sluice_"), "\(name)")
                #expect((type == "counter") == name.hasSuffix("_total"), "\(name) is a \(type)")
                // Units are base units: seconds and bytes, never milliseconds.
                #expect(!name.contains("_ms") && !name.contains("milliseconds"), "\(name)")
            }
            #expect(types["sluice_usage_spool_records_total"] == "counter")
            // One record per admitted call.
            let records = text.split(separator: "\n").first { $0.hasPrefix("sluice_usage_spool_records_total") }
            let value = records.flatMap { Double($0.split(separator: " ").last ?? "") }
            #expect(value == 3, "\(records.map(String.init) ?? "none")")
        }
    }
}
