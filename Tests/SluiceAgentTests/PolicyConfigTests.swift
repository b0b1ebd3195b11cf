import SluiceAgent
import SluicePolicy
import Testing

@Suite("sluice_policy configuration")
struct PolicyConfigTests {
    static let catalog = """
        model_list:
          - model_name: a
            litellm_params: {model: openai/a}
            model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002, max_output_tokens: 512}

        """

    func load(_ policy: String, environment: [String: String] = [:]) throws -> AgentConfiguration {
        try ConfigLoader(environment: environment).load(yaml: Self.catalog + policy)
    }

    func refusal(_ policy: String) -> String? {
        do {
            _ = try load(policy)
            return nil
        } catch {
            return (error as? ConfigError)?.message ?? "\(error)"
        }
    }

    @Test("a full policy loads: keys by hash, teams, projects, services, shorthand, zone")
    func loads() throws {
        let hash = KeyHasher(pepper: Secret("pepper-from-env-0123456789")).hash("sk-sluice-x").encoded
        let configuration = try load(
            """
            sluice_policy:
              key_pepper: os.environ/PEPPER
              time_zone: "+05:30"
              unpriced_models: flag
              only_allow_models: [a]
              default_limits: {requests_per_minute: 60}
              rate_limits: {default: 1000/day, ml: 200, user_abc: 10, "key:ci": 5/min}
              teams:
                ml: {denied_models: [a], limits: {daily_spend_usd: 2.5}}
              projects:
                search: {team: ml}
              services:
                shop/checkout: {keyless: allowed}
              end_users:
                vip: {requests_per_minute: 100}
                abuser-7: {blocked: true, daily_spend_usd: 1}
              keys:
                - {id: ci, hash: "\(hash)", team: ml, project: search, expires_at: "2027-01-31T12:00:00+01:00",
                   metadata: {owner: alice}}
            """, environment: ["PEPPER": "pepper-from-env-0123456789"])
        let policy = configuration.policy
        #expect(policy.keys[0].expiresAt == CivilDate(year: 2027, month: 1, day: 31).dayNumber * 86_400 + 11 * 3600)
        #expect(policy.keys[0].metadata == ["owner": "alice"] && policy.keys[0].limits == Limits(requestsPerMinute: 5))
        #expect(policy.teams["ml"]?.limits == Limits(requestsPerMinute: 200, dailySpend: Cost(usd: 2.5)))
        #expect(policy.endUserLimits["user_abc"] == Limits(requestsPerMinute: 10))
        #expect(policy.endUserLimits["vip"] == Limits(requestsPerMinute: 100))
        #expect(policy.endUserLimits["abuser-7"] == Limits(dailySpend: Cost(usd: 1)))
        #expect(policy.blockedEndUsers == ["abuser-7"])
        #expect(policy.defaultLimits == Limits(requestsPerMinute: 60, requestsPerDay: 1000))
        #expect(policy.timeZone.offset(at: 0) == 19_800 && policy.unpricedModels == .flag)
        #expect(policy.services["shop/checkout"]?.keylessAllowed == true)
        #expect(configuration.catalog.alias(named: "a")?.maxOutputTokens == 512)
        #expect(policy.teams["ml"]?.models.denied == ["a"])
    }

