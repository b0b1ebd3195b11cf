import Foundation
import Hummingbird
import SluicePolicy

/// LiteLLM's spend reports, answered from Sluice's hourly and daily rollups (the same store
/// query `GET /v1/admin/usage` uses). Rollups hold sums, not single requests: `/spend/logs`
/// answers one row per hour, key, team and model, and a request id cannot be looked up
/// (each request is on its agent's audit line).
extension ControlAPI {
    func liteLLMSpendRoutes(_ routes: RouteCollection<ControlContext>) {
        let store = self.store
        // `?start_date=2026-11-01&end_date=2026-11-30&group_by=team|api_key`
        routes.get("global/spend/report") { request, _ in
            let parameters = request.uri.queryParameters
            let (from, to) = try LiteLLMSpend.window(parameters.get("start_date"), parameters.get("end_date"))
            let dimension: UsageQuery.Dimension
            switch parameters.get("group_by") ?? "team" {
            case "team": dimension = .team
            case "api_key": dimension = .key
            case "customer":
                throw APIError(
                    400, "group_by: customer spend is not kept; end users are limited, not rolled up",
                    code: "unsupported_group_by")
            case let other:
                throw APIError(
                    400, "group_by: \(Identifier.quoted(String(other.prefix(32)))) is not team or api_key",
                    code: "invalid_group_by")
            }
            let rows = try await store.usage(UsageQuery(groupBy: [.day, dimension, .model], from: from, to: to))
            return try jsonResponse(LiteLLMSpend.report(rows, by: dimension))
        }
        // `?start_date=…&end_date=…[&api_key=ID-or-secret][&team_id=…]`
        routes.get("spend/logs") { request, _ in
            let parameters = request.uri.queryParameters
            if parameters.get("request_id") != nil {
                throw APIError(
                    400, "request_id: single requests are on the agents' audit lines, not in the rollups",
                    code: "unsupported_query")
            }
            let (from, to) = try LiteLLMSpend.window(parameters.get("start_date"), parameters.get("end_date"))
            var key: String?
            if let reference = parameters.get("api_key") {
                key = try await Self.keyID(reference, store: store, hasher: keyHasher)
            }
            let team = parameters.get("team_id")
            let rows = try await store.usage(UsageQuery(groupBy: [.day, .key, .team, .model], from: from, to: to))
            return try jsonResponse(
                rows.filter { row in
                    (key == nil || row.group["key"] == key) && (team == nil || row.group["team"] == team)
                }.map(LiteLLMSpendLog.init))
        }
    }
}

enum LiteLLMSpend {
    /// `start_date` and `end_date` (UTC dates, both days included); the last 30 days by default.
    static func window(_ start: String?, _ end: String?) throws -> (from: Int64, to: Int64) {
        let now = Int64(Date().timeIntervalSince1970)
        let from = try start.map { try Since.start($0, now: now) } ?? (now - 30 * 86_400)
        let to = try end.map { try Since.start($0, now: now) + 86_400 } ?? (now - now % 3600 + 3600)
        guard from < to else { throw APIError(400, "start_date must not be after end_date", code: "invalid_range") }
        return (from - from % 3600, to)
    }

    /// LiteLLM's report shape: per day, per team (or key), its spend and a per-model breakdown.
    static func report(_ rows: [UsageRow], by dimension: UsageQuery.Dimension) -> [LiteLLMSpendDay] {
        var days: [String: [String: LiteLLMSpendGroup]] = [:]
        for row in rows {
            let day = row.group["day"] ?? ""
            let name = row.group[dimension.rawValue] ?? ""
            var group = days[day]?[name] ?? LiteLLMSpendGroup(name: name, totalSpend: 0, metadata: [])
            let spend = Double(row.costPicoUSD) / 1e12
            group.totalSpend += spend
            group.metadata.append(
                LiteLLMModelSpend(
                    model: row.group["model"] ?? "", spend: spend, totalTokens: row.promptTokens + row.completionTokens,
                    requests: row.requests))
            days[day, default: [:]][name] = group
        }
        return days.keys.sorted().map { day in
            LiteLLMSpendDay(
                groupByDay: day, groups: days[day]!.values.sorted { $0.totalSpend > $1.totalSpend },
                byKey: dimension == .key)
        }
    }
}

struct LiteLLMModelSpend: Encodable, Sendable {
    var model: String
    var spend: Double
    var totalTokens: Int64
    var requests: Int64

    enum CodingKeys: String, CodingKey {
        case model, spend
        case totalTokens = "total_tokens"
        case requests = "api_requests"
    }
}

struct LiteLLMSpendGroup: Sendable {
    var name: String
    var totalSpend: Double
    var metadata: [LiteLLMModelSpend]
}

struct LiteLLMSpendDay: Encodable, Sendable {
    var groupByDay: String
    var groups: [LiteLLMSpendGroup]
    var byKey: Bool

    private struct Entry: Encodable {
        var name: String
        var totalSpend: Double
        var metadata: [LiteLLMModelSpend]
        var byKey: Bool

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: DynamicKey.self)
            try container.encode(name, forKey: DynamicKey(byKey ? "api_key" : "team_name"))
            try container.encode(totalSpend, forKey: DynamicKey("total_spend"))
            try container.encode(metadata, forKey: DynamicKey("metadata"))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: DynamicKey.self)
        try container.encode(groupByDay, forKey: DynamicKey("group_by_day"))
        try container.encode(
            groups.map { Entry(name: $0.name, totalSpend: $0.totalSpend, metadata: $0.metadata, byKey: byKey) },
            forKey: DynamicKey(byKey ? "api_keys" : "teams"))
    }
}

/// One rollup row as a `/spend/logs` entry.
struct LiteLLMSpendLog: Encodable, Sendable {
    var day: String
    var apiKey: String
    var teamID: String
    var model: String
    var spend: Double
    var promptTokens: Int64
    var completionTokens: Int64
    var totalTokens: Int64
    var requests: Int64

    init(_ row: UsageRow) {
        day = row.group["day"] ?? ""
        apiKey = row.group["key"] ?? ""
        teamID = row.group["team"] ?? ""
        model = row.group["model"] ?? ""
        spend = Double(row.costPicoUSD) / 1e12
        promptTokens = row.promptTokens
        completionTokens = row.completionTokens
        totalTokens = row.promptTokens + row.completionTokens
        requests = row.requests
    }

    enum CodingKeys: String, CodingKey {
        case day = "startTime"
        case apiKey = "api_key"
        case teamID = "team_id"
        case model, spend
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
        case requests = "api_requests"
    }
}

private struct DynamicKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
