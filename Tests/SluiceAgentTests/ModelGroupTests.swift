import Foundation
import SluiceAgent
import SluiceTestSupport
import Testing

/// LiteLLM's model access groups and `model_group_alias`, through a real agent.
@Suite("Access groups and model group aliases")
struct ModelGroupTests {
    static let key = "sk-groups-ml-0123456789abcdef"

    static func yaml(_ harness: AgentHarness, policy: String) -> String {
        func model(_ name: String, groups: String) -> String {
            """
              - model_name: \(name)
                litellm_params:
                  model: openai/mock
                  api_base: https://127.0.0.1:\(harness.mock.port)/v1
                  api_key: sk-test-provider-secret-0123456789
                  ssl_verify: \(harness.certificate.certificatePath)
                model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002\(groups)}

            """
        }
        return "model_list:\n" + model("beta-small", groups: ", access_groups: [beta]")
            + model("beta-large", groups: ", access_groups: [beta, large]") + model("stable", groups: "")
            + """
            router_settings:
              model_group_alias: {gpt-4: beta-large, gpt-4-hidden: {model: beta-small, hidden: true}}
            litellm_settings:
              drop_params: true
              success_callback: [langfuse]
            \(policy)
            """
    }

    @Test("a team allowed an access group may use every alias in it and nothing else; a group alias is its alias")
    func groupsAndAliases() async throws {
        try await AgentHarness.with(aliases: [:]) { harness in
            try await harness.restartAgent(
                yaml: Self.yaml(
                    harness,
                    policy: """
                        sluice_policy:
                          teams: {ml: {allowed_models: [beta], denied_models: [large]}, ops: {allowed_models: [beta]}}
                          static_keys:
                            - {id: ml-key, token: \(Self.key), team: ml}
                            - {id: ops-key, token: sk-groups-ops-0123456789abcdef, team: ops}

                        """))
            #expect(try await harness.chat(model: "beta-small", key: Self.key).status == 200)
            let large = try await harness.chat(model: "beta-large", key: Self.key)
            #expect(large.status == 403 && large.text.contains("denied_models"), "a denied group wins: \(large.text)")
            let stable = try await harness.chat(model: "stable", key: Self.key)
            #expect(stable.status == 403 && stable.text.contains("allowed_models"), "\(stable.text)")
            // gpt-4 is beta-large: denied to ml with it, served to ops as beta-large.
            let aliased = try await harness.chat(model: "gpt-4", key: Self.key)
            #expect(aliased.status == 403, "\(aliased.text)")
            let ops = try await harness.chat(model: "gpt-4", key: "sk-groups-ops-0123456789abcdef")
            #expect(ops.status == 200, "\(ops.text)")
            let records = await harness.auditRecords(5)
            #expect(records[4]["alias"] as? String == "beta-large")
            let models = try await TestHTTPClient.request(
                "GET", "/v1/models", bearer: "sk-groups-ops-0123456789abcdef", port: harness.agentPort,
                group: harness.group)
            #expect(models.text.contains(#""id":"gpt-4""#) && models.text.contains(#""id":"beta-small""#))
            #expect(!models.text.contains(#""id":"stable""#))
            #expect(!models.text.contains("gpt-4-hidden"), "hidden: true keeps a name out of the list")
            let hidden = try await harness.chat(model: "gpt-4-hidden", key: "sk-groups-ops-0123456789abcdef")
            #expect(hidden.status == 200, "a hidden name still serves: \(hidden.text)")
        }
    }

    @Test("LiteLLM settings the agent does not support are named one by one")
    func unsupportedSettingsNamed() throws {
        let configuration = try ConfigLoader(environment: [:]).load(
            yaml: """
                model_list:
                  - model_name: a
                    litellm_params: {model: openai/a}
                    model_info: {access_groups: [g]}
                litellm_settings: {drop_params: true, success_callback: [langfuse]}
                general_settings: {store_model_in_db: true}

                """)
        #expect(configuration.warnings.contains("litellm_settings.drop_params is not supported by the agent; ignored"))
        #expect(
            configuration.warnings.contains(
                "general_settings.store_model_in_db is not supported by the agent; ignored"))
    }

    @Test("a group named like an alias, a group alias to nothing, and a list naming neither are refused")
    func refusals() {
        func refusal(_ yaml: String) -> String? {
            do {
                _ = try ConfigLoader(environment: [:]).load(yaml: yaml)
                return nil
            } catch {
                return error.message
            }
        }
        let models = """
            model_list:
              - model_name: a
                litellm_params: {model: openai/a}
                model_info: {access_groups: [g]}
              - model_name: b
                litellm_params: {model: openai/b}

            """
        #expect(
            refusal(models + "router_settings: {model_group_alias: {x: nowhere}}\n")?.contains("nowhere") == true)
        #expect(
            refusal(models + "router_settings: {model_group_alias: {b: a}}\n")?.contains("already an alias") == true)
        #expect(
            refusal(models + "sluice_policy:\n  teams: {t: {allowed_models: [gg]}}\n")?
                .contains(#""gg" is not a model; did you mean "g"?"#) == true)
        #expect(
            refusal(
                "model_list:\n  - model_name: a\n    litellm_params: {model: openai/a}\n"
                    + "    model_info: {access_groups: [a]}\n")?.contains("also an alias") == true)
    }
}

