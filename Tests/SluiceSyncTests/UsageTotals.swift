import Foundation
import NIOCore
import SluiceTestSupport
import Synchronization

/// Requests and tokens: what callers were answered (a ledger), or what the control plane
/// recorded. The fault tests' verdict is that the two are equal.
struct UsageTotals: Equatable, Sendable, CustomStringConvertible {
    var requests: Int64 = 0
    var prompt: Int64 = 0
    var completion: Int64 = 0

    var description: String { "(requests: \(requests), prompt: \(prompt), completion: \(completion))" }

    /// Counts `response` when it is a 200 carrying usage; true when counted.
    mutating func count(_ response: TestResponse) -> Bool {
        guard response.status == 200,
            let body = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
            let usage = body["usage"] as? [String: Any]
        else { return false }
        add(usage)
        return true
    }

    /// Counts a streamed `response` when it ended whole (`[DONE]`) with a usage chunk (the
    /// call asked for one); true when counted.
    mutating func count(stream response: TestResponse) -> Bool {
        guard response.status == 200, response.text.contains("data: [DONE]") else { return false }
        for line in response.text.split(separator: "\n").reversed() where line.hasPrefix("data: {") {
            guard let chunk = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any],
                let usage = chunk["usage"] as? [String: Any]
            else { continue }
            add(usage)
            return true
        }
        return false
    }

    private mutating func add(_ usage: [String: Any]) {
        requests += 1
        prompt += (usage["prompt_tokens"] as? NSNumber)?.int64Value ?? 0
        completion += (usage["completion_tokens"] as? NSNumber)?.int64Value ?? 0
    }

    /// The control plane's totals over every usage row up to a day ahead (tests move the
    /// agents' clock forward), and its recorded cost in pico-USD.
    static func recorded(adminToken: String, port: Int, group: any EventLoopGroup) async throws -> (
        totals: UsageTotals, costPicoUSD: Int64
    ) {
        let response = try await TestHTTPClient.request(
            "GET", "/v1/admin/usage?to=\(Int64(Date().timeIntervalSince1970) + 86_400)",
            bearer: adminToken, port: port, group: group)
        guard response.status == 200,
            let rows = try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]]
        else {
            throw TestClientError(message: "usage query answered \(response.status): \(response.text)")
        }
        var totals = UsageTotals()
        var cost: Int64 = 0
        for row in rows {
            totals.requests += (row["requests"] as? NSNumber)?.int64Value ?? 0
            totals.prompt += (row["prompt_tokens"] as? NSNumber)?.int64Value ?? 0
            totals.completion += (row["completion_tokens"] as? NSNumber)?.int64Value ?? 0
            cost += (row["cost_pico_usd"] as? NSNumber)?.int64Value ?? 0
        }
        return (totals, cost)
    }
}

/// A ledger shared by concurrent callers.
final class Ledger: Sendable {
    private let totals = Mutex(UsageTotals())

    var value: UsageTotals { totals.withLock { $0 } }

    /// Counts `response` when it is a 200 carrying usage; true when counted.
    @discardableResult
    func count(_ response: TestResponse) -> Bool {
        totals.withLock { $0.count(response) }
    }

    /// Counts a streamed `response` when it ended whole with usage; true when counted.
    @discardableResult
    func count(stream response: TestResponse) -> Bool {
        totals.withLock { $0.count(stream: response) }
    }
}
