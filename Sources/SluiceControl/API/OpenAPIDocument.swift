import Foundation

/// The OpenAPI 3.1 description of every route `ControlAPI` serves, built from the router's
/// own routes so the two cannot drift.
enum OpenAPIDocument {
    static func json(for routes: [(method: String, path: String)]) -> [UInt8] {
        var paths: [String: [String: Any]] = [:]
        for route in routes {
            paths[route.path, default: [:]][route.method.lowercased()] = operation(route.method, route.path)
        }
        let document: [String: Any] = [
            "openapi": "3.1.0",
            "info": [
                "title": "Sluice control plane", "version": "1",
                "description":
                    "Admin API (admin token) and agent API (per-agent tokens). Keys are returned once,"
                    + " on creation and rotation, and never appear in Sluice's own URLs; LiteLLM's compatible"
                    + " routes (/key, /team, /customer, /manage, /spend, /global) take one where LiteLLM does,"
                    + " hash it on arrival and never log it.",
            ],
            "paths": paths,
            "components": [
                "securitySchemes": [
                    "admin": ["type": "http", "scheme": "bearer", "description": "SLUICE_ADMIN_TOKEN"],
                    "agent": [
                        "type": "http", "scheme": "bearer",
                        "description":
                            "an agent token from POST /v1/admin/agents, or a projected service-account token"
                            + " (with Sluice-Service: <service>) when --agent-identity-config is set",
                    ],
                ],
                "schemas": schemas,
            ],
        ]
        return Array((try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data())
    }

    /// LiteLLM's admin API paths (docs/litellm.md).
    private static func isLiteLLM(_ path: String) -> Bool {
        ["/key/", "/team/", "/customer/", "/manage/", "/spend/", "/global/"].contains { path.hasPrefix($0) }
    }

    private static func operation(_ method: String, _ path: String) -> [String: Any] {
        var operation: [String: Any] = ["operationId": operationID(method, path)]
        if path.hasPrefix("/v1/admin") || isLiteLLM(path) { operation["security"] = [["admin": [String]()]] }
        if path.hasPrefix("/v1/agent") { operation["security"] = [["agent": [String]()]] }
        let parameters = path.split(separator: "/").filter { $0.hasPrefix("{") }.map { segment -> [String: Any] in
            [
                "name": String(segment.dropFirst().dropLast()), "in": "path", "required": true,
                "schema": ["type": "string"],
            ]
        }
        var allParameters = parameters
        if path == "/v1/agent/policy" {
            allParameters.append([
                "name": "wait", "in": "query", "schema": ["type": "integer", "minimum": 0, "maximum": 60],
            ])
            allParameters.append(["name": "If-None-Match", "in": "header", "schema": ["type": "string"]])
        }
        if path == "/v1/admin/usage" {
            for name in ["group_by", "from", "to", "since", "limit"] {
                allParameters.append([
                    "name": name, "in": "query",
                    "schema": ["type": name == "limit" || name == "from" || name == "to" ? "integer" : "string"],
                ])
            }
        }
        if !allParameters.isEmpty { operation["parameters"] = allParameters }
        if let schema = requestSchema(method, path) {
            let content = ["schema": ["$ref": "#/components/schemas/\(schema)"]]
            // Entity and settings patches are JSON Merge Patch; both media types are read the same.
            let types =
                method == "PATCH"
                ? ["application/merge-patch+json": content, "application/json": content] : ["application/json": content]
            operation["requestBody"] = ["required": true, "content": types]
        }
        if method == "PUT" {
            operation["description"] =
                "Replaces the whole entity: a field left out is cleared. Use PATCH to change some fields."
        } else if method == "PATCH" {
            operation["description"] =
                path.hasPrefix("/v1/admin/keys")
                ? "Changes only the fields given; null clears one; metadata merges by key and a null value deletes "
                    + "that key."
                : "JSON Merge Patch (RFC 7396): changes only the fields given; null clears one; objects merge by "
                    + "member."
        }
        var responses: [String: Any] = [
            "default": [
                "description": "error",
                "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]],
            ]
        ]
        let success =
            method == "POST" && !path.hasSuffix("/rotate") && !path.hasSuffix("/revoke") && !path.hasPrefix("/v1/agent")
            ? "201" : (method == "DELETE" ? "204" : "200")
        responses[success] = ["description": "success"]
        if path == "/v1/agent/policy" { responses["304"] = ["description": "not modified"] }
        operation["responses"] = responses
        return operation
    }

    private static func operationID(_ method: String, _ path: String) -> String {
        let words = path.split(separator: "/").filter { !$0.hasPrefix("{") && $0 != "v1" }.map {
            String($0).replacingOccurrences(of: ".", with: "_")
        }
        return method.lowercased() + "_" + words.joined(separator: "_") + (path.hasSuffix("}") ? "_one" : "")
    }

    private static func requestSchema(_ method: String, _ path: String) -> String? {
        guard method != "GET", method != "DELETE" else { return nil }
        if path.hasPrefix("/v1/admin/teams") { return "Team" }
        if path.hasPrefix("/v1/admin/projects") { return "Project" }
        if path.hasPrefix("/v1/admin/services") { return "Service" }
        if path.hasPrefix("/v1/admin/models") { return "Model" }
        if path.hasPrefix("/v1/admin/end-users") { return "EndUser" }
        if path.hasSuffix("/rotate") { return "RotateRequest" }
        if path.hasSuffix("/revoke") { return nil }
        if path.hasPrefix("/v1/admin/keys") { return "KeyRequest" }
        if path == "/v1/admin/settings" { return "Settings" }
        if path == "/v1/admin/agents" { return "AgentRegistration" }
        if path == "/v1/agent/usage" { return "UsageBatch" }
        if path == "/v1/agent/leases" { return "LeaseRequest" }
        return nil
    }

    private static func object(_ properties: [String: Any], required: [String] = []) -> [String: Any] {
        // Every admin body is decoded strictly: a field not listed here is refused with 400.
        var schema: [String: Any] = ["type": "object", "properties": properties, "additionalProperties": false]
        if !required.isEmpty { schema["required"] = required }
        return schema
    }

    private static var string: [String: Any] { ["type": "string"] }
    private static var integer: [String: Any] { ["type": "integer"] }
    private static var number: [String: Any] { ["type": "number"] }
    private static var strings: [String: Any] { ["type": "array", "items": ["type": "string"]] }
    private static var aliasLists: [String: Any] { ["type": "object", "additionalProperties": strings] }
    private static var limits: [String: Any] { ["$ref": "#/components/schemas/Limits"] }

    private static var schemas: [String: Any] {
        [
            "Error": object(["error": object(["message": string, "type": string, "code": string])]),
            "Limits": object([
                "requests_per_minute": integer, "tokens_per_minute": integer, "requests_per_day": integer,
                "max_parallel_requests": integer, "daily_spend_usd": number, "monthly_spend_usd": number,
                "mode": ["type": "string", "enum": ["enforce", "alert"]], "soft_budget_percent": integer,
                "spike": ["$ref": "#/components/schemas/SpikeRule"],
            ]),
            "SpikeRule": object(
                [
                    "metric": ["type": "string", "enum": ["spend", "requests"]], "factor": number,
                    "window_hours": integer, "baseline_hours": integer, "minimum": number,
                ], required: ["metric", "factor"]),
            "PromptFilter": object(["name": string, "pattern": string], required: ["name", "pattern"]),
            "Team": object(
                [
                    "name": string, "allowed_models": strings, "denied_models": strings, "limits": limits,
                    "prompt_filters": ["type": "array", "items": ["$ref": "#/components/schemas/PromptFilter"]],
                ], required: ["name"]),
            "Project": object(
                [
                    "name": string, "team": string, "allowed_models": strings, "denied_models": strings,
                    "limits": limits,
                ],
                required: ["name", "team"]),
            "Service": object(
                [
                    "name": string, "keyless": ["type": "boolean"], "allowed_models": strings, "denied_models": strings,
                    "limits": limits,
                ], required: ["name"]),
            "EndUser": object(["name": string, "limits": limits, "blocked": ["type": "boolean"]], required: ["name"]),
            "Deployment": object(
                [
                    "provider": ["type": "string", "enum": ["openai", "anthropic", "azure", "gemini"]],
                    "api_base": string,
                    "upstream_model": string, "credential_ref": string, "weight": integer, "rpm": integer,
                    "tpm": integer,
                    "api_version": string,
                ], required: ["api_base", "upstream_model"]),
            "Model": object(
                [
                    "alias": string,
                    "deployments": ["type": "array", "items": ["$ref": "#/components/schemas/Deployment"]],
                    "input_cost_per_token": number, "output_cost_per_token": number,
                    "cache_read_input_token_cost": number, "cache_creation_input_token_cost": number,
                    "output_cost_per_reasoning_token": number, "max_output_tokens": integer, "limits": limits,
                    "access_groups": strings,
                ],
                required: ["alias", "deployments"]),
            "KeyRequest": object([
                "id": string, "team": string, "project": string,
                "metadata": ["type": "object", "additionalProperties": string],
                "allowed_models": strings, "denied_models": strings, "limits": limits, "expires_at": integer,
                "create_missing": ["type": "boolean"],
            ]),
            "RotateRequest": object(["grace_period_seconds": integer]),
            "Settings": object([
                "only_allow_models": strings,
                "prompt_filters": ["type": "array", "items": ["$ref": "#/components/schemas/PromptFilter"]],
                "default_limits": limits, "end_user_default_limits": limits, "time_zone": string,
                "unpriced_models": string,
                "default_max_output_tokens": integer, "soft_budget_percent": integer, "budget_webhook_url": string,
                "usage_spool_failure": ["type": "string", "enum": ["allow_in_memory", "fail_closed"]],
                "usage_spool_memory_cap": integer,
                "lease_seconds": integer,
                "lease_fallback": ["type": "string", "enum": ["fraction", "zero", "unlimited"]],
                "lease_fallback_fraction": number, "lease_minimum_share_percent": integer,
                "router": ["$ref": "#/components/schemas/Router"],
                "guardrails": ["type": "array", "items": ["$ref": "#/components/schemas/Guardrail"]],
                "pass_through": ["type": "array", "items": ["$ref": "#/components/schemas/PassThrough"]],
            ]),
            "PassThrough": object(
                [
                    "name": string, "paths": strings,
                    "methods": [
                        "type": "array", "items": ["type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]],
                    ],
                    "alias": string, "scopes": ["$ref": "#/components/schemas/Scopes"],
                ], required: ["name", "paths", "alias", "scopes"]),
            "Scopes": object(["teams": strings, "projects": strings, "keys": strings, "services": strings]),
            "Guardrail": object(
                [
                    "name": string, "url": string, "timeout_ms": integer,
                    "on_failure": ["type": "string", "enum": ["open", "closed"]], "sample_percent": integer,
                    "check_completion": ["type": "string", "enum": ["off", "after", "hold"]],
                    "scopes": ["$ref": "#/components/schemas/Scopes"],
                    "credential_ref": string,
                ], required: ["name", "url"]),
            "Router": object([
                "routing_strategy": ["type": "string", "enum": ["simple-shuffle", "least-busy", "latency-based"]],
                "num_retries": integer, "retry_after": number, "max_retry_backoff": number, "allowed_fails": integer,
                "cooldown_time": number, "fallbacks": aliasLists, "context_window_fallbacks": aliasLists,
                "content_policy_fallbacks": aliasLists,
                "model_group_alias": ["type": "object", "additionalProperties": string],
                "hidden_group_aliases": strings,
            ]),
            "AgentRegistration": object(["id": string, "service": string], required: ["id"]),
            "UsageDelta": object(
                [
                    "hour": integer, "team": string, "project": string, "service": string, "key_id": string,
                    "model": string,
                    "requests": integer, "prompt_tokens": integer, "completion_tokens": integer,
                    "cached_tokens": integer, "cache_creation_tokens": integer, "cost_pico_usd": integer,
                    "denials": ["type": "object", "additionalProperties": integer],
                    "denial_rules": ["type": "object", "additionalProperties": integer],
                ], required: ["hour", "service", "model"]),
            "UsageBatch": object(
                [
                    "agent_id": string, "epoch": string, "sequence": integer,
                    "deltas": ["type": "array", "items": ["$ref": "#/components/schemas/UsageDelta"]],
                    "leases": ["$ref": "#/components/schemas/LeaseRequest"],
                ],
                required: ["agent_id", "epoch", "sequence", "deltas"]),
            "LeaseDemand": object(
                [
                    "scope_kind": string, "scope": string,
                    "limit": [
                        "type": "string",
                        "enum": [
                            "requests_per_minute", "tokens_per_minute", "requests_per_day", "daily_spend",
                            "monthly_spend",
                        ],
                    ],
                    "per_minute": number, "limit_value": integer, "own_spent": integer, "held": integer,
                ],
                required: ["scope_kind", "scope", "limit", "per_minute", "limit_value"]),
            "LeaseRequest": object(
                [
                    "instance": string,
                    "demands": ["type": "array", "items": ["$ref": "#/components/schemas/LeaseDemand"]],
                ],
                required: ["instance", "demands"]),
        ]
    }
}
