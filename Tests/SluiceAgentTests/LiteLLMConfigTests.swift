import Foundation
import SluiceAgent
import SluicePolicy
import SluiceTestSupport
import Testing

/// LiteLLM proxy configs in the shapes its documentation shows (Tests/litellm-configs) load
/// in the agent as they are: what maps to Sluice is honoured, the rest is named one by one.
@Suite("LiteLLM configs load whole")
struct LiteLLMConfigTests {
    static let environment = [
        "OPENAI_API_KEY": "sk-openai-0123456789", "ANTHROPIC_API_KEY": "sk-ant-0123456789",
        "AZURE_API_KEY_EU": "azure-eu-0123456789", "AZURE_API_KEY_CA": "azure-ca-0123456789",
        "GEMINI_API_KEY": "gemini-0123456789", "LITELLM_MASTER_KEY": "sk-1234",
    ]

    static func load(_ name: String) throws -> AgentConfiguration {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("litellm-configs/\(name)").path
        return try ConfigLoader(environment: environment).load(yaml: try String(contentsOfFile: path, encoding: .utf8))
    }

    @Test("the quick start: a provider-less OpenAI model and an Anthropic one; the master key is required of callers")
    func quickStart() throws {
        let configuration = try Self.load("quick-start.yaml")
        #expect(configuration.catalog.names.sorted() == ["claude-3-sonnet", "gpt-3.5-turbo"])
        #expect(configuration.catalog.alias(named: "gpt-3.5-turbo")?.deployments.first?.dialect == .openAI)
        // LiteLLM requires its master key of every caller once set: so does the agent.
        #expect(configuration.policy.keys.map(\.id) == ["master-key"])
        #expect(configuration.policy.services["*"]?.keylessAllowed == false)
        #expect(!configuration.warnings.contains { $0.hasPrefix("general_settings.master_key is not supported") })
        #expect(configuration.warnings.contains { $0.hasPrefix("general_settings.master_key is shorter than 16") })
        let engine = try PolicyEngine(policy: configuration.policy, serviceName: "shop/checkout", limiter: Limiter())
        #expect((try? engine.authenticate(presentedKey: "sk-1234", now: 0).get())?.keyID == "master-key")
        #expect((try? engine.authenticate(presentedKey: nil, now: 0).get()) == nil)
        #expect((try? engine.authenticate(presentedKey: "sk-12345", now: 0).get()) == nil)
    }

