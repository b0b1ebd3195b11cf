import Foundation
import SluiceAgent
import SluicePolicy
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

    @Test("the quick start: a provider-less OpenAI model and an Anthropic one, the master key named as unused")
    func quickStart() throws {
        let configuration = try Self.load("quick-start.yaml")
        #expect(configuration.catalog.names.sorted() == ["claude-3-sonnet", "gpt-3.5-turbo"])
        #expect(configuration.catalog.alias(named: "gpt-3.5-turbo")?.deployments.first?.dialect == .openAI)
        #expect(configuration.warnings.contains("general_settings.master_key is not supported by the agent; ignored"))
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
    }
}
