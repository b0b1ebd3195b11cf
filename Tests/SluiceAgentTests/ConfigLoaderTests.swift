import Foundation
import SluiceAgent
import SluicePolicy
import Testing

@Suite("LiteLLM-compatible configuration")
struct ConfigLoaderTests {
    static let litellm = """
        model_list:
          - model_name: gpt-4o
            litellm_params:
              model: openai/gpt-4o
              api_key: os.environ/OPENAI_API_KEY
              rpm: 480
              tpm: 800000
            model_info:
              input_cost_per_token: 2.5e-06
              output_cost_per_token: 1.0e-05
          - model_name: gpt-4o
            litellm_params: {model: openai/gpt-4o, api_base: "https://eu.example.com/openai/v1/",
                             api_key: sk-literal-key, weight: 3}
          - model_name: local-llama
            litellm_params:
              model: openai/meta-llama/Llama-3.1-8B-Instruct
              api_base: http://vllm.ml.svc:8000/v1
              api_key: none
              timeout: 30
              max_retries: 2
          - model_name: claude
            litellm_params:
              model: anthropic/claude-sonnet-4
              api_key: os.environ/ANTHROPIC_API_KEY
          - model_name: gemini
            litellm_params:
              model: gemini/gemini-2.5-flash
              api_key: os.environ/GEMINI_API_KEY
          - model_name: titan
            litellm_params:
              model: bedrock/amazon.titan-text-express-v1
        litellm_settings:
          drop_params: true
        router_settings:
          routing_strategy: simple-shuffle
        general_settings:
          master_key: sk-1234
        """