    @Test("master_key from os.environ/, beside a sluice_policy: team default is made for it, other keys stay")
    func masterKeyFromEnvironment() throws {
        let yaml = """
            model_list:
              - model_name: a
                litellm_params: {model: openai/a}
            general_settings: {master_key: os.environ/PROXY_MASTER_KEY}
            sluice_policy:
              teams: {ml: {}}
              services: {shop/checkout: {keyless: allowed}}
              static_keys:
                - {id: ml-key, token: sk-ml-key-0123456789abcdef, team: ml}

            """
        let configuration = try ConfigLoader(environment: ["PROXY_MASTER_KEY": "sk-master-0123456789abcdef"])
            .load(yaml: yaml)
        #expect(configuration.policy.keys.map(\.id).sorted() == ["master-key", "ml-key"])
        #expect(configuration.policy.teams["default"] != nil && configuration.policy.teams["ml"] != nil)
        // The file's own keyless service stays keyless: the master key adds a key, it does not
        // take access away that the policy section grants explicitly.
        #expect(configuration.policy.services["shop/checkout"]?.keylessAllowed == true)
        #expect(!configuration.warnings.contains { $0.contains("master_key") })
        let engine = try PolicyEngine(policy: configuration.policy, serviceName: "shop/checkout", limiter: Limiter())
        let master = try engine.authenticate(presentedKey: "sk-master-0123456789abcdef", now: 0).get()
        #expect(master.keyID == "master-key" && master.team == "default")

        do {
            _ = try ConfigLoader(environment: [:]).load(yaml: yaml)
            Issue.record("a master key naming an unset variable loaded")
        } catch {
            #expect(
                error.message
                    == "general_settings.master_key refers to the environment variable PROXY_MASTER_KEY,"
                    + " which is not set")
        }
    }

    @Test("max_budget with budget_duration: the budget of every service slot, an entry's tighter one kept")
    func proxyBudget() throws {
        let yaml = """
            model_list:
              - model_name: a
                litellm_params: {model: openai/a}
            litellm_settings: {max_budget: 25, budget_duration: 30d}
            sluice_policy:
              services:
                shop/checkout: {keyless: allowed, limits: {monthly_spend_usd: 5}}
                shop/cart: {keyless: allowed, limits: {requests_per_minute: 60}}

            """
        let configuration = try ConfigLoader(environment: [:]).load(yaml: yaml)
        let services = configuration.policy.services
        #expect(services["shop/checkout"]?.limits.monthlySpend == Cost(usd: 5))
        #expect(services["shop/cart"]?.limits.monthlySpend == Cost(usd: 25))
        #expect(services["shop/cart"]?.limits.requestsPerMinute == 60)
        // Any other service this agent may serve under is held to it too, and needs a key.
        #expect(services["*"]?.limits.monthlySpend == Cost(usd: 25) && services["*"]?.keylessAllowed == false)
        #expect(!configuration.warnings.contains { $0.contains("max_budget") || $0.contains("budget_duration") })

        // Without a policy section the open agent still has the budget, and says so.
        let open = try ConfigLoader(environment: ["BUDGET": "2.5"]).load(
            yaml: "model_list: [{model_name: a, litellm_params: {model: openai/a}}]\n"
                + "litellm_settings: {max_budget: os.environ/BUDGET, budget_duration: 1d}\n")
        #expect(open.policy.services["*"]?.limits.dailySpend == Cost(usd: 2.5))
        #expect(open.policy.services["*"]?.keylessAllowed == true)
        #expect(open.warnings.contains { $0.hasSuffix("served without a key, under litellm_settings.max_budget") })
    }

    @Test("budgets Sluice does not keep are refused naming the field, never silently dropped")
    func proxyBudgetRefusals() {
        func refusal(_ settings: String) -> String? {
            do {
                _ = try ConfigLoader(environment: [:]).load(
                    yaml: "model_list: [{model_name: a, litellm_params: {model: openai/a}}]\n" + settings)
                return nil
            } catch {
                return error.message
            }
        }
        #expect(
            refusal("litellm_settings: {max_budget: 10, budget_duration: 7d}\n")?
                .hasPrefix(#"litellm_settings.budget_duration: "7d" is not a budget Sluice keeps"#) == true)
        #expect(
            refusal("litellm_settings: {max_budget: 10}\n")?
                .hasPrefix("litellm_settings.max_budget: without budget_duration it is a lifetime budget") == true)
        #expect(
            refusal("litellm_settings: {budget_duration: 1d}\n")
                == "litellm_settings.budget_duration is set without litellm_settings.max_budget")
        #expect(
            refusal("litellm_settings: {max_budget: -1, budget_duration: 1d}\n")
                == "litellm_settings.max_budget must be a number of US dollars, 0 or more")
        #expect(
            refusal("litellm_settings: {max_budget: lots, budget_duration: 1d}\n")
                == "litellm_settings.max_budget must be a number of US dollars, 0 or more")
    }

    @Test("os.environ/ in every value the agent uses; an unused field's reference is never read")
    func environmentReferences() throws {
        let yaml = """
            model_list:
              - model_name: a
                litellm_params:
                  model: openai/a
                  api_base: os.environ/A_BASE
                  rpm: os.environ/A_RPM
                  aws_secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY
                model_info: {input_cost_per_token: os.environ/A_INPUT_COST, supports_vision: os.environ/UNSET_TOO}
            router_settings:
              num_retries: os.environ/RETRIES
              redis_host: os.environ/REDIS_HOST
            litellm_settings: {max_budget: os.environ/BUDGET, budget_duration: os.environ/PERIOD}
            general_settings: {database_url: os.environ/DATABASE_URL, master_key: os.environ/MASTER}
            sluice_settings: {max_connections: os.environ/MAX_CONNECTIONS}

            """
        let environment = [
            "A_BASE": "https://a.example.com/v1", "A_RPM": "120", "A_INPUT_COST": "0.000003", "RETRIES": "4",
            "BUDGET": "12.5", "PERIOD": "1mo", "MASTER": "sk-master-0123456789abcdef", "MAX_CONNECTIONS": "77",
        ]
        let configuration = try ConfigLoader(environment: environment).load(yaml: yaml)
        let deployment = try #require(configuration.catalog.alias(named: "a")?.deployments.first)
        #expect(deployment.endpoint.description == "https://a.example.com/v1" && deployment.requestsPerMinute == 120)
        #expect(configuration.catalog.router.numRetries == 4)
        #expect(configuration.policy.services["*"]?.limits.monthlySpend == Cost(usd: 12.5))
        #expect(configuration.policy.keys.map(\.id) == ["master-key"])
        #expect(configuration.settings.maxConnections == 77)
        // AWS_SECRET_ACCESS_KEY, REDIS_HOST, DATABASE_URL and UNSET_TOO are unset: their
        // fields are not used, so they are named as ignored and never read.
        for ignored in [
            "model_list[0].litellm_params.aws_secret_access_key", "router_settings.redis_host",
            "general_settings.database_url", "model_list[0].model_info.supports_vision",
        ] {
            #expect(configuration.warnings.contains { $0.hasPrefix(ignored + " is not") }, "\(ignored)")
        }

        for (variable, path) in [
            ("A_RPM", "model_list[0].litellm_params.rpm"), ("RETRIES", "router_settings.num_retries"),
            ("PERIOD", "litellm_settings.budget_duration"), ("MAX_CONNECTIONS", "sluice_settings.max_connections"),
            ("A_INPUT_COST", "model_list[0].model_info.input_cost_per_token"),
        ] {
            var partial = environment
            partial[variable] = nil
            do {
                _ = try ConfigLoader(environment: partial).load(yaml: yaml)
                Issue.record("\(path) loaded without \(variable)")
            } catch {
                #expect(
                    error.message == "\(path) refers to the environment variable \(variable), which is not set",
                    "\(error.message)")
            }
        }
    }

    @Test("through a real agent: the master key gets in and is audited by id; no key, or another, does not")
    func masterKeyOnAgent() async throws {
        let master = "sk-master-0123456789abcdef"
        try await AgentHarness.with(settings: "general_settings: {master_key: \(master)}\n") { harness in
            let keyless = try await harness.chat()
            #expect(keyless.status == 401 && keyless.text.contains("missing_api_key"), "\(keyless.text)")
            let wrong = try await harness.chat(key: "sk-master-0123456789abcdeX")
            #expect(wrong.status == 401)
            let served = try await harness.chat(key: master)
            #expect(served.status == 200, "\(served.text)")
            let records = await harness.auditRecords(3)
            #expect(records.contains { $0["key_id"] as? String == "master-key" && $0["team"] as? String == "default" })
            #expect(!records.contains { String(describing: $0).contains(master) }, "the master key reached the audit")
        }
    }

    @Test("load balancing: two Azure deployments of one alias, litellm_settings retries and fallbacks honoured")
    func loadBalancing() throws {
        let configuration = try Self.load("load-balancing.yaml")
        let catalog = configuration.catalog
        #expect(catalog.alias(named: "gpt-4")?.deployments.map(\.dialect) == [.azure, .azure])
        #expect(catalog.alias(named: "gpt-4")?.deployments.map(\.requestsPerMinute) == [600, 300])
        // router_settings.num_retries (2) wins over litellm_settings.num_retries (3).
        #expect(catalog.router.numRetries == 2 && catalog.router.strategy == .latencyBased)
        #expect(catalog.router.fallbacks["gpt-4"] == ["gpt-3.5-turbo"])
        #expect(catalog.router.contextWindowFallbacks["gpt-3.5-turbo"] == ["gpt-4"])
        #expect(catalog.canonicalName("gpt-4-latest") == "gpt-4")
        for unsupported in [
            "litellm_settings.success_callback", "litellm_settings.drop_params", "general_settings.database_url",
            "router_settings.redis_host", "environment_variables.REDIS_HOST",
        ] {
            #expect(configuration.warnings.contains { $0.hasPrefix(unsupported + " is not") }, "\(unsupported)")
        }
        #expect(!configuration.warnings.contains { $0.hasPrefix("litellm_settings.num_retries") })
    }

    @Test("embeddings, access groups, a group alias and content-policy fallbacks from litellm_settings")
    func embeddingsAndGroups() throws {
        let configuration = try Self.load("embeddings-and-groups.yaml")
        let catalog = configuration.catalog
        #expect(catalog.names.sorted() == ["claude-sonnet", "gemini-flash", "text-embedding-3-small"])
        #expect(catalog.canonicalName("claude") == "claude-sonnet")
        #expect(catalog.router.contentPolicyFallbacks["claude-sonnet"] == ["gemini-flash"])
        #expect(catalog.alias(named: "claude-sonnet")?.price != nil)
        #expect(configuration.warnings.contains("general_settings.alerting is not supported by the agent; ignored"))
        #expect(configuration.policy.keys.map(\.id) == ["master-key"])
    }
}
