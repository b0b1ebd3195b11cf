import Foundation
import SluiceTestSupport
import Testing

/// The real `sluice` binary against a real control plane on 127.0.0.1.
@Suite("sluice CLI")
struct CLITests {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("sluice").path
    }

    /// Runs `sluice` with the control plane's URL and token; returns status and output.
    func sluice(_ arguments: [String], port: Int, token: String = ControlHarness.adminToken) async throws -> (
        status: Int32, output: String
    ) {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let outcome = try await ExternalScript.run(
            Self.binary, arguments: arguments, outputDirectory: directory,
            environment: ["SLUICE_URL": "http://127.0.0.1:\(port)", "SLUICE_ADMIN_TOKEN": token])
        return (outcome.status, outcome.output)
    }

    @Test("create a team and a key as in the docs, import a LiteLLM catalog, apply a policy file idempotently")
    func workflow() async throws {
        try await ControlHarness.with { control in
            let port = control.port
            #expect(
                try await sluice(["teams", "create", "marketing", "--monthly-budget", "500"], port: port).status == 0)
            #expect(
                try await sluice(["projects", "create", "website-ai-assistant", "--team", "marketing"], port: port)
                    .status
                    == 0)
            let litellm = control.directory.file("litellm.yaml")
            try """
            model_list:
              - model_name: gpt4_limited
                litellm_params: {model: openai/gpt-4o, api_key: os.environ/OPENAI_API_KEY, rpm: 100}
                model_info: {input_cost_per_token: 0.0000025, output_cost_per_token: 0.00001}
              - model_name: internal-embeddings
                litellm_params: {model: openai/text-embedding-3-small, api_base: "http://vllm:8000/v1"}
            """.write(toFile: litellm, atomically: true, encoding: .utf8)
            let imported = try await sluice(["models", "import", "-f", litellm], port: port)
            #expect(
                imported.status == 0 && imported.output.contains("+ model gpt4_limited")
                    && imported.output.contains("applied 2 changes"))
            let created = try await sluice(
                [
                    "keys", "create", "--team", "marketing", "--project", "website-ai-assistant",
                    "--models", "gpt4_limited,internal-embeddings", "--rpm", "60", "--tpm", "60000",
                    "--monthly-budget", "200", "--meta", "owner=marketing-team", "--meta", "env=prod",
                ], port: port)
            #expect(
                created.status == 0 && created.output.contains("key: sk-sluice-")
                    && created.output.contains("shown once"))
            let key = try #require(created.output.split(separator: "\n").first { $0.hasPrefix("key: ") }).dropFirst(5)
            let listed = try await sluice(["keys", "list"], port: port)
            #expect(listed.output.contains("owner=marketing-team") && !listed.output.contains(key))
            let asJSON = try await sluice(["keys", "list", "--output", "json"], port: port)
            #expect(asJSON.output.contains(#""monthly_spend_usd" : 200"#))

            let policy = control.directory.file("policy.yaml")
            try """
            teams:
              - name: marketing
                limits: {monthly_spend_usd: 800}
              - name: support
                denied_models: [gpt4_limited]
            services:
              - {name: shop/checkout, keyless: true}
            settings:
              time_zone: Europe/Berlin
            """.write(toFile: policy, atomically: true, encoding: .utf8)
            let dry = try await sluice(["apply", "-f", policy, "--dry-run"], port: port)
            #expect(
                dry.output.contains("~ team marketing: limits") && dry.output.contains("+ team support")
                    && dry.output.contains("dry run"))
            #expect(try await sluice(["teams", "list"], port: port).output.contains("support") == false)
            let applied = try await sluice(["apply", "-f", policy], port: port)
            #expect(applied.status == 0 && applied.output.contains("applied 4 changes"))
            #expect(try await sluice(["apply", "-f", policy], port: port).output.contains("no changes"))

            // Every noun has its verbs.
            #expect(
                try await sluice(["teams", "update", "support", "--deny", "gpt4_limited", "--rpm", "30"], port: port)
                    .output
                    .contains("requests_per_minute=30"))
            #expect(try await sluice(["services", "get", "shop/checkout"], port: port).output.contains("yes"))
            #expect(
                try await sluice(
                    ["models", "create", "local", "--api-base", "http://vllm:8000/v1", "--upstream-model", "llama"],
                    port: port
                ).status == 0)
            #expect(
                try await sluice(["models", "update", "local", "--input-cost", "0.0000001"], port: port).output
                    .contains(
                        "0.0000001"))
            #expect(try await sluice(["models", "get", "local"], port: port).output.contains("llama"))

            // export round-trips: applying what it prints changes nothing.
            let exported = try await sluice(["export"], port: port)
            #expect(
                exported.status == 0 && exported.output.contains("input_cost_per_token: 0.0000025")
                    && !exported.output.contains("sk-sluice"))
            let exportFile = control.directory.file("export.yaml")
            try exported.output.write(toFile: exportFile, atomically: true, encoding: .utf8)
            let replay = try await sluice(["apply", "-f", exportFile, "--dry-run"], port: port)
            #expect(replay.status == 0 && replay.output.contains("no changes"), "\(replay.output)")

            // Errors say what to do.
            let inUse = try await sluice(["teams", "delete", "marketing"], port: port)
            #expect(
                inUse.status == 1 && inUse.output.contains("still used by")
                    && inUse.output.contains("delete or move those first"))
            let badToken = try await sluice(["teams", "list"], port: port, token: "wrong-token-0123456789")
            #expect(badToken.status == 1 && badToken.output.contains("check SLUICE_ADMIN_TOKEN"))

            // An empty file empties every section, in an order references allow.
            let emptyFile = control.directory.file("empty.yaml")
            try "models: []\nteams: []\nprojects: []\nservices: []\n".write(
                toFile: emptyFile, atomically: true, encoding: .utf8)
            #expect(try await sluice(["services", "set", "*"], port: port).status == 0)
            let keys = try await sluice(["keys", "list", "--output", "json"], port: port)
            for line in keys.output.split(separator: "\n") where line.contains(#""id" : "#) {
                let id = line.split(separator: "\"")[3]
                #expect(try await sluice(["keys", "delete", String(id)], port: port).status == 0)
            }
            let emptied = try await sluice(["apply", "-f", emptyFile], port: port)
            #expect(
                emptied.status == 0 && emptied.output.contains("- service *")
                    && emptied.output.contains("- model gpt4_limited"),
                "\(emptied.output)")
            #expect(try await sluice(["models", "list"], port: port).output.contains("(none)"))
        }
    }
    @Test("end users: create with limits, block and unblock, clear a limit; export and apply carry them")
    func endUsers() async throws {
        try await ControlHarness.with { control in
            let port = control.port
            let created = try await sluice(
                ["end-users", "create", "u-123", "--rpm", "5", "--daily-budget", "2"], port: port)
            #expect(created.status == 0 && created.output.contains("requests_per_minute=5"), "\(created.output)")
            let blocked = try await sluice(["end-users", "update", "u-123", "--block", "--clear", "rpm"], port: port)
            #expect(blocked.status == 0 && !blocked.output.contains("requests_per_minute"), "\(blocked.output)")
            let shown = try await sluice(["end-users", "get", "u-123", "--output", "json"], port: port)
            #expect(shown.output.contains(#""blocked" : true"#) && shown.output.contains(#""daily_spend_usd" : 2"#))
            let both = try await sluice(["end-users", "update", "u-123", "--block", "--unblock"], port: port)
            #expect(both.status != 0 && both.output.contains("not both"), "\(both.output)")

            let exported = try await sluice(["export"], port: port)
            #expect(exported.output.contains("end_users:") && exported.output.contains("name: u-123"))
            let exportFile = control.directory.file("export.yaml")
            try exported.output.write(toFile: exportFile, atomically: true, encoding: .utf8)
            let replay = try await sluice(["apply", "-f", exportFile, "--dry-run"], port: port)
            #expect(replay.output.contains("no changes"), "\(replay.output)")

            let policy = control.directory.file("policy.yaml")
            try "end_users:\n  - {name: u-9, limits: {requests_per_minute: 1}}\n".write(
                toFile: policy, atomically: true, encoding: .utf8)
            let applied = try await sluice(["apply", "-f", policy], port: port)
            #expect(
                applied.output.contains("+ end-user u-9") && applied.output.contains("- end-user u-123"),
                "\(applied.output)")
            #expect(try await sluice(["end-users", "list"], port: port).output.contains("u-123") == false)
            let deleted = try await sluice(["end-users", "delete", "u-9"], port: port)
            #expect(deleted.output.contains("deleted end user u-9"))
        }
    }

    @Test("usage by key metadata, with refusals by reason in their own column")
    func usageByMetadata() async throws {
        try await ControlHarness.with { control in
            let port = control.port
            #expect(try await sluice(["teams", "create", "ml"], port: port).status == 0)
            #expect(
                try await sluice(["keys", "create", "--id", "ci", "--team", "ml", "--meta", "owner=ana"], port: port)
                    .status
                    == 0)
            let now = Int(Date().timeIntervalSince1970)
            let batch =
                #"{"agent_id":"agent-1","epoch":"e1","sequence":1,"deltas":[{"hour":\#(now - now % 3600),"team":"ml","#
                + #""service":"a/b","key_id":"ci","model":"m","requests":4,"prompt_tokens":1,"completion_tokens":1,"#
                + #""cost_pico_usd":2500000000000,"denials":{"budget_exceeded":3,"rate_limited":1}}]}"#
            let token = try await control.agentToken("agent-1")
            #expect(try await control.request("POST", "/v1/agent/usage", json: batch, token: token).status == 200)
            let usage = try await sluice(["usage", "--by", "meta.owner", "--since", "1d"], port: port)
            #expect(usage.status == 0, "\(usage.output)")
            let row = usage.output.split(separator: "\n").first { $0.hasPrefix("ana") }.map(String.init) ?? usage.output
            #expect(
                usage.output.contains("DENIED") && row.contains("2.500000")
                    && row.contains("budget_exceeded=3 rate_limited=1"),
                "\(usage.output)")
            #expect(try await sluice(["usage", "--by", "colour"], port: port).status != 0)
        }
    }

    @Test("import never guesses a base URL and only prunes when asked; keys patch, clear and delete")
    func importAndKeyPatches() async throws {
        try await ControlHarness.with { control in
            let port = control.port
            #expect(
                try await sluice(
                    [
                        "models", "create", "kept", "--api-base", "http://vllm:8000/v1",
                        "--upstream-model", "llama",
                    ], port: port
                ).status == 0)
            let litellm = control.directory.file("litellm.yaml")
            try """
            model_list:
              - model_name: claude
                litellm_params: {model: anthropic/claude-sonnet-4-5, api_key: os.environ/ANTHROPIC_API_KEY, timeout: 30}
                model_info: {input_cost_per_token: 0.000003, output_cost_per_token: 0.000015,
                             cache_read_input_token_cost: 0.0000003, cache_creation_input_token_cost: 0.00000375}
              - model_name: bedrock-thing
                litellm_params: {model: bedrock/anthropic.claude-v2}
            """.write(toFile: litellm, atomically: true, encoding: .utf8)
            let imported = try await sluice(["models", "import", "-f", litellm], port: port)
            #expect(imported.status == 0 && imported.output.contains("+ model claude"))
            #expect(!imported.output.contains("- model kept"), "aliases outside the file stay without --prune")
            #expect(
                imported.output.contains("bedrock-thing") && imported.output.contains("timeout"),
                "skipped entries and unsupported fields are named: \(imported.output)")
            let claude = try await sluice(["models", "get", "claude", "--output", "json"], port: port)
            #expect(claude.output.contains("https://api.anthropic.com/v1") && !claude.output.contains("api.openai.com"))
            #expect(
                claude.output.contains(#""cache_read_input_token_cost" : 3e-07"#)
                    && claude.output.contains(#""cache_creation_input_token_cost" : 3.75e-06"#), "\(claude.output)")
            // The CLI's own flags set and clear the same prices.
            let reasoning = try await sluice(
                ["models", "update", "claude", "--reasoning-cost", "0.00002", "--output", "json"], port: port)
            #expect(reasoning.output.contains(#""output_cost_per_reasoning_token" : 2e-05"#), "\(reasoning.output)")
            let uncached = try await sluice(
                ["models", "update", "claude", "--clear", "cache-read-cost", "--output", "json"], port: port)
            #expect(
                uncached.status == 0 && !uncached.output.contains("cache_read_input_token_cost")
                    && uncached.output.contains("cache_creation_input_token_cost"), "\(uncached.output)")

            let redirecting = control.directory.file("redirect.yaml")
            try """
            model_list:
              - model_name: sneaky
                litellm_params: {model: openai/gpt-4o, extra_headers: {Host: evil.example}}
            """.write(toFile: redirecting, atomically: true, encoding: .utf8)
            let refused = try await sluice(["models", "import", "-f", redirecting], port: port)
            #expect(refused.status == 1 && refused.output.contains("extra_headers"))

            let pruneDry = try await sluice(["models", "import", "-f", litellm, "--prune", "--dry-run"], port: port)
            #expect(pruneDry.output.contains("- model kept") && pruneDry.output.contains("dry run"))
            #expect(try await sluice(["models", "get", "kept"], port: port).status == 0)

            // Keys: typos in allowlists are refused with the command that would fix them.
            let typo = try await sluice(["keys", "create", "--team", "ops", "--models", "claude_typo"], port: port)
            #expect(typo.status == 1 && typo.output.contains("sluice teams create"))
            let created = try await sluice(
                [
                    "keys", "create", "--id", "ops-bot", "--team", "ops", "--project", "infra",
                    "--create-missing", "--models", "claude", "--rpm", "60",
                    "--meta", "owner=ops", "--meta", "env=prod",
                ], port: port)
            #expect(created.status == 0, "\(created.output)")
            let patched = try await sluice(
                [
                    "keys", "update", "ops-bot", "--meta", "tier=gold", "--unset-meta", "env",
                    "--clear", "rpm", "--output", "json",
                ], port: port)
            #expect(
                patched.status == 0 && patched.output.contains("owner") && patched.output.contains("tier")
                    && !patched.output.contains("env") && !patched.output.contains("requests_per_minute"),
                "\(patched.output)")
            #expect(patched.output.contains("claude"), "fields not named stay as they were")
            let badClear = try await sluice(["keys", "update", "ops-bot", "--clear", "rmp"], port: port)
            #expect(badClear.status != 0 && badClear.output.contains("rpm"))
            #expect(try await sluice(["keys", "delete", "ops-bot"], port: port).status == 0)
            // An alias holding / and : is one percent-encoded segment, never encoded twice.
            #expect(
                try await sluice(
                    ["models", "create", "openai/gpt-4o:mini", "--upstream-model", "gpt-4o-mini"], port: port
                )
                .status == 0)
            #expect(
                try await sluice(["models", "update", "openai/gpt-4o:mini", "--input-cost", "0.000001"], port: port)
                    .status
                    == 0)
            #expect(
                try await sluice(["models", "get", "openai/gpt-4o:mini"], port: port).output.contains("gpt-4o-mini"))
            #expect(try await sluice(["models", "delete", "openai/gpt-4o:mini"], port: port).status == 0)

            // Every update is a patch: a budget changes, the allowlist and other limits stay.
            #expect(
                try await sluice(["teams", "update", "ops", "--models", "claude,kept", "--rpm", "5"], port: port).status
                    == 0)
            let team = try await sluice(
                ["teams", "update", "ops", "--daily-budget", "10", "--output", "json"], port: port)
            #expect(
                team.output.contains("kept") && team.output.contains("requests_per_minute")
                    && team.output.contains("daily_spend_usd"))
            let cleared = try await sluice(
                ["teams", "update", "ops", "--clear", "rpm", "--models", "", "--output", "json"], port: port)
            #expect(
                !cleared.output.contains("requests_per_minute") && !cleared.output.contains("allowed_models")
                    && cleared.output.contains("daily_spend_usd"), "\(cleared.output)")
            // Alerts: the budget observed only, a soft threshold and a spike rule; a typo in the
            // spike's fields is refused by the control plane, naming the field.
            let alerting = try await sluice(
                [
                    "teams", "update", "ops", "--mode", "alert", "--soft-budget-percent", "80", "--spike",
                    "metric=spend,factor=3,baseline_hours=48", "--output", "json",
                ], port: port)
            #expect(
                alerting.status == 0 && alerting.output.contains(#""mode" : "alert""#)
                    && alerting.output.contains(#""baseline_hours" : 48"#), "\(alerting.output)")
            let typoSpike = try await sluice(["teams", "update", "ops", "--spike", "metric=spend,factr=3"], port: port)
            #expect(typoSpike.status == 1 && typoSpike.output.contains("limits.spike.factr"), "\(typoSpike.output)")
            let unalerted = try await sluice(
                ["teams", "update", "ops", "--clear", "mode", "--clear", "spike", "--output", "json"], port: port)
            #expect(!unalerted.output.contains("spike") && !unalerted.output.contains(#""mode""#))
            #expect(try await sluice(["projects", "update", "infra", "--deny", "kept"], port: port).status == 0)
            #expect(try await sluice(["projects", "get", "infra"], port: port).output.contains("kept"))
            #expect(
                try await sluice(
                    ["models", "create", "gem", "--provider", "gemini", "--upstream-model", "gemini-2.5-flash"],
                    port: port
                ).status == 0)
            #expect(
                try await sluice(["models", "get", "gem", "--output", "json"], port: port).output
                    .contains("generativelanguage.googleapis.com"))
            let settings = try await sluice(
                ["settings", "set", "time_zone=Europe/Berlin", "router.num_retries=2"], port: port)
            #expect(settings.status == 0 && settings.output.contains("Europe/Berlin"))
            let typoSetting = try await sluice(["settings", "set", "time_zon=UTC"], port: port)
            #expect(typoSetting.status == 1 && typoSetting.output.contains(#"did you mean "time_zone"?"#))
            #expect(try await sluice(["settings", "get"], port: port).output.contains(#""num_retries" : 2"#))

            // Agent tokens: issued once, listed with their binding, revoked by id.
            let agent = try await sluice(
                ["agents", "create", "shop/checkout/pod-1", "--service", "shop/checkout"], port: port)
            #expect(agent.status == 0 && agent.output.contains("token: sat-"))
            let unbound = try await sluice(["agents", "create", "bad", "--service", "shop/"], port: port)
            #expect(unbound.status == 1 && unbound.output.contains("namespace/service"))
            #expect(
                try await sluice(["agents", "list"], port: port).output.contains("shop/checkout/pod-1  shop/checkout"))
            #expect(try await sluice(["agents", "revoke", "shop/checkout/pod-1"], port: port).status == 0)
            #expect(try await sluice(["agents", "revoke", "shop/checkout/pod-1"], port: port).status == 1)
            #expect(!(try await sluice(["agents", "list"], port: port).output.contains("pod-1")))
            let audit = try await sluice(["audit", "--since", "30m"], port: port)
            #expect(
                audit.status == 0 && audit.output.contains("unknown@") && audit.output.contains("revoke")
                    && audit.output.contains("shop/checkout/pod-1") && !audit.output.contains("sat-"))
            #expect(try await sluice(["keys", "get", "ops-bot"], port: port).status == 1)
        }
    }

    @Test("keys import-litellm keeps the secrets a LiteLLM export holds, issues the rest anew, skips expired ones")
    func importLiteLLMKeys() async throws {
        try await ControlHarness.with { control in
            let port = control.port
            #expect(try await control.request("POST", "/v1/admin/teams", json: #"{"name":"ml"}"#).status == 201)
            let export = control.directory.file("litellm-keys.json")
            try """
            {"keys": [
              {"key_alias": "kept", "key": "sk-litellm-kept-0123456789abcdef", "team_id": "ml", "rpm_limit": 10,
               "metadata": {"owner": "alice", "tier": 3}, "expires": null},
              {"key_alias": "hashed", "token": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"},
              {"key_alias": "old", "key": "sk-litellm-old-0123456789abcdef", "team_id": "ml",
               "expires": "2020-01-01T00:00:00Z"}
            ]}
            """.write(toFile: export, atomically: true, encoding: .utf8)
            let run = try await sluice(["keys", "import-litellm", export], port: port)
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.contains("imported, keeps its secret"), "\(run.output)")
            #expect(run.output.contains("new secret (LiteLLM keeps only a hash): sk-"), "\(run.output)")
            #expect(run.output.contains("skipped: expired"), "\(run.output)")

            // The kept secret is the key's: looked up by its hash, it names the imported key.
            let info = try await control.request("GET", "/key/info?key=sk-litellm-kept-0123456789abcdef")
            #expect(info.text.contains(#""key":"kept""#) && info.text.contains(#""tier":"3""#), "\(info.text)")
            #expect(info.text.contains(#""rpm_limit":10"#))
            let hashed = try await control.request("GET", "/key/info?key=hashed")
            #expect(hashed.text.contains(#""team_id":"default""#), "no team_id: the default team")
            #expect(try await control.request("GET", "/key/info?key=old").status == 404)
            let master = try await control.request(
                "POST", "/key/generate", json: #"{"key": "\#(ControlHarness.adminToken)", "team_id": "ml"}"#)
            #expect(master.status == 400, "\(master.text)")
        }
    }
}