    @Test("a real LiteLLM config.yaml loads as-is, with warnings for what is not used")
    func loadsLiteLLM() throws {
        let configuration = try ConfigLoader(environment: [
            "OPENAI_API_KEY": "sk-from-env-123456789", "ANTHROPIC_API_KEY": "sk-ant-from-env-1234",
            "GEMINI_API_KEY": "gemini-from-env-1234",
        ])
        .load(yaml: Self.litellm)
        let catalog = configuration.catalog
        #expect(catalog.names == ["gpt-4o", "local-llama", "claude", "gemini"])
        let gemini = try #require(catalog.alias(named: "gemini")?.deployments.first)
        #expect(
            gemini.dialect == .gemini
                && gemini.endpoint.description == "https://generativelanguage.googleapis.com/v1beta")
        let claude = try #require(catalog.alias(named: "claude")?.deployments.first)
        #expect(claude.dialect == .anthropic && claude.endpoint.description == "https://api.anthropic.com/v1")
        let gpt = try #require(catalog.alias(named: "gpt-4o"))
        #expect(gpt.deployments.count == 2)
        #expect(gpt.deployments[0].endpoint.description == "https://api.openai.com/v1")
        #expect(gpt.deployments[0].credential.reveal() == "sk-from-env-123456789")
        #expect(gpt.deployments[0].requestsPerMinute == 480)
        #expect(
            gpt.deployments[1].endpoint
                == Endpoint(scheme: .https, host: "eu.example.com", port: 443, basePath: "/openai/v1"))
        #expect(gpt.deployments[1].weight == 3)
        #expect(gpt.price == (try Price(inputUSDPerToken: 2.5e-06, outputUSDPerToken: 1.0e-05)))
        let llama = try #require(catalog.alias(named: "local-llama"))
        #expect(llama.deployments[0].upstreamModel == "meta-llama/Llama-3.1-8B-Instruct")
        #expect(llama.deployments[0].endpoint.scheme == .http)
        #expect(llama.deployments[0].timeoutSeconds == 30)
        #expect(llama.price == nil)
        let warnings = configuration.warnings.joined(separator: "\n")
        #expect(warnings.contains("max_retries"))
        #expect(warnings.contains("bedrock") && !warnings.contains("anthropic") && !warnings.contains("gemini"))
        #expect(warnings.contains("litellm_settings") && !warnings.contains("router_settings"))
        #expect(!warnings.contains("sk-"))
    }

    func failure(_ yaml: String, environment: [String: String] = [:]) -> String? {
        do {
            _ = try ConfigLoader(environment: environment).load(yaml: yaml)
            return nil
        } catch {
            return error.message
        }
    }

    @Test("refuses what cannot be right, saying where")
    func refusals() {
        #expect(failure("model_list: [") != nil)
        #expect(failure("general_settings: {}")?.contains("no model_list") == true)
        #expect(
            failure("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, ssl_verify: false}")?
                .contains("ssl_verify") == true)
        #expect(
            failure("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, api_base: \"ftp://h\"}")?
                .contains("model_list[0].litellm_params.api_base") == true)
        #expect(
            failure(
                "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n"
                    + "    model_info: {input_cost_per_token: 2.5}"
            )?
            .contains("per-1M") == true)
        // A price that is not a number is refused, never read as "no price".
        #expect(
            failure(
                "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n"
                    + "    model_info: {input_cost_per_token: 0.000003, cache_read_input_token_cost: cheap}"
            )?
            .contains("model_list[0].model_info.cache_read_input_token_cost must be a number") == true)
        #expect(
            failure(
                "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n"
                    + "    model_info: {cache_read_input_token_cost: 0.0000003}"
            )?
            .contains("cache_read_input_token_cost needs input_cost_per_token") == true)
        #expect(
            failure("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, rpm: -1}")?
                .contains("rpm") == true)
        // A Gemini model name goes into the URL's path: nothing that could change the path.
        #expect(
            failure("model_list:\n  - model_name: a\n    litellm_params: {model: \"gemini/../v1/files\"}")?
                .contains("Gemini model name") == true)
        let secret = failure(
            "model_list:\n  - model_name: a\n"
                + "    litellm_params: {model: openai/x, api_key: sk-secret-123456, api_base: \"https://u:p@h\"}"
        )
        #expect(secret?.contains("sk-secret") == false)
    }

    @Test("the README's built-in example, config/example.yaml, loads with its policy and literal mock key")
    func builtInExample() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("config/example.yaml"), encoding: .utf8)
        let configuration = try ConfigLoader(environment: [:]).load(yaml: text)
        let deployment = try #require(configuration.catalog.alias(named: "gpt-4o-mini")?.deployments.first)
        #expect(
            deployment.credential.reveal() == "sk-mock-not-a-real-key"
                && deployment.caFile == ".state/mock-provider/cert.pem")
        #expect(
            deployment.requestsPerMinute == 600
                && configuration.catalog.alias(named: "gpt-4o-mini")?.maxOutputTokens == 16384)
        #expect(configuration.policy.services["*"]?.keylessAllowed == true)
        #expect(configuration.policy.services["*"]?.limits.dailySpend == Cost(usd: 5))
        #expect(configuration.policy.promptFilters.map(\.name) == ["us-ssn"])
    }

    @Test("a deployment whose credential is not set here is left out and reported; the rest of the file is in force")
    func missingCredential() throws {
        let configuration = try ConfigLoader(environment: ["HELD": "sk-held"]).load(
            yaml: """
                model_list:
                  - {model_name: a, litellm_params: {model: openai/x, api_key: os.environ/MISSING}}
                  - {model_name: b, litellm_params: {model: openai/y, api_key: os.environ/HELD}}
                """)
        #expect(
            configuration.catalog.alias(named: "a") == nil && configuration.catalog.unavailableAliases["a"] == "MISSING"
        )
        #expect(configuration.catalog.alias(named: "b")?.deployments.first?.credential.reveal() == "sk-held")
        #expect(configuration.catalog.missingCredentials == ["MISSING"])
        #expect(
            configuration.warnings.contains { $0.contains("model_list[0].litellm_params") && $0.contains("MISSING") })
    }

    @Test("os.environ/ works in every text parameter, as in LiteLLM's Azure configs; an unset one is named")
    func environmentValues() throws {
        let yaml = """
            model_list:
              - model_name: gpt-azure
                litellm_params:
                  model: azure/gpt-4o-prod
                  api_base: os.environ/AZURE_API_BASE
                  api_version: os.environ/AZURE_API_VERSION
                  api_key: os.environ/AZURE_API_KEY
            """
        let environment = [
            "AZURE_API_BASE": "https://example-resource.openai.azure.com", "AZURE_API_VERSION": "2025-04-01-preview",
            "AZURE_API_KEY": "azure-key-0123456789",
        ]
        let deployment = try #require(
            try ConfigLoader(environment: environment).load(yaml: yaml).catalog.alias(named: "gpt-azure")?.deployments
                .first)
        #expect(deployment.endpoint.description == "https://example-resource.openai.azure.com")
        #expect(deployment.apiVersion == "2025-04-01-preview" && deployment.upstreamModel == "gpt-4o-prod")
        var missing = environment
        missing["AZURE_API_BASE"] = nil
        do {
            _ = try ConfigLoader(environment: missing).load(yaml: yaml)
            Issue.record("an unset api_base was accepted")
        } catch {
            #expect(
                error.message
                    == "model_list[0].litellm_params.api_base refers to the environment variable AZURE_API_BASE,"
                    + " which is not set")
        }
    }

    @Test("reads router_settings as LiteLLM writes them, and refuses fallbacks to unknown models")
    func routerSettings() throws {
        let models =
            "model_list:\n  - {model_name: gpt, litellm_params: {model: openai/x}}\n"
            + "  - {model_name: claude, litellm_params: {model: anthropic/y}}\n"
        let configuration = try ConfigLoader(environment: [:]).load(
            yaml: models + """
                router_settings:
                  routing_strategy: latency-based-routing
                  num_retries: 3
                  retry_after: 0.5
                  allowed_fails: 2
                  cooldown_time: 30
                  fallbacks: [{gpt: [claude]}]
                  context_window_fallbacks:
                    - claude: gpt
                  redis_host: localhost
                """)
        let router = configuration.catalog.router
        #expect(router.strategy == .latencyBased && router.numRetries == 3 && router.retryBackoffSeconds == 0.5)
        #expect(router.allowedFails == 2 && router.cooldownSeconds == 30)
        #expect(router.fallbacks == ["gpt": ["claude"]] && router.contextWindowFallbacks == ["claude": ["gpt"]])
        #expect(configuration.warnings.contains { $0.contains("redis_host") })
        #expect(
            failure(models + "router_settings: {fallbacks: [{gpt: [gemini]}]}")?.contains(#""gemini" is not a model"#)
                == true)
        #expect(
            failure(models + "router_settings: {routing_strategy: usage-based-routing}")?.contains("routing_strategy")
                == true)
        #expect(failure(models + "router_settings: {num_retries: -1}")?.contains("num_retries") == true)
    }

    @Test("reads sluice_settings")
    func settings() throws {
        let configuration = try ConfigLoader(environment: [:]).load(
            yaml: """
                model_list: []
                sluice_settings: {max_request_body_bytes: 2048, idle_timeout_seconds: 1.5, max_json_depth: 32}
                """)
        #expect(configuration.settings.maxRequestBodyBytes == 2048)
        #expect(configuration.settings.idleTimeoutSeconds == 1.5)
        #expect(configuration.settings.maxJSONDepth == 32)
    }

    @Test(
        "an unknown key is an error naming its path and the closest known one; LiteLLM sections load with a warning"
    )
    func strictKeys() throws {
        let models = "model_list: []\n"
        // A misspelt sluice_policy must not start an open, keyless, unlimited agent.
        #expect(
            failure(models + "sluice_polcy: {teams: {}}")
                == #"unknown top-level field "sluice_polcy"; did you mean "sluice_policy"?"#)
        #expect(
            failure(models + "sluice_settings: {idle_timeout_second: 3}")?.contains(
                #"did you mean "idle_timeout_seconds"?"#) == true)
        #expect(
            failure(models + "sluice_identity: {servce: x}")?.contains(
                #"sluice_identity."servce" is unknown; did you mean "service"?"#) == true)
        #expect(
            failure(models + "sluice_policy: {teams: {ml: {allowed_model: [a]}}}")?
                .contains(#"sluice_policy.teams."ml"."allowed_model" is unknown; did you mean "allowed_models"?"#)
                == true)
        #expect(failure(models + "sluice_policy: {team: {}}")?.contains(#"did you mean "teams"?"#) == true)
        #expect(
            failure(models + "sluice_policy: {teams: {ml: {limits: {requests_per_dya: 5}}}}")?.contains(
                "requests_per_dya") == true)
        #expect(failure(models + "zzz: 1")?.contains("did you mean") == false)
        let litellm = try ConfigLoader(environment: [:]).load(
            yaml: models + "litellm_settings: {drop_params: true}\ngeneral_settings: {}")
        // A section's fields are named one by one; an empty section is named whole.
        #expect(litellm.warnings.contains("litellm_settings.drop_params is not supported by the agent; ignored"))
        #expect(litellm.warnings.contains("general_settings is a LiteLLM section the agent does not use; ignored"))
    }

    @Test("listen addresses: loopback or not")
    func listenAddresses() throws {
        #expect(try ListenAddress(parsing: "127.0.0.1:4000").isLoopback)
        #expect(try ListenAddress(parsing: "127.10.0.3:4000").isLoopback)
        #expect(try ListenAddress(parsing: "[::1]:4000") == ListenAddress(host: "::1", port: 4000))
        #expect(try ListenAddress(parsing: "localhost:1").isLoopback)
        #expect(try !ListenAddress(parsing: "0.0.0.0:4000").isLoopback)
        #expect(try !ListenAddress(parsing: "10.0.0.8:4000").isLoopback)
        #expect(try !ListenAddress(parsing: "127.evil.com:4000").isLoopback)
        #expect(throws: ConfigError.self) { try ListenAddress(parsing: "4000") }
        #expect(throws: ConfigError.self) { try ListenAddress(parsing: "h:99999") }
    }
}