    @Test("bad policies are refused with the path to the fault, never a secret")
    func refusals() {
        #expect(
            refusal("sluice_policy:\n  end_users: {u: {blocked: yes please}}\n")
                == "sluice_policy.end_users.\"u\".blocked must be true or false")
        let hash = KeyHasher(pepper: Secret("p")).hash("k").encoded
        #expect(
            refusal("sluice_policy:\n  teams: {t: {}}\n  keys:\n    - {id: x, hash: \"\(hash)\", team: t}\n")?
                .contains("key_pepper must be set") == true)
        #expect(
            refusal(
                "sluice_policy:\n  key_pepper: 0123456789abcdefXX\n  keys:\n    - {id: x, hash: \"\(hash)\", team: t}\n"
            )?
            .contains("sluice_policy.keys.\"x\".team: team \"t\" does not exist") == true)
        // A typo in a deny list would leave the intended model allowed: refused, not warned.
        #expect(
            refusal("sluice_policy:\n  teams: {t: {denied_models: [b]}}\n")?.contains(
                "denied_models: \"b\" is not a model") == true)
        #expect(refusal("sluice_policy:\n  keys:\n    - {id: x, team: t}\n")?.contains("hash is missing") == true)
        #expect(refusal("sluice_policy:\n  key_pepper: os.environ/NOPE\n")?.contains("NOPE, which is not set") == true)
        #expect(
            refusal("sluice_policy:\n  teams: {t: {limits: {requests_per_hour: 3}}}\n")?.contains(
                #"limits."requests_per_hour" is not a limit"#) == true)
        #expect(
            refusal("sluice_policy:\n  teams: {t: {limits: {daily_spend_usd: -1}}}\n")?.contains("daily_spend_usd")
                == true)
        #expect(refusal("sluice_policy:\n  time_zone: Mars/Olympus\n")?.contains("sluice_policy.time_zone") == true)
        #expect(refusal("sluice_policy:\n  time_zone: ../../etc/passwd\n")?.contains("is not known here") == true)
        #expect(
            refusal("sluice_policy:\n  prompt_filters: [{name: bad, pattern: '(unclosed'}]\n")?.contains(
                "invalid pattern") == true)
        #expect(
            refusal("sluice_policy:\n  teams: {a: {}}\n  rate_limits: {a: 5}\n")?.contains("both a team and a model")
                == true)
        #expect(refusal("sluice_policy:\n  rate_limits: {x: 5/week}\n")?.contains("unknown period") == true)
        #expect(
            refusal("sluice_policy:\n  services: {checkout: {keyless: allowed}}\n")?.contains("namespace/service")
                == true)
        let secret = "0123456789abcdefSECRET"
        let message =
            refusal("sluice_policy:\n  key_pepper: \(secret)\n  keys:\n    - {id: x, hash: \"\(hash)\", team: t}\n")
            ?? ""
        #expect(!message.contains(secret))
    }

    @Test("guardrails load with their settings; a typo or a dangling scope is refused with its path")
    func guardrails() throws {
        let policy = try load(
            """
            sluice_policy:
              teams: {ml: {}}
              guardrails:
                - name: pii
                  url: https://guard.example:8443/v1/check
                  timeout_ms: 250
                  on_failure: open
                  sample_percent: 25
                  scopes: {teams: [ml], services: [shop/checkout]}
                  credential_ref: PII_TOKEN

            """, environment: ["PII_TOKEN": "guard-secret"]
        ).policy
        let guardrail = try #require(policy.guardrails.first)
        #expect(guardrail.name == "pii" && guardrail.endpoint.description == "https://guard.example:8443/v1/check")
        #expect(guardrail.timeoutMilliseconds == 250 && guardrail.failureMode == .open && guardrail.samplePercent == 25)
        #expect(guardrail.scopes.teams == ["ml"] && guardrail.scopes.services == ["shop/checkout"])
        #expect(guardrail.credential?.reveal() == "guard-secret" && guardrail.unusableReason == nil)
        #expect(!guardrail.samples(roll: 25) && guardrail.samples(roll: 24.9))

        #expect(
            refusal("sluice_policy:\n  guardrails:\n    - {name: g, url: 'http://127.0.0.1:1/g', timeout: 5}\n")?
                .contains("sluice_policy.guardrails[0]") == true)
        #expect(
            refusal(
                "sluice_policy:\n  guardrails:\n    - {name: g, url: 'http://127.0.0.1:1/g', scopes: {teams: [ml]}}\n")?
                .contains(#"team "ml" does not exist"#) == true)
        #expect(
            refusal("sluice_policy:\n  guardrails:\n    - {name: g, url: 'gopher://x/g'}\n")?
                .contains(#"guardrails."g".url"#) == true)
        #expect(refusal("sluice_policy:\n  guardrails:\n    - {name: g}\n")?.contains("needs a name and a url") == true)
    }

    @Test("pass-throughs load; a path Sluice does not know, a missing scope or a dangling alias is refused")
    func passThroughs() throws {
        let policy = try load(
            """
            sluice_policy:
              teams: {ml: {}}
              pass_through:
                - {name: files, paths: [/v1/files, /v1/batches], alias: a, scopes: {teams: [ml]}}
                - {name: images, paths: [/v1/images/generations], methods: [POST], alias: a, scopes: {services: ["*"]}}

            """
        ).policy
        #expect(policy.passThroughs.map(\.name) == ["files", "images"])
        #expect(policy.passThroughs[0].methods == ["GET", "POST", "DELETE"])
        #expect(policy.passThroughs[1].methods == ["POST"])
        #expect(policy.passThroughs[0].covers(method: "GET", path: "/v1/files/file-1/content"))
        #expect(!policy.passThroughs[0].covers(method: "GET", path: "/v1/filesystem"))

        func refused(_ entry: String) -> String? {
            refusal("sluice_policy:\n  teams: {ml: {}}\n  pass_through:\n    - \(entry)\n")
        }
        #expect(
            refused("{name: p, paths: [/v1/chat], alias: a, scopes: {teams: [ml]}}")?
                .contains("is not below a provider endpoint Sluice knows") == true)
        #expect(
            refused("{name: p, paths: [/v1/files/../chat/completions], alias: a, scopes: {teams: [ml]}}")?
                .contains("is not a plain path") == true)
        #expect(
            refused("{name: p, paths: [/v1/files], alias: a, scopes: {}}")?.contains("must name the callers") == true)
        #expect(
            refused("{name: p, paths: [/v1/files], alias: gpt, scopes: {teams: [ml]}}")?
                .contains(#"pass_through."p".alias: "gpt" is not a model"#) == true)
        #expect(
            refused("{name: p, paths: [/v1/files], alias: a, methods: [TRACE], scopes: {teams: [ml]}}")?
                .contains("methods") == true)
        #expect(
            refused("{name: p, paths: [/v1/files, /v1/messages/batches], alias: a, scopes: {teams: [ml]}}")?
                .contains("mix providers") == true)
        #expect(
            refused("{name: p, paths: [/v1/messages/batches], alias: a, scopes: {teams: [ml]}}")?
                .contains("has no anthropic deployment") == true)
        #expect(
            refused("{name: p, paths: [/openai/deployments/x], alias: a, scopes: {teams: [ml]}}")?
                .contains("cannot be passed through") == true)
        #expect(refused("{name: p, paths: [/v1/files], alias: a}")?.contains("needs a name, paths") == true)
    }

    @Test("trusted_identity is strict: sources, JWKS, claims and workload maps name their path")
    func trustedIdentitySettings() {
        func refused(_ section: String) -> String? {
            do {
                _ = try ConfigLoader(environment: [:]).load(
                    yaml: Self.catalog + "sluice_settings:\n  trusted_identity:\n" + section)
                return nil
            } catch {
                return error.message
            }
        }
        #expect(
            refused("    xfcc: {trust_domain: cluster.local, workloads: {a/b: {team: t}}}\n")?
                .contains("sources") == true)
        #expect(
            refused("    sources: [10.0.0.0/33]\n    xfcc: {trust_domain: x, workloads: {a/b: {team: t}}}\n")?
                .contains("sources[0]") == true)
        #expect(refused("    sources: [\"::1/128\"]\n")?.contains("needs xfcc, jwt or both") == true)
        #expect(
            refused("    sources: [\"::1/128\"]\n    xfcc: {trust_domain: x, workload: {a/b: {team: t}}}\n")?
                .contains(#"did you mean "workloads"?"#) == true)
        #expect(
            refused("    sources: [\"::1/128\"]\n    xfcc: {trust_domain: x, workloads: {Bad/b: {team: t}}}\n")?
                .contains("namespace/service-account") == true)
        #expect(
            refused("    sources: [\"::1/128\"]\n    jwt: {jwks_file: /nonexistent, issuer: i}\n")?
                .contains("needs jwks_file or jwks_url, issuer and audience") == true)
    }

    @Test("a named IANA zone is read from the system's zoneinfo")
    func namedZone() throws {
        let policy = try load("sluice_policy:\n  time_zone: Europe/Berlin\n").policy
        #expect(policy.timeZone.name == "Europe/Berlin" && policy.timeZone.offset(at: 0) == 3600)
    }

    @Test("without sluice_policy the agent runs open, and says so")
    func openPolicy() throws {
        let configuration = try ConfigLoader(environment: [:]).load(yaml: Self.catalog)
        #expect(configuration.policy.services["*"]?.keylessAllowed == true)
        #expect(configuration.warnings.contains { $0.contains("no sluice_policy") })
    }
}
