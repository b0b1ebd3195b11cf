import Foundation
import Hummingbird
import SluicePolicy
import SluiceWire

/// Checks an entity or the settings the way an agent will, so the admin API refuses what
/// agents would refuse, instead of publishing a bundle no agent can load.
enum Validation {
    static func check(_ entity: Entity) throws {
        func name(_ text: String, _ what: String) throws {
            guard !text.isEmpty, text.utf8.count <= 200, !text.contains(where: { $0.isNewline || $0 == "\0" }) else {
                throw APIError(400, "\(what) must be 1 to 200 bytes on one line", code: "invalid_name")
            }
        }
        do {
            switch entity {
            case .team(let team):
                try name(team.name, "name")
                _ = try team.limits?.limits(at: "limits")
                for filter in team.promptFilters { _ = try compile(filter) }
            case .project(let project):
                try name(project.name, "name")
                _ = try project.limits?.limits(at: "limits")
            case .service(let service):
                guard service.name == "*" || service.name.split(separator: "/", omittingEmptySubsequences: false).count == 2 else {
                    throw APIError(400, "a service is named namespace/service, or * for any other", code: "invalid_name")
                }
                try name(service.name, "name")
                _ = try service.limits?.limits(at: "limits")
            case .model(let model):
                try name(model.alias, "alias")
                guard !model.deployments.isEmpty else { throw APIError(400, "a model needs at least one deployment", code: "invalid_model") }
                for (index, deployment) in model.deployments.enumerated() {
                    do {
                        _ = try Endpoint(parsing: deployment.apiBase)
                    } catch {
                        throw APIError(400, "deployments[\(index)].\(error.message)", code: "invalid_model")
                    }
                    guard deployment.weight >= 1 else { throw APIError(400, "deployments[\(index)].weight must be at least 1", code: "invalid_model") }
                }
                if model.inputCostPerToken != nil || model.outputCostPerToken != nil {
                    do {
                        _ = try Price(inputUSDPerToken: model.inputCostPerToken ?? 0, outputUSDPerToken: model.outputCostPerToken ?? 0)
                    } catch {
                        throw APIError(400, error.message, code: "invalid_price")
                    }
                }
                _ = try model.limits?.limits(at: "limits")
            case .key(let key):
                try name(key.id, "id")
                guard KeyHash(encoded: key.hash) != nil else { throw APIError(400, "hash is malformed", code: "invalid_key") }
                _ = try key.limits?.limits(at: "limits")
            }
        } catch let error as WireError {
            throw APIError(400, error.message, code: "invalid_limits")
        }
    }

    static func check(_ settings: SettingsDocument) throws {
        do {
            _ = try settings.defaultLimits?.limits(at: "default_limits")
            _ = try settings.endUserDefaultLimits?.limits(at: "end_user_default_limits")
            for filter in settings.promptFilters { _ = try compile(filter) }
        } catch let error as WireError {
            throw APIError(400, error.message, code: "invalid_limits")
        }
        guard UnpricedModels(rawValue: settings.unpricedModels) != nil else {
            throw APIError(400, "unpriced_models must be deny, deny_when_budgeted or flag", code: "invalid_settings")
        }
        guard settings.timeZone == "UTC" || TimeZoneRules(fixedOffset: settings.timeZone) != nil
                || settings.timeZone.split(separator: "/").count >= 2 else {
            throw APIError(400, "time_zone must be UTC, an offset like +05:30, or a zone name like Europe/Berlin", code: "invalid_settings")
        }
        guard settings.defaultMaxOutputTokens > 0 else { throw APIError(400, "default_max_output_tokens must be positive", code: "invalid_settings") }
        if let percent = settings.softBudgetPercent, !(1...100).contains(percent) {
            throw APIError(400, "soft_budget_percent must be 1 to 100", code: "invalid_settings")
        }
        guard ["allow_in_memory", "fail_closed"].contains(settings.usageSpoolFailure) else {
            throw APIError(400, "usage_spool_failure must be allow_in_memory or fail_closed", code: "invalid_settings")
        }
        guard (0...10_000_000).contains(settings.usageSpoolMemoryCap) else {
            throw APIError(400, "usage_spool_memory_cap must be 0 to 10000000", code: "invalid_settings")
        }
        guard (1...3600).contains(settings.leaseSeconds) else { throw APIError(400, "lease_seconds must be 1 to 3600", code: "invalid_settings") }
        guard settings.fallback != nil else {
            throw APIError(400, "lease_fallback must be fraction (with lease_fallback_fraction in (0, 1]), zero or unlimited", code: "invalid_settings")
        }
        guard (0...100).contains(settings.leaseMinimumSharePercent) else {
            throw APIError(400, "lease_minimum_share_percent must be 0 to 100", code: "invalid_settings")
        }
        if let router = settings.router {
            // Strategy, numbers and self-fallbacks are checked here; which aliases exist is
            // each agent's business, as models may be added after the settings.
            let tables = [router.fallbacks, router.contextWindowFallbacks, router.contentPolicyFallbacks].compactMap { $0 }
            let named = Set(tables.flatMap { $0.keys } + tables.flatMap { $0.values.flatMap { $0 } })
            var warnings: [String] = []
            do {
                _ = try router.settings(for: Catalog(named.map { ModelAlias(name: $0, deployments: [], price: nil) }), warnings: &warnings)
            } catch {
                throw APIError(400, error.message, code: "invalid_settings")
            }
        }
    }

    private static func compile(_ filter: PromptFilterDocument) throws -> PromptFilter {
        do {
            return try PromptFilter(name: filter.name, pattern: filter.pattern)
        } catch {
            throw APIError(400, error.message, code: "invalid_prompt_filter")
        }
    }
}

/// `GET /v1/admin/usage?group_by=team,model&from=…&to=…&limit=N` (Unix seconds; `since=30d`
/// is shorthand for from = now − 30 days).
enum UsageParameters {
    static func query(_ request: Request) throws -> UsageQuery {
        let parameters = request.uri.queryParameters
        var groupBy: [UsageQuery.Dimension] = []
        if let text = parameters.get("group_by"), !text.isEmpty {
            for part in text.split(separator: ",") {
                guard let dimension = UsageQuery.Dimension(rawValue: String(part)) else {
                    throw APIError(400, "group_by: \(part.prefix(32)) is not one of team, project, service, key, model, day", code: "invalid_group_by")
                }
                groupBy.append(dimension)
            }
        }
        let now = Int64(Date().timeIntervalSince1970)
        var from = Int64(parameters.get("from") ?? "") ?? 0
        if let since = parameters.get("since") {
            guard since.hasSuffix("d") || since.hasSuffix("h"), let amount = Int64(since.dropLast()), amount > 0 else {
                throw APIError(400, "since must look like 30d or 12h", code: "invalid_since")
            }
            from = now - amount * (since.hasSuffix("d") ? 86_400 : 3600)
            from -= from % 3600
        }
        let to = Int64(parameters.get("to") ?? "") ?? (now - now % 3600 + 3600)
        guard from < to else { throw APIError(400, "from must be before to", code: "invalid_range") }
        var limit: Int?
        if let text = parameters.get("limit") {
            guard let value = Int(text), (1...10_000).contains(value) else { throw APIError(400, "limit must be 1 to 10000", code: "invalid_limit") }
            limit = value
        }
        return UsageQuery(groupBy: groupBy, from: from, to: to, limit: limit)
    }
}