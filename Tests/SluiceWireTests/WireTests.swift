import Crypto
import Foundation
import SluicePolicy
import SluiceWire
import Testing

@Suite("Wire: signed bundles, usage batches, document → policy")
struct WireTests {
    static let pepper = Secret("wire-test-pepper-0123456789")

    static func document() -> PolicyDocument {
        let hasher = KeyHasher(pepper: pepper)
        return PolicyDocument(
            version: 42, issuedAt: 1_795_435_200,
            models: [
                ModelDocument(
                    alias: "gpt-4o-mini",
                    deployments: [
                        DeploymentDocument(
                            apiBase: "https://api.openai.com/v1", upstreamModel: "gpt-4o-mini",
                            credentialRef: "OPENAI_API_KEY")
                    ],
                    inputCostPerToken: 0.00000015, outputCostPerToken: 0.0000006, maxOutputTokens: 16384,
                    limits: LimitsDocument(tokensPerMinute: 1_000_000)),
                ModelDocument(
                    alias: "claude",
                    deployments: [
                        DeploymentDocument(
                            provider: "bedrock", apiBase: "https://bedrock-runtime.us-east-1.amazonaws.com",
                            upstreamModel: "anthropic.claude-sonnet-4")
                    ]),
            ],
            keys: [
                KeyDocument(
                    id: "ci", hash: hasher.hash("sk-sluice-new").encoded,
                    previousHash: hasher.hash("sk-sluice-old").encoded,
                    previousHashExpiresAt: 1_795_435_260, team: "ml", metadata: ["owner": "alice"],
                    limits: LimitsDocument(requestsPerMinute: 60, monthlySpendUSD: 200))
            ],
            teams: [
                TeamDocument(
                    name: "ml", deniedModels: ["claude"],
                    promptFilters: [PromptFilterDocument(name: "ssn", pattern: #"\d{3}-\d{2}-\d{4}"#)])
            ],
            services: [ServiceDocument(name: "shop/checkout", keyless: true)],
            settings: SettingsDocument(onlyAllowModels: ["gpt-4o-mini"], timeZone: "UTC"),
            exhausted: [ExhaustedScope(kind: "team", name: "ml", limit: "daily_spend_usd", until: 1_795_478_400)])
    }

    static let context = PolicyDocument.LocalContext(
        keyPepper: pepper, credential: { $0 == "OPENAI_API_KEY" ? Secret("sk-provider") : nil },
        timeZone: { TimeZoneRules(fixedOffset: $0) })

    @Test("a signed bundle verifies, and any change to payload or key is refused")
    func signing() throws {
        let key = Curve25519.Signing.PrivateKey()
        let bundle = try SignedBundle.sign(Self.document(), with: key)
        #expect(try bundle.verified(with: key.publicKey) == Self.document())
        var tampered = bundle
        var bytes = try #require(Data(base64Encoded: bundle.payload))
        bytes[bytes.count / 2] ^= 0x01
        tampered.payload = bytes.base64EncodedString()
        #expect(throws: WireError.self) { try tampered.verified(with: key.publicKey) }
        let stranger = Curve25519.Signing.PrivateKey()
        #expect(throws: WireError.self) { try bundle.verified(with: stranger.publicKey) }
        var forged = try SignedBundle.sign(Self.document(), with: stranger)
        forged.keyID = bundle.keyID  // claims the right key id, but the signature is a stranger's
        #expect(throws: WireError.self) { try forged.verified(with: key.publicKey) }
        // Equal documents are equal bytes (sorted keys), so a version's payload is stable.
        #expect(try SignedBundle.sign(Self.document(), with: key).payload == bundle.payload)
    }

    @Test("a document becomes the engine's policy; unknown providers are skipped and reported")
    func conversion() throws {
        let (policy, warnings) = try Self.document().policy(in: Self.context)
        #expect(policy.version == "42" && policy.catalog.names == ["gpt-4o-mini"])
        #expect(warnings.count == 1 && warnings[0].contains("bedrock"))
        #expect(policy.catalog.alias(named: "gpt-4o-mini")?.deployments[0].credential.reveal() == "sk-provider")
        #expect(policy.keys[0].limits == Limits(requestsPerMinute: 60, monthlySpend: Cost(usd: 200)))
        #expect(policy.exhausted[Scope(.team, "ml")] == ExhaustedBudget(limit: .dailySpend, until: 1_795_478_400))
        #expect(policy.modelLimits["gpt-4o-mini"] == Limits(tokensPerMinute: 1_000_000))

        let engine = try PolicyEngine(policy: policy, serviceName: "shop/checkout", limiter: Limiter())
        let now: Int64 = 1_795_435_200 * 1_000_000_000
        // The old secret works during its grace period and not after; the new one works.
        #expect(engine.authenticate(presentedKey: "sk-sluice-old", now: now).successValue?.keyID == "ci")
        #expect(
            engine.authenticate(presentedKey: "sk-sluice-old", now: now + 60_000_000_000).failureValue?.reason
                == .expiredKey)
        let caller = try #require(engine.authenticate(presentedKey: "sk-sluice-new", now: now).successValue)
        // The team's budget is spent fleet-wide: refused here whatever the local counters say.
        let alias = try #require(engine.authorize(caller, model: "gpt-4o-mini").successValue)
        let denial = try #require(
            engine.admit(caller, alias: alias, endUser: nil, promptTokens: 1, maxOutputTokens: 1, now: now).failureValue
        )
        #expect(
            denial.reason == .budgetExceeded && denial.rule.contains("(fleet)") && denial.retryAfterSeconds == 43_200)
    }

