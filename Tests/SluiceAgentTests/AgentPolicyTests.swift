import Foundation
import Logging
import SluiceAgent
import SluicePolicy
import SluiceTestSupport
import Testing

/// The policy engine through a real agent: every denial status, the headers, the audit
/// line and the metrics, against the mock provider over TLS.
@Suite("Agent policy enforcement")
struct AgentPolicyTests {
    static let pepper = "agent-test-pepper-0123456789"
    static let hasher = KeyHasher(pepper: Secret(pepper))
    static let liveKey = "sk-sluice-LiveKey0000000000000000000000000"
    static let revokedKey = "sk-sluice-RevokedKey000000000000000000000"
    static let expiredKey = "sk-sluice-ExpiredKey000000000000000000000"
    static let budgetKey = "sk-sluice-BudgetKey0000000000000000000000"

    /// A policy with one team, four keys and a tight per-minute limit on the live key.
    static func policy(extraTeam: String = "", liveLimits: String = "requests_per_minute: 3", filters: String = "")
        -> String
    {
        """
        sluice_policy:
          key_pepper: \(pepper)
          prompt_filters:
            - name: card-number
              pattern: '\\b4[0-9]{15}\\b'
        \(filters)
          teams:
            ml:
              denied_models: [forbidden]
        \(extraTeam)
          services:
            shop/checkout:
              keyless: denied
          keys:
            - id: live
              hash: \(hasher.hash(liveKey).encoded)
              team: ml
              metadata: {owner: alice, env: test}
              limits: {\(liveLimits)}
            - id: revoked
              hash: \(hasher.hash(revokedKey).encoded)
              team: ml
              revoked: true
            - id: expired
              hash: \(hasher.hash(expiredKey).encoded)
              team: ml
              expires_at: 2020-01-01
            - id: budget
              hash: \(hasher.hash(budgetKey).encoded)
              team: ml
              limits: {daily_spend_usd: 0.0002}

        """
    }

    static let aliases = ["gpt-test": "mock", "forbidden": "mock", "failing": "mock+status=500"]

