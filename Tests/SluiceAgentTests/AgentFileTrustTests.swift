import SluiceAgent
import SluicePolicy
import Testing

/// The hostile and mistaken inputs of docs/admin.md's table, written into the agent's own
/// YAML instead of admin API bodies: the file goes through the same documents, compiler
/// and reference check, so each is refused naming its path, and nothing here starts an
/// agent that serves more than the file says.
@Suite("Agent YAML trust: the admin API's hostile cases, refused the same way")
struct AgentFileTrustTests {
    struct Case: Sendable, CustomStringConvertible {
        /// Extra `model_list` entries (YAML flow mappings).
        var models: [String] = []
        /// Lines under `sluice_policy:` (indented two spaces), or a whole top-level section.
        var policy: String
        var topLevel = ""
        var accepted = false
        /// Text the refusal must contain.
        var says: String?

        var description: String { "models \(models), policy \(policy) \(topLevel)" }
    }

    static let pepper = "pepper-0123456789-abcdef"
    static let hash = KeyHasher(pepper: Secret(pepper)).hash("sk-sluice-one").encoded
    static let otherHash = KeyHasher(pepper: Secret(pepper)).hash("sk-sluice-two").encoded

    static func team(_ name: String, _ body: String = "{}") -> String { "  teams: {\"\(name)\": \(body)}" }
    static func service(_ name: String, _ body: String = "{}") -> String { "  services: {\"\(name)\": \(body)}" }
    static func key(_ fields: String, hash: String = Self.hash) -> String {
        "  teams: {ml: {}}\n  projects: {web: {team: ml}}\n  keys:\n    - {hash: \"\(hash)\", \(fields)}"
    }
    static func model(_ alias: String, _ params: String, info: String = "") -> String {
        "{model_name: \"\(alias)\", litellm_params: {\(params)}\(info.isEmpty ? "" : ", model_info: {\(info)}")}"
    }

