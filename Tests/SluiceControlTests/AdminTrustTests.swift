import Foundation
import SluicePolicy
import SluiceTestSupport
import SluiceWire
import Testing

/// Hostile and mistaken admin input against a real control plane on 127.0.0.1: every write
/// is either refused with a 4xx naming the field, or compiles in an agent. The table is the
/// one in docs/admin.md.
@Suite("Admin trust: strict input, one compiler, addressable ids")
struct AdminTrustTests {
    /// One admin write and whether it must be accepted.
    struct Case: Sendable, CustomStringConvertible {
        var method = "POST"
        var path: String
        var body: String
        var accepted: Bool
        /// Text the refusal must contain (the field path, a hint).
        var says: String?

        var description: String { "\(method) \(path) \(body)" }
    }

    static let deployment = #"{"api_base":"https://api.openai.com/v1","upstream_model":"gpt-4o"}"#
    static func model(_ alias: String, _ deployment: String = Self.deployment, extra: String = "") -> String {
        #"{"alias":"\#(alias)","deployments":[\#(deployment)]\#(extra)}"#
    }
    static func team(_ name: String, extra: String = "") -> String { #"{"name":"\#(name)"\#(extra)}"# }

    static let cases: [Case] = [
        Case(path: "/v1/admin/models", body: model("gpt4_limited"), accepted: true),
        Case(path: "/v1/admin/models", body: model("openai/gpt-4o"), accepted: true),
        // Teams: names, unknown fields, limits, references, filters.
        Case(path: "/v1/admin/teams", body: team("ns/"), accepted: false, says: "[a-z0-9][a-z0-9._-]{0,62}"),
        Case(path: "/v1/admin/teams", body: team("/svc"), accepted: false, says: "name"),
        Case(path: "/v1/admin/teams", body: team(""), accepted: false, says: "name"),
        Case(path: "/v1/admin/teams", body: team("a/b"), accepted: false, says: "name"),
        Case(path: "/v1/admin/teams", body: team("../x"), accepted: false, says: "name"),
        Case(path: "/v1/admin/teams", body: team("sp ace"), accepted: false, says: "name"),
        Case(path: "/v1/admin/teams", body: team("q?x"), accepted: false, says: "name"),
        Case(path: "/v1/admin/teams", body: team("Marketing"), accepted: false, says: "name"),
        Case(path: "/v1/admin/teams", body: team("-lead"), accepted: false, says: "name"),
        Case(path: "/v1/admin/teams", body: team("{{7*7}}"), accepted: false, says: "name"),
        Case(path: "/v1/admin/teams", body: team("a\\nb"), accepted: false, says: "name"),
        Case(path: "/v1/admin/teams", body: team(String(repeating: "a", count: 64)), accepted: false, says: "name"),
        Case(path: "/v1/admin/teams", body: team(String(repeating: "a", count: 63)), accepted: true),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","limitz":{"requests_per_minute":5}"#), accepted: false,
            says: #"limitz: unknown field; did you mean "limits"?"#),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","limits":{"requests_per_dya":5}"#), accepted: false,
            says: #"limits.requests_per_dya: unknown field; did you mean "requests_per_day"?"#),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","allowed_model":["gpt"]"#), accepted: false,
            says: #"did you mean "allowed_models"?"#),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","limits":{"requests_per_minute":0}"#), accepted: false,
            says: "requests_per_minute"),
        // Foundation calls a fraction where a whole number belongs "not valid JSON", with no path.
        Case(
            path: "/v1/admin/teams",
            body: team("ml", extra: #","limits":{"daily_spend_usd":0.5,"requests_per_minute":1.5}"#),
            accepted: false, says: "limits.requests_per_minute: expected a whole number"),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","limits":{"tokens_per_minute":1e30}"#), accepted: false,
            says: "limits.tokens_per_minute: expected a whole number"),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","limits":{"requests_per_minute":9223372036854775807}"#),
            accepted: false,
            says: "requests_per_minute"),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","limits":{"daily_spend_usd":-1}"#), accepted: false,
            says: "daily_spend_usd"),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","limits":{"tokens_per_minute":1.5}"#), accepted: false,
            says: nil),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","allowed_models":["gpt4_limted"]"#), accepted: false,
            says: #"did you mean "gpt4_limited"?"#),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","denied_models":["gpt-4"]"#), accepted: false,
            says: "denied_models"),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","prompt_filters":[{"name":"ssn","pattern":"("}]"#),
            accepted: false,
            says: "prompt_filters"),
        Case(
            path: "/v1/admin/teams", body: team("ml", extra: #","prompt_filters":[{"name":"Bad Name","pattern":"x"}]"#),
            accepted: false,
            says: "prompt_filters[0].name"),
        Case(path: "/v1/admin/teams", body: team("ml", extra: #","allowed_models":["gpt4_limited"]"#), accepted: true),
        Case(path: "/v1/admin/teams", body: team("ml"), accepted: false, says: "already exists"),
        // Projects.
        Case(
            path: "/v1/admin/projects", body: #"{"name":"web","team":"nobody"}"#, accepted: false,
            says: "sluice teams create nobody"),
        Case(path: "/v1/admin/projects", body: #"{"name":"Web","team":"ml"}"#, accepted: false, says: "name"),
        Case(path: "/v1/admin/projects", body: #"{"name":"web","team":"ml"}"#, accepted: true),
        // Services.
        Case(path: "/v1/admin/services", body: #"{"name":"ns/"}"#, accepted: false, says: "namespace/service"),
        Case(path: "/v1/admin/services", body: #"{"name":"/svc"}"#, accepted: false, says: "namespace/service"),
        Case(path: "/v1/admin/services", body: #"{"name":"a/b/c"}"#, accepted: false, says: "namespace/service"),
        Case(
            path: "/v1/admin/services", body: #"{"name":"Shop/checkout"}"#, accepted: false, says: "namespace/service"),
        Case(
            path: "/v1/admin/services", body: #"{"name":"shop/checkout-"}"#, accepted: false,
            says: "namespace/service"),
        Case(
            path: "/v1/admin/services", body: #"{"name":"shop/checkout","keyles":true}"#, accepted: false,
            says: #"did you mean "keyless"?"#),
        Case(
            path: "/v1/admin/services", body: #"{"name":"shop/checkout","limits":{"max_parallel_requests":-1}}"#,
            accepted: false,
            says: "max_parallel_requests"),
        Case(path: "/v1/admin/services", body: #"{"name":"shop/checkout","keyless":true}"#, accepted: true),
        Case(path: "/v1/admin/services", body: #"{"name":"*"}"#, accepted: true),
        // Models: provider-specific names that go into URL paths, endpoints, credentials.
        Case(
            path: "/v1/admin/models",
            body: model(
                "az", #"{"provider":"azure","api_base":"https://x.openai.azure.com","upstream_model":"../../v1/files"}"#
            ),
            accepted: false, says: "upstream_model"),
        Case(
            path: "/v1/admin/models",
            body: model(
                "gem", #"{"provider":"gemini","api_base":"https://g.example/v1beta","upstream_model":"m?x=1"}"#),
            accepted: false, says: "upstream_model"),
        Case(
            path: "/v1/admin/models", body: model("ftp", #"{"api_base":"ftp://host/v1","upstream_model":"m"}"#),
            accepted: false, says: "api_base"),
        Case(
            path: "/v1/admin/models",
            body: model("creds", #"{"api_base":"https://user:pw@host/v1","upstream_model":"m"}"#), accepted: false,
            says: "api_base"),
        Case(
            path: "/v1/admin/models", body: model("query", #"{"api_base":"https://host/v1?x=1","upstream_model":"m"}"#),
            accepted: false,
            says: "api_base"),
        Case(
            path: "/v1/admin/models",
            body: model("bed", #"{"provider":"bedrock","api_base":"https://h/v1","upstream_model":"m"}"#),
            accepted: false,
            says: "provider"),
        Case(
            path: "/v1/admin/models",
            body: model("typo", #"{"provider":"anthropc","api_base":"https://h/v1","upstream_model":"m"}"#),
            accepted: false, says: #"did you mean "anthropic"?"#),
        Case(path: "/v1/admin/models", body: model("a b"), accepted: false, says: "alias"),
        Case(path: "/v1/admin/models", body: model("a//b"), accepted: false, says: "alias"),
        Case(path: "/v1/admin/models", body: model("../x"), accepted: false, says: "alias"),
        Case(
            path: "/v1/admin/models", body: model("w", #"{"api_base":"https://h/v1","upstream_model":"m","weight":0}"#),
            accepted: false,
            says: "weight"),
        Case(
            path: "/v1/admin/models", body: model("p", extra: #","input_cost_per_token":-1"#), accepted: false,
            says: "p"),
        Case(
            path: "/v1/admin/models",
            body: model("pm", extra: #","input_cost_per_token":0.000003,"cache_read_input_token_cost":0.3"#),
            accepted: false, says: "cache_read_input_token_cost is 0.3 USD per token"),
        Case(
            path: "/v1/admin/models", body: model("alone", extra: #","cache_creation_input_token_cost":0.000001"#),
            accepted: false, says: "cache_creation_input_token_cost needs input_cost_per_token"),
        Case(
            path: "/v1/admin/models",
            body: model(
                "cached",
                extra: #","input_cost_per_token":0.000003,"cache_read_input_token_cost":0.0000003,"#
                    + #""cache_creation_input_token_cost":0.00000375,"output_cost_per_reasoning_token":0.00001"#),
            accepted: true),
        Case(
            path: "/v1/admin/models", body: model("t", extra: #","max_output_tokens":0"#), accepted: false,
            says: "max_output_tokens"),
        Case(
            path: "/v1/admin/models", body: #"{"alias":"empty","deployments":[]}"#, accepted: false,
            says: "deployment"),
        Case(
            path: "/v1/admin/models",
            body: model("c", #"{"api_base":"https://h/v1","upstream_model":"m","credential_ref":"../etc/passwd"}"#),
            accepted: false, says: "credential_ref"),
        Case(
            path: "/v1/admin/models",
            body: model("k", #"{"api_base":"https://h/v1","upstream_model":"m","api_key":"sk-live"}"#), accepted: false,
            says: "api_key: unknown field"),
        // Keys: ids that must stay addressable, references, metadata, unknown fields.
        Case(path: "/v1/admin/keys", body: #"{"id":"a/b","team":"ml"}"#, accepted: false, says: "id"),
        Case(path: "/v1/admin/keys", body: #"{"id":"../x","team":"ml"}"#, accepted: false, says: "id"),
        Case(path: "/v1/admin/keys", body: #"{"id":"sp ace","team":"ml"}"#, accepted: false, says: "id"),
        Case(path: "/v1/admin/keys", body: #"{"id":"q?x","team":"ml"}"#, accepted: false, says: "id"),
        Case(
            path: "/v1/admin/keys", body: #"{"id":"k1","team":"nobody"}"#, accepted: false,
            says: "sluice teams create nobody"),
        Case(
            path: "/v1/admin/keys", body: #"{"id":"k1","team":"ml","project":"nope"}"#, accepted: false,
            says: "sluice projects create nope --team ml"),
        Case(
            path: "/v1/admin/keys", body: #"{"id":"k1","team":"ml","allowed_models":["gpt4_limted"]}"#, accepted: false,
            says: #"did you mean "gpt4_limited"?"#),
        Case(
            path: "/v1/admin/keys", body: #"{"id":"k1","team":"ml","metadata":{"Bad Key":"x"}}"#, accepted: false,
            says: "metadata"),
        Case(
            path: "/v1/admin/keys", body: #"{"id":"k1","team":"ml","metadata":{"owner":"a\nb"}}"#, accepted: false,
            says: "metadata"),
        Case(
            path: "/v1/admin/keys", body: #"{"id":"k1","team":"ml","rpm":5}"#, accepted: false,
            says: "rpm: unknown field"),
        Case(
            path: "/v1/admin/keys", body: #"{"id":"k1","team":"ml","limits":{"requests_per_minute":10000000000}}"#,
            accepted: false,
            says: "requests_per_minute"),
        Case(
            path: "/v1/admin/keys",
            body: #"{"id":"k1","team":"ml","project":"web","allowed_models":["openai/gpt-4o"]}"#, accepted: true),
        // Settings.
        Case(
            method: "PUT", path: "/v1/admin/settings", body: #"{"time_zone":"Mars/Olympus_Mons"}"#, accepted: false,
            says: "time_zone"),
        Case(
            method: "PUT", path: "/v1/admin/settings", body: #"{"time_zone":"Etc/../../etc/passwd"}"#, accepted: false,
            says: "time_zone"),
        Case(
            method: "PUT", path: "/v1/admin/settings", body: #"{"time_zon":"UTC"}"#, accepted: false,
            says: #"did you mean "time_zone"?"#),
        Case(
            method: "PUT", path: "/v1/admin/settings", body: #"{"unpriced_models":"maybe"}"#, accepted: false,
            says: "unpriced_models"),
        Case(
            method: "PUT", path: "/v1/admin/settings", body: #"{"only_allow_models":["ghost"]}"#, accepted: false,
            says: "only_allow_models"),
        Case(
            method: "PUT", path: "/v1/admin/settings", body: #"{"router":{"fallbacks":{"gpt4_limited":["ghost"]}}}"#,
            accepted: false,
            says: "fallbacks"),
        Case(
            method: "PUT", path: "/v1/admin/settings", body: #"{"lease_seconds":0}"#, accepted: false,
            says: "lease_seconds"),
        Case(
            method: "PUT", path: "/v1/admin/settings", body: #"{"soft_budget_percent":101}"#, accepted: false,
            says: "soft_budget_percent"),
        Case(
            method: "PUT", path: "/v1/admin/settings", body: #"{"budget_webhook_url":"file:///etc/passwd"}"#,
            accepted: false,
            says: "budget_webhook_url"),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"time_zone":"Europe/Berlin","only_allow_models":["gpt4_limited","openai/gpt-4o"]}"#,
            accepted: true),
        // Guardrails: a typo in a scope would leave callers unchecked, so references must exist.
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"guardrails":[{"name":"pii","url":"https://g.example/check","scopes":{"teams":["m1"]}}]}"#,
            accepted: false, says: #"scopes.teams: team "m1" does not exist"#),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"guardrails":[{"name":"pii","url":"https://g.example/check","scopes":{"keys":["nokey"]}}]}"#,
            accepted: false, says: "scopes.keys"),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"guardrails":[{"name":"pii","url":"ftp://g.example/check"}]}"#, accepted: false,
            says: #"guardrails."pii".url"#),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"guardrails":[{"name":"pii","url":"https://g.example/check","on_failure":"sometimes"}]}"#,
            accepted: false, says: "on_failure"),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"guardrails":[{"name":"pii","url":"https://g.example/check","timeout_ms":0}]}"#,
            accepted: false, says: "timeout_ms"),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"guardrails":[{"name":"pii","url":"https://g.example/check","sample_percnt":5}]}"#,
            accepted: false, says: #"did you mean "sample_percent"?"#),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"guardrails":[{"name":"Bad Name","url":"https://g.example/check"}]}"#, accepted: false,
            says: "guardrail"),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"guardrails":[{"name":"pii","url":"https://g.example/a"},{"name":"pii","url":"https://g/b"}]}"#,
            accepted: false, says: "appears twice"),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body:
                #"{"guardrails":[{"name":"pii","url":"https://g.example/check","timeout_ms":250,"on_failure":"open","#
                + #""sample_percent":50,"scopes":{"teams":["ml"],"services":["shop/checkout"]},"#
                + #""credential_ref":"PII_GUARD_TOKEN"}]}"#,
            accepted: true),
        // Pass-throughs: only known unmetered endpoints, only for named callers, only to existing aliases.
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"pass_through":[{"name":"f","paths":["/v1/files"],"alias":"gpt4_limited","scopes":{}}]}"#,
            accepted: false, says: "must name the callers"),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"pass_through":[{"name":"f","paths":["/v2/anything"],"alias":"gpt4_limited","#
                + #""scopes":{"teams":["ml"]}}]}"#,
            accepted: false, says: "is not below a provider endpoint"),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"pass_through":[{"name":"f","paths":["/v1/files"],"alias":"gpt4_limted","#
                + #""scopes":{"teams":["ml"]}}]}"#,
            accepted: false, says: #"did you mean "gpt4_limited"?"#),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"pass_through":[{"name":"f","paths":["/v1/files"],"alias":"gpt4_limited","#
                + #""scopes":{"teams":["m1"]}}]}"#,
            accepted: false, says: #"team "m1" does not exist"#),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"pass_through":[{"name":"f","path":["/v1/files"],"alias":"gpt4_limited","#
                + #""scopes":{"teams":["ml"]}}]}"#,
            accepted: false, says: #"did you mean "paths"?"#),
        Case(
            method: "PUT", path: "/v1/admin/settings",
            body: #"{"pass_through":[{"name":"files","paths":["/v1/files","/v1/batches"],"methods":["GET","POST"],"#
                + #""alias":"gpt4_limited","scopes":{"teams":["ml"],"services":["*"]}}]}"#,
            accepted: true),
        // Deletes that would leave a dangling reference.
        Case(method: "DELETE", path: "/v1/admin/models/gpt4_limited", body: "", accepted: false, says: "still used by"),
        Case(method: "DELETE", path: "/v1/admin/teams/ml", body: "", accepted: false, says: "still used by"),
    ]

    @Test("hostile admin writes are refused naming the field; every accepted one compiles in an agent")
    func hostileInputs() async throws {
        #expect(Self.cases.count >= 50)
        try await ControlHarness.with { control in
            let token = try await control.agentToken()
            for entry in Self.cases {
                let response = try await control.request(
                    entry.method, entry.path, json: entry.body.isEmpty ? nil : entry.body)
                if entry.accepted {
                    #expect((200..<300).contains(response.status), "\(entry): \(response.status) \(response.text)")
                } else {
                    #expect((400..<500).contains(response.status), "\(entry): \(response.status) \(response.text)")
                    let error =
                        (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["error"]
                        as? [String: Any]
                    let message = error?["message"] as? String ?? ""
                    if let says = entry.says { #expect(message.contains(says), "\(entry): \(message)") }
                }
                // After every write, the bundle compiles in an agent with nothing disabled.
                let document = try await bundle(control, token: token)
                let compiled = try document.compile(in: Self.agentContext)
                #expect(compiled.disabled.isEmpty, "\(entry): \(compiled.disabled)")
                #expect(document.danglingReferences().isEmpty, "\(entry): \(document.danglingReferences())")
            }
        }
    }

    @Test("every id that can be created can be read, updated, revoked and deleted, percent-encoded where it must be")
    func addressable() async throws {
        try await ControlHarness.with { control in
            let longest = String(repeating: "z", count: 63)
            for name in ["a", "0", "a.b_c-d", longest] {
                #expect(try await control.request("POST", "/v1/admin/teams", json: Self.team(name)).status == 201)
                #expect(try await control.request("GET", "/v1/admin/teams/\(name)").status == 200)
                #expect(
                    try await control.request("PUT", "/v1/admin/teams/\(name)", json: Self.team(name)).status == 200)
                let key = try control.json(
                    try await control.request(
                        "POST", "/v1/admin/keys", json: #"{"id":"k-\#(name.prefix(60))","team":"\#(name)"}"#))
                let id = try #require((key["details"] as? [String: Any])?["id"] as? String)
                #expect(try await control.request("POST", "/v1/admin/keys/\(id)/revoke").status == 200)
                #expect(try await control.request("DELETE", "/v1/admin/keys/\(id)").status == 204)
                #expect(try await control.request("DELETE", "/v1/admin/teams/\(name)").status == 204)
            }
            // The catch-all service * has a one-segment address, plain or encoded.
            #expect(
                try await control.request("POST", "/v1/admin/services", json: #"{"name":"*","keyless":true}"#).status
                    == 201
            )
            #expect(try await control.request("GET", "/v1/admin/services/%2A").status == 200)
            #expect(
                try await control.request("PATCH", "/v1/admin/services/*", json: #"{"keyless":false}"#).status == 200)
            #expect(try await control.request("GET", "/v1/admin/services/nope").status == 404)
            #expect(try await control.request("DELETE", "/v1/admin/services/%2A").status == 204)
            // An alias with a / is one percent-encoded path segment.
            for alias in ["openai/gpt-4o", "a:b@c+d", "x/y/z"] {
                #expect(try await control.request("POST", "/v1/admin/models", json: Self.model(alias)).status == 201)
                let segment = alias.replacingOccurrences(of: "/", with: "%2F").replacingOccurrences(
                    of: "@", with: "%40"
                )
                .replacingOccurrences(of: "+", with: "%2B").replacingOccurrences(of: ":", with: "%3A")
                #expect(
                    try control.json(try await control.request("GET", "/v1/admin/models/\(segment)"))["alias"]
                        as? String
                        == alias)
                #expect(
                    try await control.request("PUT", "/v1/admin/models/\(segment)", json: Self.model(alias)).status
                        == 200)
                #expect(try await control.request("DELETE", "/v1/admin/models/\(segment)").status == 204)
            }
        }
    }

    @Test("PATCH changes only the fields given: metadata merges, null clears, limits change one by one")
    func patch() async throws {
        try await ControlHarness.with { control in
            _ = try await control.request("POST", "/v1/admin/models", json: Self.model("gpt"))
            _ = try await control.request("POST", "/v1/admin/teams", json: Self.team("ml"))
            _ = try await control.request(
                "POST", "/v1/admin/keys",
                json: """
                    {"id":"ci","team":"ml","allowed_models":["gpt"],"metadata":{"owner":"alice","env":"prod"},
                     "limits":{"requests_per_minute":60,"monthly_spend_usd":200},"expires_at":4102444800}
                    """)
            func key() async throws -> [String: Any] {
                try control.json(try await control.request("GET", "/v1/admin/keys/ci"))
            }
            #expect(
                try await control.request(
                    "PATCH", "/v1/admin/keys/ci", json: #"{"metadata":{"env":"staging","cost":"42"}}"#
                ).status == 200)
            #expect(
                try await key()["metadata"] as? [String: String] == ["owner": "alice", "env": "staging", "cost": "42"])
            #expect(
                try await control.request("PATCH", "/v1/admin/keys/ci", json: #"{"metadata":{"cost":null}}"#).status
                    == 200)
            #expect(try await key()["metadata"] as? [String: String] == ["owner": "alice", "env": "staging"])
            #expect(
                try await control.request(
                    "PATCH", "/v1/admin/keys/ci",
                    json: #"{"limits":{"requests_per_minute":null,"tokens_per_minute":500}}"#
                )
                .status == 200)
            let limits = try #require(try await key()["limits"] as? [String: Any])
            #expect(
                limits["requests_per_minute"] == nil && limits["tokens_per_minute"] as? Int == 500
                    && limits["monthly_spend_usd"] as? Double == 200)
            #expect(try await key()["allowed_models"] as? [String] == ["gpt"])
            #expect(
                try await control.request(
                    "PATCH", "/v1/admin/keys/ci", json: #"{"allowed_models":null,"expires_at":null}"#
                )
                .status == 200)
            let cleared = try await key()
            #expect(
                cleared["allowed_models"] == nil && cleared["expires_at"] == nil
                    && cleared["metadata"] as? [String: String] != nil)
            let unknown = try await control.request(
                "PATCH", "/v1/admin/keys/ci", json: #"{"limit":{"requests_per_minute":1}}"#)
            #expect(unknown.status == 400 && unknown.text.contains(#"did you mean \"limits\"?"#))
        }
    }

    @Test("PATCH on teams, projects, services, models and settings is a merge patch, checked like a replacement")
    func mergePatch() async throws {
        try await ControlHarness.with { control in
            _ = try await control.request(
                "POST", "/v1/admin/models", json: Self.model("gpt", extra: #","input_cost_per_token":0.000001"#))
            _ = try await control.request("POST", "/v1/admin/models", json: Self.model("claude"))
            _ = try await control.request(
                "POST", "/v1/admin/teams",
                json: Self.team(
                    "ml",
                    extra: """
                        ,"allowed_models":["gpt","claude"],"limits":{"requests_per_minute":5,"daily_spend_usd":10}
                        """))
            func get(_ path: String) async throws -> [String: Any] {
                try control.json(try await control.request("GET", path))
            }

            // The issue's own case: one budget changes, the allowlist and other limits stay.
            #expect(
                try await control.request("PATCH", "/v1/admin/teams/ml", json: #"{"limits":{"monthly_spend_usd":100}}"#)
                    .status == 200)
            var team = try await get("/v1/admin/teams/ml")
            #expect(team["allowed_models"] as? [String] == ["gpt", "claude"])
            #expect(
                team["limits"] as? [String: Double] == [
                    "requests_per_minute": 5, "daily_spend_usd": 10, "monthly_spend_usd": 100,
                ])
            #expect(
                try await control.request(
                    "PATCH", "/v1/admin/teams/ml",
                    json: #"{"allowed_models":null,"limits":{"requests_per_minute":null}}"#
                )
                .status == 200)
            team = try await get("/v1/admin/teams/ml")
            #expect(team["allowed_models"] == nil && (team["limits"] as? [String: Any])?["requests_per_minute"] == nil)

            // Refused like a replacement: unknown fields, dangling references, renames, bad values.
            let typo = try await control.request(
                "PATCH", "/v1/admin/teams/ml", json: #"{"limits":{"requests_per_dya":1}}"#)
            #expect(
                typo.status == 400 && typo.text.contains("requests_per_dya") && typo.text.contains("requests_per_day"))
            let dangling = try await control.request(
                "PATCH", "/v1/admin/teams/ml", json: #"{"denied_models":["ghost"]}"#)
            #expect(dangling.status == 400 && dangling.text.contains("ghost"))
            let rename = try await control.request("PATCH", "/v1/admin/teams/ml", json: #"{"name":"ops"}"#)
            #expect(rename.status == 400 && rename.text.contains("name_mismatch"))
            #expect(try await control.request("PATCH", "/v1/admin/teams/ml", json: "[1]").status == 400)
            #expect(try await control.request("PATCH", "/v1/admin/teams/nobody", json: "{}").status == 404)

            _ = try await control.request(
                "POST", "/v1/admin/projects", json: #"{"name":"web","team":"ml","allowed_models":["gpt"]}"#)
            #expect(
                try await control.request(
                    "PATCH", "/v1/admin/projects/web", json: #"{"limits":{"requests_per_minute":3}}"#
                )
                .status == 200)
            #expect(try await get("/v1/admin/projects/web")["allowed_models"] as? [String] == ["gpt"])
            #expect(
                try await control.request("PATCH", "/v1/admin/projects/web", json: #"{"team":"ghost"}"#).status == 400)

            _ = try await control.request(
                "POST", "/v1/admin/services",
                json: #"{"name":"shop/checkout","keyless":true,"limits":{"requests_per_minute":9}}"#)
            #expect(
                try await control.request(
                    "PATCH", "/v1/admin/services/shop/checkout", json: #"{"allowed_models":["gpt"]}"#
                )
                .status == 200)
            let service = try await get("/v1/admin/services/shop/checkout")
            #expect(
                service["keyless"] as? Bool == true
                    && (service["limits"] as? [String: Int])?["requests_per_minute"] == 9)

            #expect(
                try await control.request("PATCH", "/v1/admin/models/gpt", json: #"{"output_cost_per_token":0.000002}"#)
                    .status == 200)
            let model = try await get("/v1/admin/models/gpt")
            #expect(
                model["input_cost_per_token"] as? Double == 0.000001
                    && model["output_cost_per_token"] as? Double == 0.000002)
            #expect((model["deployments"] as? [Any])?.count == 1)

            #expect(
                try await control.request("PATCH", "/v1/admin/settings", json: #"{"time_zone":"Europe/Berlin"}"#).status
                    == 200)
            #expect(
                try await control.request("PATCH", "/v1/admin/settings", json: #"{"soft_budget_percent":80}"#).status
                    == 200
            )
            let settings = try await get("/v1/admin/settings")
            #expect(
                settings["time_zone"] as? String == "Europe/Berlin" && settings["soft_budget_percent"] as? Int == 80)
            let badZone = try await control.request(
                "PATCH", "/v1/admin/settings", json: #"{"time_zone":"Etc/../../etc/passwd"}"#)
            #expect(badZone.status == 400 && badZone.text.contains("time_zone"))
        }
    }

    @Test("every admin change is in the audit trail with who, what and which entity, and never a secret")
    func auditTrail() async throws {
        try await ControlHarness.with { control in
            let alice = [("Sluice-Actor", "alice@laptop")]
            _ = try await control.request("POST", "/v1/admin/models", json: Self.model("gpt"), headers: alice)
            _ = try await control.request("POST", "/v1/admin/teams", json: Self.team("ml"), headers: alice)
            let created = try control.json(
                try await control.request("POST", "/v1/admin/keys", json: #"{"id":"ci","team":"ml"}"#, headers: alice))
            let secret = try #require(created["key"] as? String)
            let rotated = try control.json(try await control.request("POST", "/v1/admin/keys/ci/rotate", json: "{}"))
            let newSecret = try #require(rotated["key"] as? String)
            _ = try await control.request(
                "PATCH", "/v1/admin/keys/ci", json: #"{"metadata":{"owner":"bob"},"limits":{"requests_per_minute":5}}"#,
                headers: [("Sluice-Actor", "bad actor; rm -rf")])
            _ = try await control.request(
                "PATCH", "/v1/admin/settings", json: #"{"budget_webhook_url":"https://hooks.example/t0ps3cret"}"#)
            _ = try await control.request("POST", "/v1/admin/keys/ci/revoke")
            // A refused write is not a change.
            #expect(try await control.request("POST", "/v1/admin/teams", json: Self.team("Bad Name")).status == 400)

            let response = try await control.request("GET", "/v1/admin/audit?since=1h")
            let changes = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]])
            let summary = changes.map {
                "\($0["actor"]!) \($0["action"]!) \($0["kind"]!) \($0["name"]!) \(($0["fields"] as? [String])!)"
            }
            #expect(
                summary == [
                    "alice@laptop create model gpt []", "alice@laptop create team ml []",
                    "alice@laptop create key ci []",
                    "admin rotate key ci []", "admin patch key ci [\"limits\", \"metadata\"]",
                    "admin patch settings settings [\"budget_webhook_url\"]", "admin revoke key ci []",
                ])
            #expect(
                !response.text.contains(secret) && !response.text.contains(newSecret)
                    && !response.text.contains("t0ps3cret")
                    && !response.text.contains("bob") && !response.text.contains("hmac"))
            #expect(try await control.request("GET", "/v1/admin/audit?since=yesterday").status == 400)
            #expect(try await control.request("GET", "/v1/admin/audit?since=2026-02-30").status == 400)
            #expect(try await control.request("GET", "/v1/admin/audit?since=2020-01-01").status == 200)
        }
    }

    @Test("a key with a team and project that do not exist is created in one call only when asked")
    func createMissing() async throws {
        try await ControlHarness.with { control in
            let body = #"{"team":"marketing","project":"website-ai-assistant","metadata":{"owner":"marketing-team"}"#
            let refused = try await control.request("POST", "/v1/admin/keys", json: body + "}")
            #expect(refused.status == 400 && refused.text.contains("sluice teams create marketing"))
            #expect(try await control.request("GET", "/v1/admin/teams/marketing").status == 404)
            #expect(
                try await control.request("POST", "/v1/admin/keys", json: body + #","create_missing":true}"#).status
                    == 201)
            #expect(try await control.request("GET", "/v1/admin/teams/marketing").status == 200)
            let project = try control.json(try await control.request("GET", "/v1/admin/projects/website-ai-assistant"))
            #expect(project["team"] as? String == "marketing")
            // A bad key id creates nothing on the way to being refused.
            let bad = try await control.request(
                "POST", "/v1/admin/keys", json: #"{"id":"a/b","team":"sales","create_missing":true}"#)
            let sales = try await control.request("GET", "/v1/admin/teams/sales")
            #expect(bad.status == 400 && sales.status == 404)
        }
    }

    @Test("usage batches are bounded per field")
    func usageBounds() throws {
        let huge = UsageBatch(
            agentID: "a", epoch: "e", sequence: 1,
            deltas: [
                UsageDelta(hour: 3600, service: "s/s", model: "m", requests: Int64.max - 1)
            ])
        #expect(throws: WireError.self) { try huge.validate() }
        let costly = UsageBatch(
            agentID: "a", epoch: "e", sequence: 1,
            deltas: [
                UsageDelta(
                    hour: 3600, service: "s/s", model: "m", requests: 1, costPicoUSD: UsageDelta.maxCostPicoUSD + 1)
            ])
        #expect(throws: WireError.self) { try costly.validate() }
        let fine = UsageBatch(
            agentID: "a", epoch: "e", sequence: 1,
            deltas: [
                UsageDelta(
                    hour: 3600, service: "s/s", model: "m", requests: UsageDelta.maxRequests,
                    promptTokens: UsageDelta.maxTokens,
                    costPicoUSD: UsageDelta.maxCostPicoUSD)
            ])
        #expect(throws: Never.self) { try fine.validate() }
    }

    static let agentContext = PolicyDocument.LocalContext(
        keyPepper: ControlHarness.pepper, credential: { _ in nil },
        timeZone: { name in
            try? TimeZoneRules.resolve(name, directory: "/usr/share/zoneinfo") {
                FileManager.default.contents(atPath: $0).map { Array($0) }
            }
        })

    private func bundle(_ control: ControlHarness, token: String) async throws -> PolicyDocument {
        let response = try await control.request("GET", "/v1/agent/policy", token: token)
        let bundle = try WireCoding.decoder.decode(SignedBundle.self, from: Data(response.body))
        return try bundle.verified(with: control.publicKey)
    }
}
