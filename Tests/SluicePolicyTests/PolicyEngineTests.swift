import SluicePolicy
import Testing

@Suite("Policy engine: identity and model rules")
struct PolicyEngineTests {
    @Test("a valid key is recognised by its keyed hash; others get 401 with the right reason")
    func authentication() throws {
        let engine = try Fixture.engine(
            Fixture.policy(keys: [
                Fixture.key("live"), Fixture.key("gone", revoked: true),
                Fixture.key("old", expiresAt: Fixture.noon / 1_000_000_000),
            ]))
        let caller = try #require(
            engine.authenticate(presentedKey: Fixture.plaintext("live"), now: Fixture.noon).successValue)
        #expect(caller.keyID == "live" && caller.team == "ml" && caller.service == Fixture.service)
        #expect(
            engine.authenticate(presentedKey: Fixture.plaintext("gone"), now: Fixture.noon).failureValue?.reason
                == .revokedKey)
        // Expiry is inclusive of its instant; one second earlier the key still works.
        #expect(
            engine.authenticate(presentedKey: Fixture.plaintext("old"), now: Fixture.noon).failureValue?.reason
                == .expiredKey)
        #expect(
            engine.authenticate(presentedKey: Fixture.plaintext("old"), now: Fixture.noon - 1_000_000_000).successValue
                != nil)
        let wrong = try #require(
            engine.authenticate(presentedKey: "sk-sluice-not-a-key", now: Fixture.noon).failureValue)
        #expect(wrong.reason == .invalidKey && wrong.status == 401)
        #expect(!wrong.message.contains("sk-sluice"))
        #expect(engine.authenticate(presentedKey: nil, now: Fixture.noon).failureValue?.reason == .missingKey)
    }

    @Test("keyless callers are the service itself, only where the service allows it")
    func keyless() throws {
        let allowed = try Fixture.engine(
            Fixture.policy(service: ServicePolicy(name: Fixture.service, keylessAllowed: true)))
        let caller = try #require(allowed.authenticate(presentedKey: nil, now: Fixture.noon).successValue)
        #expect(caller.keyID == nil && caller.service == Fixture.service)
        // A wildcard entry covers services that are not listed.
        let wildcard = try Fixture.engine(Fixture.policy(service: ServicePolicy(name: "*", keylessAllowed: true)))
        #expect(wildcard.authenticate(presentedKey: nil, now: Fixture.noon).successValue != nil)
        // With no keys in the policy at all, a presented token (SDKs insist on one) is ignored.
        let open = try PolicyEngine(
            policy: .open(catalog: Fixture.catalog()), serviceName: Fixture.service, limiter: Limiter())
        #expect(open.authenticate(presentedKey: "sk-anything", now: Fixture.noon).successValue?.keyID == nil)
    }

    @Test("key hashes round-trip through their text form; generated keys are well-formed")
    func keyEncoding() {
        let hash = Fixture.hasher.hash("sk-sluice-abc")
        #expect(KeyHash(encoded: hash.encoded) == hash)
        #expect(KeyHash(encoded: "hmac-sha256:zz") == nil)
        #expect(Fixture.hasher.hash("sk-sluice-abd") != hash)
        var generator = SystemRandomNumberGenerator()
        let keys = (0..<200).map { _ in VirtualKey.generate(using: &generator) }
        #expect(Set(keys).count == 200)
        for key in keys {
            #expect(key.hasPrefix("sk-sluice-") && key.count == 42)
            #expect(key.dropFirst(10).allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
        }
    }

    @Test("the policy refuses dangling references")
    func validation() {
        #expect(throws: PolicyError.self) { try Fixture.engine(Fixture.policy(keys: [Fixture.key("x", team: "nope")])) }
        #expect(throws: PolicyError.self) { try Fixture.engine(Fixture.policy(keys: [Fixture.key("x", project: "p")])) }
        #expect(throws: PolicyError.self) {
            try Fixture.engine(Fixture.policy(keys: [Fixture.key("x"), Fixture.key("x")]))
        }
        #expect(throws: PolicyError.self) {
            try Fixture.engine(Fixture.policy(projects: [ProjectPolicy(name: "p", team: "other")]))
        }
        #expect(throws: PolicyError.self) { try Fixture.engine(Fixture.policy { $0.keyPepper = Secret("short") }) }
    }

    /// Every combination of allow and deny lists on key, project, team and service, and a
    /// global allowlist, against a plain-words oracle: 8⁴ × 3 policies × 2 aliases.
    @Test("allow and deny lists: a deny anywhere beats any allow (24,576 cases)")
    func modelRulesTable() throws {
        let options: [ModelRules] = [
            .any, ModelRules(allowed: ["a"]), ModelRules(allowed: ["b"]), ModelRules(allowed: ["a", "b"]),
            ModelRules(denied: ["a"]), ModelRules(allowed: ["a"], denied: ["a"]),
            ModelRules(allowed: ["b"], denied: ["a"]),
            ModelRules(allowed: ["a", "b"], denied: ["b"]),
        ]
        let globals: [Set<String>?] = [nil, ["a"], ["a", "b"]]
        var cases = 0
        for keyRules in options {
            for projectRules in options {
                for teamRules in options {
                    for serviceRules in options {
                        for global in globals {
                            let policy = Fixture.policy(
                                keys: [Fixture.key("k", project: "p", models: keyRules)],
                                teams: [TeamPolicy(name: "ml", models: teamRules)],
                                projects: [ProjectPolicy(name: "p", team: "ml", models: projectRules)],
                                service: ServicePolicy(name: Fixture.service, models: serviceRules)
                            ) { $0.onlyAllowModels = global }
                            let engine = try Fixture.engine(policy)
                            let caller = try #require(
                                engine.authenticate(presentedKey: Fixture.plaintext("k"), now: Fixture.noon)
                                    .successValue)
                            let scopes = [keyRules, projectRules, teamRules, serviceRules]
                            for model in ["a", "b"] {
                                let denied = scopes.contains { $0.denied.contains(model) }
                                let allowed =
                                    !denied && scopes.allSatisfy { $0.allowed?.contains(model) ?? true }
                                    && (global?.contains(model) ?? true)
                                let result = engine.authorize(caller, model: model)
                                #expect((result.successValue != nil) == allowed)
                                if let denial = result.failureValue {
                                    #expect(denial.status == 403)
                                    #expect(
                                        denial.rule.hasSuffix(denied ? "denied_models" : "allowed_models")
                                            || denial.rule == "only_allow_models")
                                }
                                cases += 1
                            }
                        }
                    }
                }
            }
        }
        #expect(cases == 24_576)
    }

    @Test("an unknown alias is 404 whatever the rules say")
    func unknownModel() throws {
        let engine = try Fixture.engine(Fixture.policy())
        let caller = try #require(
            engine.authenticate(presentedKey: Fixture.plaintext("k1"), now: Fixture.noon).successValue)
        let denial = try #require(engine.authorize(caller, model: "gpt-nope").failureValue)
        #expect(denial.status == 404 && denial.reason == .unknownModel)
    }

    @Test("prompt filters name the filter, never the matched text")
    func promptFilters() throws {
        let ssn = try PromptFilter(name: "ssn", pattern: #"\b\d{3}-\d{2}-\d{4}\b"#)
        let secret = try PromptFilter(name: "secret-word", pattern: "(?i)project\\s+nightingale")
        let engine = try Fixture.engine(
            Fixture.policy(teams: [TeamPolicy(name: "ml", promptFilters: [secret])]) { $0.promptFilters = [ssn] })
        let caller = try #require(
            engine.authenticate(presentedKey: Fixture.plaintext("k1"), now: Fixture.noon).successValue)
        #expect(engine.hasPromptFilters(for: caller))
        // With no filters anywhere the message text is never extracted.
        let unfiltered = try Fixture.engine(Fixture.policy())
        #expect(
            !unfiltered.hasPromptFilters(
                for: try #require(
                    unfiltered.authenticate(presentedKey: Fixture.plaintext("k1"), now: Fixture.noon).successValue)))
        let keyless = try Fixture.engine(
            Fixture.policy(service: ServicePolicy(name: Fixture.service, keylessAllowed: true)))
        #expect(
            !keyless.hasPromptFilters(
                for: try #require(keyless.authenticate(presentedKey: nil, now: Fixture.noon).successValue)))
        #expect(engine.screen(caller, texts: ["hello", "what is 2+2"]) == nil)
        let global = try #require(engine.screen(caller, texts: ["my ssn is 123-45-6789"]))
        #expect(global.status == 403 && global.rule == "filter \"ssn\"" && !global.message.contains("123"))
        let team = try #require(engine.screen(caller, texts: ["tell me about PROJECT  Nightingale"]))
        #expect(team.message.contains("team \"ml\"") && team.message.contains("secret-word"))
        // Filters are named in policy order (global first), whichever text each matched.
        let both = try #require(
            engine.screen(caller, texts: ["tell me about PROJECT  Nightingale", "my ssn is 123-45-6789"]))
        #expect(both.rule == "filter \"ssn\"")
        #expect(throws: PolicyError.self) { try PromptFilter(name: "bad", pattern: "(unclosed") }
    }

    @Test("unpriced models are refused under a budget, or always, as configured")
    func unpriced() throws {
        var policy = Fixture.policy(keys: [Fixture.key("k1", limits: Limits(dailySpend: Cost(usd: 5)))])
        policy.catalog = Fixture.catalog(unpriced: ["free"])
        let budgeted = try Fixture.engine(policy)
        let caller = try #require(
            budgeted.authenticate(presentedKey: Fixture.plaintext("k1"), now: Fixture.noon).successValue)
        let alias = try #require(budgeted.authorize(caller, model: "free").successValue)
        #expect(
            budgeted.admit(caller, alias: alias, endUser: nil, promptTokens: 10, maxOutputTokens: 10, now: Fixture.noon)
                .failureValue?.reason == .priceMissing)

        policy.keys = [Fixture.key("k1")]
        let unbudgeted = try Fixture.engine(policy)
        let admission = try #require(
            unbudgeted.admit(
                caller, alias: alias, endUser: nil, promptTokens: 10, maxOutputTokens: 10, now: Fixture.noon
            ).successValue)
        #expect(admission.priceMissing)

        policy.unpricedModels = .deny
        #expect(
            try Fixture.engine(policy).admit(
                caller, alias: alias, endUser: nil, promptTokens: 10, maxOutputTokens: 10, now: Fixture.noon
            )
            .failureValue?.status == 403)
    }

    @Test("rate shorthand: N, N/min, N/day")
    func rateShorthand() throws {
        #expect(try Limits.parseRate("200") == Limits(requestsPerMinute: 200))
        #expect(try Limits.parseRate("30/min") == Limits(requestsPerMinute: 30))
        #expect(try Limits.parseRate("1000/day") == Limits(requestsPerDay: 1000))
        for bad in ["", "0", "-3", "10/week", "ten", "5/min/day"] {
            #expect(throws: LimitParseError.self) { try Limits.parseRate(bad) }
        }
    }
}