    static let cases: [Case] = [
        Case(policy: team("ml"), accepted: true),
        // Teams: names, unknown fields, limits, references, filters.
        Case(policy: team("ns/"), says: "[a-z0-9][a-z0-9._-]{0,62}"),
        Case(policy: team("/svc"), says: #"teams."/svc".name"#),
        Case(policy: team("a/b"), says: "must match"),
        Case(policy: team("../x"), says: "must match"),
        Case(policy: team("sp ace"), says: "must match"),
        Case(policy: team("q?x"), says: "must match"),
        Case(policy: team("Marketing"), says: "must match"),
        Case(policy: team("-lead"), says: "must match"),
        Case(policy: team("{{7*7}}"), says: "must match"),
        Case(policy: team(String(repeating: "a", count: 64)), says: "must match"),
        Case(policy: team(String(repeating: "a", count: 63)), accepted: true),
        Case(policy: team("ml", "{limitz: {requests_per_minute: 5}}"), says: #"did you mean "limits"?"#),
        Case(policy: team("ml", "{limits: {requests_per_dya: 5}}"), says: #"did you mean "requests_per_day"?"#),
        Case(policy: team("ml", "{allowed_model: [gpt4_limited]}"), says: #"did you mean "allowed_models"?"#),
        Case(
            policy: team("ml", "{limits: {requests_per_minute: 0}}"),
            says: "limits.requests_per_minute must be a whole number from 1"),
        Case(
            policy: team("ml", "{limits: {requests_per_minute: 1.5}}"),
            says: "requests_per_minute must be a whole number"),
        Case(
            policy: team("ml", "{limits: {tokens_per_minute: 1e30}}"),
            says: "tokens_per_minute must be a whole number"),
        Case(policy: team("ml", "{limits: {requests_per_minute: 9223372036854775807}}"), says: "requests_per_minute"),
        Case(policy: team("ml", "{limits: {daily_spend_usd: -1}}"), says: "daily_spend_usd"),
        Case(policy: team("ml", "{allowed_models: [gpt4_limted]}"), says: #"did you mean "gpt4_limited"?"#),
        Case(policy: team("ml", "{denied_models: [gpt-4]}"), says: "denied_models"),
        Case(policy: team("ml", "{prompt_filters: [{name: ssn, pattern: '('}]}"), says: "prompt_filters"),
        Case(policy: team("ml", "{prompt_filters: [{name: Bad Name, pattern: x}]}"), says: "prompt_filters[0].name"),
        Case(policy: team("ml", "{prompt_filters: [{name: ssn, patern: x}]}"), says: #"did you mean "pattern"?"#),
        // Projects.
        Case(policy: "  projects: {web: {team: nobody}}", says: #"team: team "nobody" does not exist"#),
        Case(policy: "  teams: {ml: {}}\n  projects: {Web: {team: ml}}", says: "must match"),
        Case(policy: "  teams: {ml: {}}\n  projects: {web: {}}", says: "team is missing"),
        // Services.
        Case(policy: service("ns/"), says: "namespace/service"),
        Case(policy: service("/svc"), says: "namespace/service"),
        Case(policy: service("a/b/c"), says: "namespace/service"),
        Case(policy: service("Shop/checkout"), says: "namespace/service"),
        Case(policy: service("shop/checkout-"), says: "namespace/service"),
        Case(policy: service("shop/checkout", "{keyles: true}"), says: #"did you mean "keyless"?"#),
        Case(policy: service("shop/checkout", "{keyless: maybe}"), says: "keyless must be allowed or denied"),
        Case(policy: service("shop/checkout", "{limits: {max_parallel_requests: -1}}"), says: "max_parallel_requests"),
        Case(policy: service("shop/checkout", "{keyless: allowed}"), accepted: true),
        // Models: provider-specific names that go into URL paths, endpoints, credentials.
        Case(
            models: [model("az", #"model: "azure/../../v1/files", api_base: "https://x.openai.azure.com""#)],
            policy: "",
            says: "deployment name"),
        Case(models: [model("gem", #"model: "gemini/m?x=1""#)], policy: "", says: "Gemini model name"),
        Case(
            models: [model("ftp", #"model: openai/m, api_base: "ftp://host/v1""#)], policy: "",
            says: "model_list[1].litellm_params.api_base"),
        Case(
            models: [model("creds", #"model: openai/m, api_base: "https://user:pw@host/v1""#)], policy: "",
            says: "api_base"),
        Case(
            models: [model("query", #"model: openai/m, api_base: "https://host/v1?x=1""#)], policy: "", says: "api_base"
        ),
        Case(
            models: [model("w", "model: openai/m, weight: 0")], policy: "",
            says: "model_list[1].litellm_params.weight"),
        Case(models: [model("w", "model: openai/m, weight: heavy")], policy: "", says: "weight must be a whole number"),
        Case(models: [model("t", "model: openai/m, timeout: -1")], policy: "", says: "timeout_seconds"),
        Case(
            models: [model("p", "model: openai/m", info: "input_cost_per_token: -1")], policy: "",
            says: #"model_list entry "p""#),
        Case(
            models: [model("m", "model: openai/m", info: "max_output_tokens: 0")], policy: "", says: "max_output_tokens"
        ),
        Case(
            models: [model("c", "model: openai/m, api_key: os.environ/../etc/passwd")], policy: "",
            says: "credential_ref"),
        Case(models: [model("s", "model: openai/m, ssl_verify: false")], policy: "", says: "ssl_verify"),
        Case(models: [model("a b", "model: openai/m")], policy: "", says: "alias"),
        Case(models: [model("../x", "model: openai/m")], policy: "", says: "alias"),
        // Keys: ids that must stay addressable, references, metadata, unknown fields.
        Case(policy: key("id: a/b, team: ml"), says: #"keys."a/b".id"#),
        Case(policy: key("id: ../x, team: ml"), says: "must match"),
        Case(policy: key("id: sp ace, team: ml"), says: "must match"),
        Case(policy: key("id: q?x, team: ml"), says: "must match"),
        Case(policy: key("id: k1, team: nobody"), says: #"team: team "nobody" does not exist"#),
        Case(
            policy: key("id: k1, team: ml, project: nope"), says: #"keys."k1".project: project "nope" does not exist"#),
        Case(policy: key("id: k1, team: ml, allowed_models: [gpt4_limted]"), says: #"did you mean "gpt4_limited"?"#),
        Case(policy: key("id: k1, team: ml, metadata: {Bad Key: x}"), says: "metadata"),
        Case(policy: key(#"id: k1, team: ml, metadata: {owner: "a\nb"}"#), says: "metadata"),
        Case(policy: key("id: k1, team: ml, rpm: 5"), says: #""rpm" is unknown"#),
        Case(policy: key("id: k1, team: ml, limits: {requests_per_minute: 10000000000}"), says: "requests_per_minute"),
        Case(policy: key("id: k1, team: ml", hash: "sha1:abc"), says: "hash must be hmac-sha256"),
        Case(policy: key("id: k1, team: ml, expires_at: 2027-02-30"), says: "expires_at"),
        Case(
            policy: key("id: k1, team: ml") + "\n    - {id: k1, team: ml, hash: \"\(otherHash)\"}",
            says: "appears twice"),
        Case(
            policy: key("id: k1, team: ml") + "\n    - {id: k2, team: ml, hash: \"\(hash)\"}",
            says: "also another key's"),
        Case(policy: "  keys:\n    - {id: k1, team: ml}", says: "hash is missing"),
        Case(
            policy: key("id: k1, team: ml, project: web, allowed_models: [gpt4_limited], metadata: {owner: alice}"),
            accepted: true),
        // Settings.
        Case(policy: "  time_zone: Mars/Olympus_Mons", says: "sluice_policy.time_zone"),
        Case(policy: "  time_zone: Etc/../../etc/passwd", says: "sluice_policy.time_zone"),
        Case(policy: "  time_zon: UTC", says: #"did you mean "time_zone"?"#),
        Case(policy: "  unpriced_models: maybe", says: "unpriced_models"),
        Case(policy: "  only_allow_models: [ghost]", says: "only_allow_models"),
        Case(policy: "  default_max_output_tokens: 0", says: "default_max_output_tokens"),
        Case(policy: "  rate_limits: {ml: 5/week}", says: "unknown period"),
        Case(policy: "  rate_limits: {\"team:ghost\": 5}", says: "no team"),
        Case(policy: "  models: {ghost: {limits: {requests_per_minute: 5}}}", says: "not an alias in model_list"),
        Case(
            policy: "", topLevel: "router_settings: {fallbacks: [{gpt4_limited: [ghost]}]}",
            says: "router_settings.fallbacks"),
        Case(policy: "", topLevel: "router_settings: {num_retries: 99}", says: "router_settings.num_retries"),
        Case(policy: "", topLevel: "sluice_polcy: {}", says: #"did you mean "sluice_policy"?"#),
        Case(
            policy:
                "  time_zone: Europe/Berlin\n  only_allow_models: [gpt4_limited]\n  rate_limits: {default: 1000/day}",
            accepted: true),
    ]

    static func yaml(_ entry: Case) -> String {
        let models = ([model("gpt4_limited", "model: openai/gpt-4o, api_key: sk-test")] + entry.models)
            .map { "  - \($0)" }.joined(separator: "\n")
        return """
            model_list:
            \(models)
            \(entry.topLevel)
            sluice_policy:
              key_pepper: \(pepper)
            \(entry.policy)

            """
    }

    @Test("each hostile entry is refused naming its path; the accepted ones load with nothing left out")
    func hostileEntries() {
        #expect(Self.cases.count >= 50)
        for entry in Self.cases {
            do {
                let configuration = try ConfigLoader(environment: [:]).load(yaml: Self.yaml(entry))
                #expect(entry.accepted, "\(entry) loaded")
                #expect(
                    !configuration.warnings.contains { $0.hasPrefix("disabled") }, "\(entry): \(configuration.warnings)"
                )
            } catch {
                #expect(!entry.accepted, "\(entry): \(error.message)")
                if let says = entry.says { #expect(error.message.contains(says), "\(entry): \(error.message)") }
                #expect(!error.message.contains(Self.pepper) && !error.message.contains("sk-test"), "\(error.message)")
            }
        }
    }
}