    @Test("401 for no key, an unknown key, a revoked key and an expired one; the key never reaches a log")
    func identity() async throws {
        try await AgentHarness.with(aliases: Self.aliases, settings: Self.policy()) { harness in
            let missing = try await harness.chat()
            #expect(
                missing.status == 401 && missing.text.contains("missing_api_key") && missing.text.contains("keyless"))
            let unknown = try await harness.chat(key: "sk-sluice-NotAKey")
            #expect(
                unknown.status == 401 && unknown.text.contains("invalid_api_key") && !unknown.text.contains("NotAKey"))
            #expect(try await harness.chat(key: Self.revokedKey).text.contains("api_key_revoked"))
            #expect(try await harness.chat(key: Self.expiredKey).text.contains("api_key_expired"))
            let viaHeader = try await harness.post(
                #"{"model":"gpt-test","messages":[]}"#, headers: [("X-API-Key", Self.liveKey)])
            #expect(viaHeader.status == 200)
            let lines = await harness.audit.waitForLines(5)
            #expect(!lines.joined().contains("sk-sluice-"))
            let served = try #require(await harness.auditRecords(5).last)
            #expect(served["key_id"] as? String == "live" && served["team"] as? String == "ml")
            #expect(served["service"] as? String == "checkout" && served["namespace"] as? String == "shop")
        }
    }

    @Test("404 for an unknown alias, 403 for a denied one and for a prompt filter match")
    func rules() async throws {
        try await AgentHarness.with(aliases: Self.aliases, settings: Self.policy()) { harness in
            let unknown = try await harness.chat(model: "gpt-nope", key: Self.liveKey)
            #expect(unknown.status == 404 && unknown.text.contains("model_not_found"))
            let denied = try await harness.chat(model: "forbidden", key: Self.liveKey)
            #expect(
                denied.status == 403 && denied.text.contains("model_not_allowed")
                    && denied.text.contains(#"team \"ml\" denied_models"#))
            let filtered = try await harness.chat(key: Self.liveKey, content: "charge 4111111111111111 please")
            #expect(filtered.status == 403 && filtered.text.contains("card-number") && !filtered.text.contains("4111"))
            let lines = await harness.audit.waitForLines(3)
            #expect(!lines.joined().contains("4111"))
            let record = try #require(await harness.auditRecords(3).last)
            #expect(record["rule"] as? String == #"filter "card-number""# && record["status"] as? Int == 403)
            #expect(harness.mock.requests.isEmpty)  // nothing denied went upstream
        }
    }

    @Test("/v1/models asks for the same identity as a call and lists only the aliases that identity may use")
    func modelList() async throws {
        try await AgentHarness.with(aliases: Self.aliases, settings: Self.policy()) { harness in
            func models(key: String?) async throws -> TestResponse {
                let authorization = key.map { "Authorization: Bearer \($0)\r\n" } ?? ""
                return try await harness.send(raw: "GET /v1/models HTTP/1.1\r\nHost: x\r\n\(authorization)\r\n")
            }
            let anonymous = try await models(key: nil)
            #expect(
                anonymous.status == 401 && anonymous.text.contains("missing_api_key")
                    && !anonymous.text.contains("gpt-test"))
            #expect(try await models(key: Self.revokedKey).status == 401)
            let listed = try await models(key: Self.liveKey)
            let ids =
                ((try JSONSerialization.jsonObject(with: Data(listed.body)) as? [String: Any])?["data"]
                as? [[String: Any]])?
                .compactMap { $0["id"] as? String }
            // Team ml denies "forbidden": its keys do not see it.
            #expect(listed.status == 200 && Set(ids ?? []) == ["gpt-test", "failing"] && ids?.count == 2)
            #expect(harness.mock.requests.isEmpty)
        }
    }

    @Test("429 with Retry-After once the per-minute limit is spent; every answer carries x-ratelimit headers")
    func rateLimit() async throws {
        try await AgentHarness.with(aliases: Self.aliases, settings: Self.policy()) { harness in
            let start = ContinuousClock.now
            for expected in [2, 1, 0] {
                let response = try await harness.chat(key: Self.liveKey)
                #expect(response.status == 200)
                #expect(response.header("x-ratelimit-limit-requests") == "3")
                #expect(response.header("x-ratelimit-remaining-requests") == String(expected))
                #expect(response.header("x-ratelimit-reset-requests") != nil)
            }
            let limited = try await harness.chat(key: Self.liveKey)
            #expect(limited.status == 429 && limited.text.contains("rate_limit_exceeded"))
            #expect(limited.text.contains(#"key \"live\" allows 3 requests per minute"#))
            // One request comes back every 20 s, counted in real time from the first call: what
            // has passed since (seconds on a loaded machine) is off the wait, never more.
            let elapsed = Int((ContinuousClock.now - start).components.seconds) + 1
            let retryAfter = try #require(limited.header("retry-after").flatMap { Int($0) })
            #expect((max(1, 20 - elapsed - 1)...20).contains(retryAfter), "\(retryAfter) s after \(elapsed) s")
            #expect(limited.header("x-ratelimit-remaining-requests") == "0")
        }
    }

    @Test("a daily budget holds: calls settle at their real cost and the next one is refused")
    func budget() async throws {
        // Each call's reservation is small (max_tokens 5), but the settled cost is what the
        // mock reports: prompt ≈ 25 tokens at $1e-6 + 8 at $2e-6 ≈ $0.00004. $0.0002 runs out
        // after a handful of calls, and the refusal names the budget.
        try await AgentHarness.with(aliases: Self.aliases, settings: Self.policy()) { harness in
            var served = 0
            var refusal: TestResponse?
            for _ in 0..<20 {
                let response = try await harness.chat(extra: #","max_tokens":5"#, key: Self.budgetKey)
                if response.status == 200 {
                    served += 1
                } else {
                    refusal = response
                    break
                }
            }
            let denied = try #require(refusal)
            #expect(served >= 3 && served <= 6)
            #expect(
                denied.status == 429 && denied.text.contains("budget_exceeded")
                    && denied.text.contains("insufficient_quota"))
            #expect(denied.text.contains(#"key \"budget\""#) && denied.header("retry-after") != nil)
            let costs = await harness.auditRecords(served).compactMap { $0["cost_usd"] as? Double }
            #expect(costs.count == served && costs.reduce(0, +) <= 0.0002 + 1e-12)
        }
    }

    @Test("a failed call gives its reservation back")
    func releaseOnFailure() async throws {
        try await AgentHarness.with(aliases: Self.aliases, settings: Self.policy(liveLimits: "requests_per_day: 1")) {
            harness async throws in
            #expect(try await harness.chat(model: "failing", key: Self.liveKey).status == 500)
            #expect(try await harness.chat(key: Self.liveKey).status == 200)
            #expect(try await harness.chat(key: Self.liveKey).status == 429)
        }
    }

    @Test("the service identity goes upstream as `user` unless the caller named one")
    func userInjection() async throws {
        try await AgentHarness.with(aliases: Self.aliases, settings: Self.policy()) { harness in
            _ = try await harness.chat(key: Self.liveKey)
            _ = try await harness.chat(extra: #","user":"end-user-7""#, key: Self.liveKey)
            await harness.mock.waitForRequests(2)
            let bodies = harness.mock.requests.map { String(decoding: $0.body, as: UTF8.self) }
            #expect(
                bodies[0].hasSuffix(#","user":"shop/checkout","stream_options":{"include_usage":true}}"#)
                    || bodies[0].contains(#""user":"shop/checkout""#))
            #expect(bodies[1].contains(#""user":"end-user-7""#) && !bodies[1].contains("shop/checkout"))
        }
    }

    @Test("rate_limits shorthand binds to teams and end users")
    func shorthand() async throws {
        let settings = Self.policy(filters: "  rate_limits: {default: 1000/day, ml: 200, user_abc: 1}")
        try await AgentHarness.with(aliases: Self.aliases, settings: settings) { harness in
            #expect(try await harness.chat(extra: #","user":"user_abc""#, key: Self.liveKey).status == 200)
            let limited = try await harness.chat(extra: #","user":"user_abc""#, key: Self.liveKey)
            #expect(limited.status == 429 && limited.text.contains(#"user \"user_abc\""#))
            #expect(try await harness.chat(extra: #","user":"someone-else""#, key: Self.liveKey).status == 200)
        }
    }

    @Test("metrics count every decision and report usage, limits and the policy")
    func metrics() async throws {
        try await AgentHarness.with(aliases: Self.aliases, settings: Self.policy()) { harness in
            _ = try await harness.chat(key: Self.liveKey)
            _ = try await harness.chat(model: "forbidden", key: Self.liveKey)
            _ = try await harness.chat()
            _ = await harness.audit.waitForLines(3)
            let text = try await harness.metricsText()
            let service = #"service="shop/checkout","#
            #expect(text.contains(#"sluice_requests_total{\#(service)alias="gpt-test",team="ml",decision="allow"} 1"#))
            #expect(text.contains(#"sluice_denials_total{\#(service)reason="model_not_allowed"} 1"#))
            #expect(text.contains(#"sluice_denials_total{\#(service)reason="missing_api_key"} 1"#))
            #expect(text.contains(#"sluice_tokens_total{\#(service)alias="gpt-test",team="ml",direction="out"} 8"#))
            #expect(text.contains(#"sluice_cost_usd_total{\#(service)alias="gpt-test",team="ml"}"#))
            #expect(text.contains("sluice_upstream_latency_seconds_bucket"))
            #expect(text.contains(#"sluice_time_to_first_byte_seconds_count{\#(service)alias="gpt-test"} 1"#))
            #expect(
                text.contains(
                    #"sluice_limit_remaining{\#(service)scope_kind="key",scope="live",limit="requests_per_minute"}"#))
            #expect(
                text.contains("sluice_policy_info{\(service)version=") && text.contains("sluice_policy_age_seconds"))
            #expect(!text.contains("sk-sluice") && !text.contains("sk-test-provider-secret"))
        }
    }

    @Test("a reload takes effect for new calls, keeps calls in flight, and refuses a bad file")
    func reload() async throws {
        try await AgentHarness.with(
            aliases: Self.aliases.merging(["slow": "mock+chunks=4+chunk_delay_ms=150"]) { $1 },
            settings: Self.policy()
        ) { harness in
            // The agent's own reloader, on the file it was started from.
            let reloader = try #require(harness.reloader)
            let path = harness.configPath
            #expect(reloader.reloadNow(reason: "test") == .unchanged)

            // A streamed call is in flight while the policy changes under it.
            let inFlight = Task { try await harness.chat(model: "slow", stream: true, key: Self.liveKey) }
            await harness.mock.waitForRequests(1)
            let blocked = harness.yaml.replacingOccurrences(
                of: "denied_models: [forbidden]", with: "denied_models: [forbidden, gpt-test]")
            try blocked.write(toFile: path, atomically: true, encoding: .utf8)
            guard case .reloaded = reloader.reloadNow(reason: "test") else {
                Issue.record("the edited file was not reloaded")
                return
            }
            #expect(try await harness.chat(key: Self.liveKey).status == 403)
            let streamed = try await inFlight.value
            #expect(streamed.status == 200 && streamed.text.contains("data: [DONE]"))

            // A broken file is refused and the last good policy stays.
            try "sluice_policy: [this is not a mapping\n".write(toFile: path, atomically: true, encoding: .utf8)
            guard case .rejected(let message) = reloader.reloadNow(reason: "test") else {
                Issue.record("a broken file was accepted")
                return
            }
            #expect(message.contains("YAML"))
            #expect(try await harness.chat(key: Self.liveKey).status == 403)
            let dangling = blocked.replacingOccurrences(
                of: "team: ml\n      metadata", with: "team: nobody\n      metadata")
            try dangling.write(toFile: path, atomically: true, encoding: .utf8)
            guard case .rejected(let why) = reloader.reloadNow(reason: "test") else {
                Issue.record("a policy with a dangling team was accepted")
                return
            }
            #expect(why.contains("team \"nobody\""))
            #expect(
                try await harness.metricsText().contains(
                    #"sluice_policy_reloads_total{service="shop/checkout",result="rejected"} 2"#))
        }
    }
}