    @Test("router settings travel in the bundle; fallbacks to aliases this agent skipped are dropped with a warning")
    func router() throws {
        var document = Self.document()
        document.settings.router = RouterDocument(
            routingStrategy: "least-busy", numRetries: 2, cooldownTime: 12,
            fallbacks: ["gpt-4o-mini": ["claude"]])
        let decoded = try JSONDecoder().decode(PolicyDocument.self, from: try JSONEncoder().encode(document))
        #expect(decoded.settings.router == document.settings.router)
        let (policy, warnings) = try decoded.policy(in: Self.context)
        #expect(
            policy.catalog.router.strategy == .leastBusy && policy.catalog.router.numRetries == 2
                && policy.catalog.router.cooldownSeconds == 12)
        #expect(policy.catalog.router.fallbacks == ["gpt-4o-mini": []])
        #expect(warnings.contains { $0.contains("falls back to claude") })
        document.settings.router = RouterDocument(routingStrategy: "cost-based")
        #expect(throws: WireError.self) { try document.policy(in: Self.context) }
        document.settings.router = RouterDocument(numRetries: 99)
        #expect(throws: WireError.self) { try document.policy(in: Self.context) }
    }

    @Test("a bad entry disables itself and never widens access; only settings refuse the whole document")
    func refusals() throws {
        let now: Int64 = 1_795_435_200 * 1_000_000_000
        // A credential this agent lacks leaves the alias out here, answered 503 naming the
        // reference; the rest of the policy is in force.
        var missingCredential = Self.document()
        missingCredential.models[0].deployments[0].credentialRef = "NOT_SET"
        let withoutCredential = try missingCredential.compile(in: Self.context)
        #expect(withoutCredential.missingCredentials == ["NOT_SET"] && withoutCredential.disabled.isEmpty)
        let engine = try PolicyEngine(
            policy: withoutCredential.policy, serviceName: "shop/checkout", limiter: Limiter())
        let caller = try #require(engine.authenticate(presentedKey: "sk-sluice-new", now: now).successValue)
        let denial = try #require(engine.authorize(caller, model: "gpt-4o-mini").failureValue)
        #expect(denial.reason == .credentialUnavailable && denial.status == 503 && denial.message.contains("NOT_SET"))
        #expect(engine.authorize(caller, model: "nothing").failureValue?.reason == .unknownModel)

        // A key with a bad limit, or whose team is missing, opens nothing: its secret is unknown.
        for broken in [
            { (document: inout PolicyDocument) in document.keys[0].limits = LimitsDocument(requestsPerMinute: 0) },
            { (document: inout PolicyDocument) in document.keys[0].team = "nobody" },
        ] {
            var document = Self.document()
            broken(&document)
            let compiled = try document.compile(in: Self.context)
            #expect(compiled.disabled.count == 1 && compiled.disabled[0].problem.hasPrefix("keys.\"ci\""))
            // A service that is not keyless: the secret must not identify anyone.
            let engine = try PolicyEngine(policy: compiled.policy, serviceName: "other/service", limiter: Limiter())
            #expect(engine.authenticate(presentedKey: "sk-sluice-new", now: now).successValue == nil)
        }

        // A team that cannot compile takes its keys with it, rather than serving them without its rules.
        var badTeam = Self.document()
        badTeam.teams[0].promptFilters = [PromptFilterDocument(name: "broken", pattern: "(")]
        let teamless = try badTeam.compile(in: Self.context)
        #expect(teamless.policy.teams.isEmpty && teamless.policy.keys.isEmpty && teamless.disabled.count == 2)

        // A service whose limits cannot compile refuses every call instead of serving unlimited.
        var badService = Self.document()
        badService.services[0].limits = LimitsDocument(requestsPerMinute: -1)
        let closed = try badService.compile(in: Self.context)
        #expect(closed.policy.services["shop/checkout"]?.models.allowed == [])
        #expect(closed.policy.services["shop/checkout"]?.keylessAllowed == false)

        // Settings belong to no entry: a document with bad settings is refused whole.
        var badZone = Self.document()
        badZone.settings.timeZone = "Mars/Olympus"
        #expect(throws: WireError.self) { try badZone.compile(in: Self.context) }
        var badSpool = Self.document()
        badSpool.settings.usageSpoolFailure = "maybe"
        #expect(throws: WireError.self) { try badSpool.compile(in: Self.context) }
    }

    @Test(
        "a bundle scoped to a service holds only the aliases it may call, every key, and fallbacks among what it holds")
    func scoped() {
        let deployment = DeploymentDocument(apiBase: "https://h/v1", upstreamModel: "m")
        var settings = SettingsDocument(onlyAllowModels: ["a", "b", "c"])
        settings.router = RouterDocument(
            fallbacks: ["a": ["b", "c"], "c": ["a"]], contextWindowFallbacks: ["a": ["c"]])
        let document = PolicyDocument(
            version: 3, issuedAt: 0,
            models: ["a", "b", "c", "d"].map { ModelDocument(alias: $0, deployments: [deployment]) },
            keys: [KeyDocument(id: "k", hash: "h", team: "t")], teams: [TeamDocument(name: "t", allowedModels: ["c"])],
            services: [
                ServiceDocument(name: "shop/web", allowedModels: ["a", "b", "d"], deniedModels: ["b"]),
                ServiceDocument(name: "*", keyless: true),
            ],
            settings: settings)
        let web = document.scoped(toService: "shop/web")
        // d is not in only_allow_models, b is denied to the service, c is outside its allowlist.
        #expect(web.models.map(\.alias) == ["a"])
        #expect(
            web.services.map(\.name) == ["shop/web"] && web.keys.map(\.id) == ["k"] && web.teams.map(\.name) == ["t"])
        #expect(web.settings.router?.fallbacks == [:] && web.settings.router?.contextWindowFallbacks == [:])
        let other = document.scoped(toService: "ops/batch")
        #expect(other.models.map(\.alias) == ["a", "b", "c"] && other.services.map(\.name) == ["*"])
        #expect(other.settings.router?.fallbacks == ["a": ["b", "c"], "c": ["a"]])
        #expect(other.version == document.version && other.settings.onlyAllowModels == settings.onlyAllowModels)
    }

    @Test("scoping reads access groups as their aliases, and drops group aliases to what it withholds")
    func scopedGroups() {
        let deployment = DeploymentDocument(apiBase: "https://h/v1", upstreamModel: "m")
        var models = ["small", "large", "other"].map { ModelDocument(alias: $0, deployments: [deployment]) }
        models[0].accessGroups = ["beta"]
        models[1].accessGroups = ["beta", "big"]
        var settings = SettingsDocument()
        var router = RouterDocument()
        router.modelGroupAlias = ["gpt-4": "large", "legacy": "other"]
        settings.router = router
        let document = PolicyDocument(
            version: 1, issuedAt: 0, models: models,
            services: [ServiceDocument(name: "shop/web", allowedModels: ["beta"], deniedModels: ["big"])],
            settings: settings)
        let web = document.scoped(toService: "shop/web")
        #expect(web.models.map(\.alias) == ["small"], "beta minus big")
        #expect(web.settings.router?.modelGroupAlias == [:])
        let compiled = try? web.compile(in: Self.context)
        #expect(compiled?.disabled.isEmpty == true, "\(compiled?.disabled ?? [])")
    }

    @Test("usage batches round-trip and are bounded")
    func usage() throws {
        let batch = UsageBatch(
            agentID: "shop/checkout/pod-1", epoch: "e1", sequence: 7,
            deltas: [
                UsageDelta(
                    hour: 1_795_435_200, team: "ml", service: "shop/checkout", keyID: "ci", model: "gpt-4o-mini",
                    requests: 3, promptTokens: 90, completionTokens: 30, costPicoUSD: 31_500_000,
                    denials: ["rate_limit_exceeded": 1])
            ])
        let bytes = try WireCoding.encoder.encode(batch)
        #expect(String(decoding: bytes, as: UTF8.self).contains(#""cost_pico_usd":31500000"#))
        #expect(try WireCoding.decoder.decode(UsageBatch.self, from: bytes) == batch)
        try batch.validate()
        var bad = batch
        bad.deltas[0].hour += 1
        #expect(throws: WireError.self) { try bad.validate() }
        bad = batch
        bad.sequence = 0
        #expect(throws: WireError.self) { try bad.validate() }
        bad = batch
        bad.deltas[0].requests = -1
        #expect(throws: WireError.self) { try bad.validate() }
        // Without a renewal the batch is written as before (this is what the spool holds);
        // with one it round-trips, and so does the answer's.
        #expect(!String(decoding: bytes, as: UTF8.self).contains("leases"))
        var carrying = batch
        carrying.leases = LeaseRequest(
            instance: "e1",
            demands: [
                LeaseDemand(
                    scopeKind: "team", scope: "ml", limit: "requests_per_minute", perMinute: 12, limitValue: 600)
            ])
        let carried = try WireCoding.encoder.encode(carrying)
        #expect(try WireCoding.decoder.decode(UsageBatch.self, from: carried) == carrying)
        let ack = UsageAck(
            agentID: batch.agentID, epoch: "e1", acknowledgedSequence: 7, duplicate: false,
            leases: LeaseAnswer(grants: [
                LeaseGrant(
                    scopeKind: "team", scope: "ml", limit: "requests_per_minute", perMinute: 600, validSeconds: 15)
            ]))
        #expect(try WireCoding.decoder.decode(UsageAck.self, from: WireCoding.encoder.encode(ack)) == ack)
    }

    @Test("cache figures travel from spool line to batch; an older agent's batch without them still decodes")
    func cacheFigures() throws {
        let record = UsageRecord(
            hour: 1_795_435_200, service: "shop/checkout", model: "claude", requests: 1, promptTokens: 1000,
            completionTokens: 5, cachedPromptTokens: 600, cacheCreationTokens: 200, costPicoUSD: 1_605_000_000)
        let line = record.jsonLine
        #expect(String(decoding: line, as: UTF8.self).contains(#""pc":600,"pw":200"#))
        #expect(try WireCoding.decoder.decode(UsageRecord.self, from: Data(line.dropLast())) == record)
        let deltas = UsageRecord.deltas([record, record])
        #expect(deltas.count == 1 && deltas[0].cachedPromptTokens == 1200 && deltas[0].cacheCreationTokens == 400)

        let older = Array(
            (#"{"hour":1795435200,"service":"s","model":"m","requests":1,"prompt_tokens":9,"#
                + #""completion_tokens":1,"cost_pico_usd":5,"denials":{}}"#).utf8)
        let decoded = try WireCoding.decoder.decode(UsageDelta.self, from: Data(older))
        #expect(decoded.cachedPromptTokens == 0 && decoded.cacheCreationTokens == 0 && decoded.promptTokens == 9)

        // Parts above their whole are refused: they could only be a broken or hostile agent.
        var batch = UsageBatch(agentID: "a", epoch: "e", sequence: 1, deltas: deltas)
        try batch.validate()
        batch.deltas[0].cachedPromptTokens = 2001
        #expect(throws: WireError.self) { try batch.validate() }
        batch.deltas[0].cachedPromptTokens = 1500
        batch.deltas[0].cacheCreationTokens = 600
        #expect(throws: WireError.self) { try batch.validate() }
    }

    @Test("refusals carry their rule from spool line to batch, bounded per cell; reasons cannot pose as rules")
    func denialRules() throws {
        let rule = #"team "ml" requests_per_minute"#
        let refused = UsageRecord(
            hour: 1_795_435_200, team: "ml", service: "shop/checkout", model: "m", requests: 0,
            denial: "rate_limit_exceeded", denialRule: rule)
        let line = refused.jsonLine
        #expect(String(decoding: line, as: UTF8.self).contains(#""dr":"team \"ml\" requests_per_minute""#))
        #expect(try WireCoding.decoder.decode(UsageRecord.self, from: Data(line.dropLast())) == refused)
        // 70 distinct rules in one cell: 64 are kept by rule; every refusal keeps its reason.
        var records = [refused, refused]
        for index in 0..<70 {
            var other = refused
            other.denialRule = "key \"k\(index)\" requests_per_minute"
            records.append(other)
        }
        let delta = try #require(UsageRecord.deltas(records).first)
        #expect(delta.denials == ["rate_limit_exceeded": 72])
        #expect(delta.denialRules.count == 64 && delta.denialRules[rule] == 2)
        // A delta without rules is written as before; one with them round-trips.
        var plain = delta
        plain.denialRules = [:]
        #expect(!String(decoding: try WireCoding.encoder.encode(plain), as: UTF8.self).contains("denial_rules"))
        #expect(try WireCoding.decoder.decode(UsageDelta.self, from: WireCoding.encoder.encode(delta)) == delta)
        var batch = UsageBatch(agentID: "a", epoch: "e", sequence: 1, deltas: [delta])
        try batch.validate()
        batch.deltas[0].denials["rule:team \"ml\" requests_per_minute"] = 1
        #expect(throws: WireError.self) { try batch.validate() }
        batch.deltas[0] = delta
        batch.deltas[0].denialRules[String(repeating: "r", count: 201)] = 1
        #expect(throws: WireError.self) { try batch.validate() }
    }

    @Test("cache and reasoning prices compile; alone, or mis-entered per 1M, they disable only their alias")
    func cachePrices() throws {
        var document = Self.document()
        document.models[0].cacheReadInputTokenCost = 0.000000075
        document.models[0].outputCostPerReasoningToken = 0.000001
        let compiled = try document.compile(in: Self.context)
        let price = try #require(compiled.policy.catalog.alias(named: document.models[0].alias)?.price)
        #expect(price.cacheReadPicoUSDPerToken == 75_000 && price.reasoningPicoUSDPerToken == 1_000_000)
        #expect(price.cacheCreationPicoUSDPerToken == price.inputPicoUSDPerToken)

        var alone = Self.document()
        alone.models[0].inputCostPerToken = nil
        alone.models[0].outputCostPerToken = nil
        alone.models[0].cacheReadInputTokenCost = 0.000000075
        let refused = try alone.compile(in: Self.context)
        #expect(refused.policy.catalog.alias(named: alone.models[0].alias) == nil)
        #expect(
            refused.disabled.map(\.problem).contains {
                $0.contains("cache_read_input_token_cost needs input_cost_per_token")
            })

        var perMillion = Self.document()
        perMillion.models[0].cacheCreationInputTokenCost = 3.75
        let mistaken = try perMillion.compile(in: Self.context)
        #expect(mistaken.policy.catalog.alias(named: perMillion.models[0].alias) == nil)
        #expect(mistaken.disabled.map(\.problem).contains { $0.contains("3.75e-06 USD per token") })
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }

    var successValue: Success? {
        if case .success(let success) = self { return success }
        return nil
    }
}