/// LiteLLM's wildcard aliases (`openai/*`), through a real agent.
@Suite("Wildcard aliases")
struct WildcardAliasTests {
    static let ml = "sk-wildcard-ml-0123456789abcdef"
    static let web = "sk-wildcard-web-0123456789abcdef"
    static let ops = "sk-wildcard-ops-0123456789abcdef"

    @Test("openai/* serves any name below it with the rest as the upstream model; lists name it or names below it")
    func wildcards() async throws {
        try await AgentHarness.with(aliases: ["gpt-test": "mock"]) { harness in
            try await harness.restartAgent(
                yaml: harness.yaml + """
                      - model_name: "openai/*"
                        litellm_params:
                          model: "openai/*"
                          api_base: https://127.0.0.1:\(harness.mock.port)/v1
                          api_key: sk-test-provider-secret-0123456789
                          ssl_verify: \(harness.certificate.certificatePath)
                        model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
                    sluice_policy:
                      teams:
                        ml: {allowed_models: ["openai/*"]}
                        web: {allowed_models: [openai/mock]}
                        ops: {denied_models: ["openai/*"]}
                      models: {"openai/*": {limits: {requests_per_day: 4}}}
                      static_keys:
                        - {id: ml-key, token: \(Self.ml), team: ml}
                        - {id: web-key, token: \(Self.web), team: web}
                        - {id: ops-key, token: \(Self.ops), team: ops}

                    """)
            let served = try await harness.chat(model: "openai/mock+chunks=2", key: Self.ml)
            #expect(served.status == 200 && served.text.contains("Sluice mock"), "\(served.text)")
            #expect(harness.mock.requests.last.map { String(decoding: $0.body, as: UTF8.self) }?
                .contains(#""model":"mock+chunks=2""#) == true)
            let exact = try await harness.chat(model: "gpt-test", key: Self.ml)
            #expect(exact.status == 403 && exact.text.contains("allowed_models"), "\(exact.text)")
            #expect(try await harness.chat(model: "openai/mock", key: Self.web).status == 200)
            let other = try await harness.chat(model: "openai/mock+chunks=3", key: Self.web)
            #expect(other.status == 403, "web may use openai/mock only: \(other.text)")
            let denied = try await harness.chat(model: "openai/mock", key: Self.ops)
            #expect(denied.status == 403 && denied.text.contains("denied_models"), "\(denied.text)")
            #expect(try await harness.chat(model: "gpt-test", key: Self.ops).status == 200)
            // The wildcard's own limit counts every name it serves: two calls so far, two more fit.
            #expect(try await harness.chat(model: "openai/mock+chunks=1", key: Self.ml).status == 200)
            #expect(try await harness.chat(model: "openai/mock+chunks=4", key: Self.ml).status == 200)
            let over = try await harness.chat(model: "openai/mock+chunks=5", key: Self.ml)
            #expect(over.status == 429 && over.text.contains("openai/*"), "\(over.text)")
            let records = await harness.auditRecords(1)
            #expect(records.first?["alias"] as? String == "openai/mock+chunks=2")
            #expect(records.first?["upstream_model"] as? String == "mock+chunks=2")
        }
    }

    @Test("an upstream model ending in * is refused for an alias that is not a wildcard")
    func starOnlyForWildcards() {
        do {
            _ = try ConfigLoader(environment: [:]).load(
                yaml: "model_list:\n  - model_name: plain\n    litellm_params: {model: \"openai/*\"}\n")
            Issue.record("loaded")
        } catch {
            #expect(error.message.contains("may end in * only for a wildcard alias"), "\(error.message)")
        }
    }
}
