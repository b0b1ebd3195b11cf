import Foundation
import SluiceAgent
import SluiceControl
import SluiceTestSupport
import Testing

/// LiteLLM's admin API on `sluice-control`, driven with the bodies of LiteLLM's own
/// documentation, and its effect checked on a real agent synced from that control plane.
@Suite("LiteLLM admin API")
struct LiteLLMAdminTests {
    static func second(_ harness: SyncHarness) async throws {
        _ = try await harness.adminJSON(
            "POST", "/v1/admin/models",
            json: """
                {"alias":"gpt-other","deployments":[{"api_base":"http://127.0.0.1:\(harness.mockPort)/v1",
                 "upstream_model":"mock"}],"input_cost_per_token":0.000001,"output_cost_per_token":0.000002}
                """)
    }

    @Test("team/new and key/generate make a key an agent serves, with its models and limits; update applies unrotated")
    func keysAndTeams() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            try await Self.second(harness)
            // LiteLLM's documented bodies, as they are.
            let team = try await harness.admin(
                "POST", "/team/new",
                json: #"{"team_alias": "ml-team", "team_id": "ml", "models": ["gpt-test", "gpt-other"], "#
                    + #""rpm_limit": 100, "max_budget": 10, "budget_duration": "30d"}"#)
            #expect(team.status == 200, "\(team.text)")
            let generated = try await harness.admin(
                "POST", "/key/generate",
                json: #"{"key_alias": "ci-bot", "team_id": "ml", "models": ["gpt-test"], "rpm_limit": 2, "#
                    + #""max_budget": 5, "budget_duration": "30d", "metadata": {"owner": "alice"}, "duration": "30d", "#
                    + #""user_id": "alice@example.com"}"#)
            #expect(generated.status == 200, "\(generated.text)")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(generated.body)) as? [String: Any])
            let key = try #require(body["key"] as? String)
            #expect(body["key_alias"] as? String == "ci-bot" && body["budget_duration"] as? String == "1mo")
            #expect(key != SyncHarness.adminToken)

            let agent = try await harness.startAgent(id: "pod-1")
            #expect(await eventually { (try? await agent.chat(key: key).status) == 200 })
            let other = try await agent.chat(model: "gpt-other", key: key)
            #expect(other.status == 403 && other.text.contains("allowed_models"), "\(other.text)")
            // rpm_limit 2: one call is spent above; one more fits, the next does not.
            #expect(try await agent.chat(key: key).status == 200)
            let over = try await agent.chat(key: key)
            #expect(over.status == 429 && over.text.contains("rate_limit_exceeded"), "\(over.text)")
            #expect(try await agent.chat(key: SyncHarness.adminToken).status == 401, "the master key is no key")

            let info = try await harness.admin("GET", "/key/info?key=\(key)")
            #expect(info.status == 200 && info.text.contains(#""key":"ci-bot""#) && !info.text.contains(key))
            let listed = try await harness.admin("GET", "/key/list?team_id=ml")
            #expect(listed.text.contains(#""keys":["ci-bot"]"#), "\(listed.text)")

            // Updating the models keeps the secret: the same key now reaches gpt-other.
            let updated = try await harness.admin(
                "POST", "/key/update", json: #"{"key": "\#(key)", "models": ["gpt-other"], "rpm_limit": 100}"#)
            #expect(updated.status == 200 && !updated.text.contains(key), "\(updated.text)")
            #expect(await eventually { (try? await agent.chat(model: "gpt-other", key: key).status) == 200 })
            #expect(try await agent.chat(key: key).status == 403)

            let blocked = try await harness.admin("POST", "/key/block", json: #"{"key": "\#(key)"}"#)
            #expect(blocked.status == 200 && blocked.text.contains(#""blocked":true"#))
            #expect(await eventually { agent.refuses(key: key) })
            _ = try await harness.admin("POST", "/key/unblock", json: #"{"key": "\#(key)"}"#)
            #expect(await eventually { !agent.refuses(key: key) })

            let regenerated = try await harness.admin("POST", "/key/regenerate", json: #"{"key": "\#(key)"}"#)
            let fresh = try #require(
                (try JSONSerialization.jsonObject(with: Data(regenerated.body)) as? [String: Any])?["key"] as? String)
            #expect(fresh != key)
            #expect(await eventually { agent.refuses(key: key) && !agent.refuses(key: fresh) })

            _ = try await harness.admin(
                "POST", "/team/model/delete", json: #"{"team_id": "ml", "models": ["gpt-other"]}"#)
            let teamInfo = try await harness.admin("GET", "/team/info?team_id=ml")
            #expect(teamInfo.text.contains(#""models":["gpt-test"]"#) && teamInfo.text.contains("ci-bot"))
            #expect(await eventually { (try? await agent.chat(model: "gpt-other", key: fresh).status) == 403 })

            let deleted = try await harness.admin("POST", "/key/delete", json: #"{"keys": ["\#(fresh)"]}"#)
            #expect(deleted.text.contains(#""deleted_keys":["ci-bot"]"#), "\(deleted.text)")
            try await agent.stop()
        }
    }

    @Test("the seed's /manage/proxy_key calls: create with limits, then PATCH the models without rotating")
    func proxyKey() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            try await Self.second(harness)
            let created = try await harness.admin(
                "POST", "/manage/proxy_key",
                json: #"{"team": "web", "project": "site", "allowed_models": ["gpt-test"], "#
                    + #""metadata": {"owner": "bob"}, "#
                    + #""limits": {"requests_per_minute": 30, "tokens_per_minute": 10000, "monthly_spend_usd": 50}}"#)
            #expect(created.status == 201, "\(created.text)")
            let key = try #require(
                (try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["key"] as? String)
            let agent = try await harness.startAgent(id: "pod-1")
            #expect(await eventually { (try? await agent.chat(key: key).status) == 200 })
            #expect(try await agent.chat(model: "gpt-other", key: key).status == 403)

            let patched = try await harness.admin(
                "PATCH", "/manage/proxy_key/\(key)", json: #"{"allowed_models": ["gpt-other"]}"#)
            #expect(patched.status == 200 && !patched.text.contains(key), "\(patched.text)")
            #expect(await eventually { (try? await agent.chat(model: "gpt-other", key: key).status) == 200 })
            let trail = try await harness.admin("GET", "/v1/admin/audit")
            #expect(!trail.text.contains(key), "the key in the path is never kept")
            try await agent.stop()
        }
    }

    @Test("customer/new, block and unblock, update and delete reach a real agent as end-user limits and blocks")
    func customers() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            // LiteLLM's documented body for a customer with a budget and a rate limit.
            let created = try await harness.admin(
                "POST", "/customer/new",
                json: #"{"user_id": "ishaan-jaff-3", "max_budget": 5, "budget_duration": "1d", "rpm_limit": 2}"#)
            #expect(created.status == 200, "\(created.text)")
            #expect(created.text.contains(#""budget_duration":"1d""#) && created.text.contains(#""rpm_limit":2"#))
            let agent = try await harness.startAgent(id: "pod-1")
            // rpm_limit 2 for this end user; another end user and a call naming none are not held to it.
            #expect(await eventually { (try? await agent.chat(user: "ishaan-jaff-3").status) == 200 })
            #expect(try await agent.chat(user: "ishaan-jaff-3").status == 200)
            let limited = try await agent.chat(user: "ishaan-jaff-3")
            #expect(limited.status == 429 && limited.text.contains("rate_limit_exceeded"), "\(limited.text)")
            #expect(try await agent.chat(user: "someone-else").status == 200)
            #expect(try await agent.chat().status == 200)

            // Blocking an end user the control plane has not seen creates it, blocked.
            let blocked = try await harness.admin(
                "POST", "/customer/block", json: #"{"user_ids": ["someone-else", "ishaan-jaff-3"]}"#)
            #expect(blocked.status == 200 && blocked.text.contains("someone-else"), "\(blocked.text)")
            #expect(await eventually { (try? await agent.chat(user: "someone-else").status) == 403 })
            let refused = try await agent.chat(user: "someone-else")
            #expect(
                refused.text.contains("end_user_blocked") && refused.text.contains(#"end user \"someone-else\""#),
                "\(refused.text)")
            let info = try await harness.admin("GET", "/customer/info?end_user_id=ishaan-jaff-3")
            #expect(info.text.contains(#""blocked":true"#) && info.text.contains(#""max_budget":5"#), "\(info.text)")

            _ = try await harness.admin("POST", "/customer/unblock", json: #"{"user_ids": ["someone-else"]}"#)
            #expect(await eventually { (try? await agent.chat(user: "someone-else").status) == 200 })
            // An update keeps what it does not name: the block and the budget stay.
            let updated = try await harness.admin(
                "POST", "/customer/update", json: #"{"user_id": "ishaan-jaff-3", "rpm_limit": 100}"#)
            #expect(updated.status == 200 && updated.text.contains(#""blocked":true"#), "\(updated.text)")
            let listed = try await harness.admin("GET", "/customer/list")
            #expect(listed.text.contains("ishaan-jaff-3") && listed.text.contains("someone-else"))

            let deleted = try await harness.admin(
                "POST", "/customer/delete", json: #"{"user_ids": ["ishaan-jaff-3"]}"#)
            #expect(deleted.status == 200, "\(deleted.text)")
            #expect(await eventually { (try? await agent.chat(user: "ishaan-jaff-3").status) == 200 })
            let gone = try await harness.admin("GET", "/customer/info?end_user_id=ishaan-jaff-3")
            #expect(gone.status == 404)

            let cases: [(String, String, String)] = [
                ("/customer/new", #"{"user_id": "a", "alias": "A"}"#, "alias: not supported by Sluice"),
                ("/customer/new", #"{"user_id": "a", "budget_id": "b"}"#, "budget_id: not supported by Sluice"),
                ("/customer/new", #"{"user_id": "a", "max_budget": 5, "budget_duration": "7d"}"#, "budget_duration"),
                ("/customer/new", #"{"user_id": "bad\nname"}"#, "user_id: an end user is 1 to 256 bytes"),
                ("/customer/new", #"{"user_id": "a", "blocked": "yes"}"#, "blocked: expected true or false"),
                ("/customer/new", #"{"user_id": "someone-else"}"#, "someone-else"),
                ("/customer/update", #"{"user_id": "nobody", "rpm_limit": 1}"#, "no end_user"),
                ("/customer/block", #"{"user_ids": []}"#, "user_ids: a list of one or more"),
            ]
            for (path, json, why) in cases {
                let answer = try await harness.admin("POST", path, json: json)
                #expect(answer.status >= 400 && answer.text.contains(why), "\(path) \(json): \(answer.text)")
            }
            try await agent.stop()
        }
    }

    @Test("fields Sluice has no equivalent for are refused by name with why; typos get the closest name")
    func strictBodies() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            _ = try await harness.admin("POST", "/team/new", json: #"{"team_id": "ml"}"#)
            let cases: [(String, String, String)] = [
                ("/key/generate", #"{"team_id": "ml", "soft_budget": 5}"#, "soft_budget: not supported by Sluice"),
                ("/key/generate", #"{"team_id": "ml", "rpm_limt": 5}"#, #"did you mean \"rpm_limit\"?"#),
                ("/key/generate", #"{"team_id": "ml", "max_budget": 5}"#, "lifetime budget"),
                ("/key/generate", #"{"team_id": "ml", "max_budget": 5, "budget_duration": "7d"}"#, "budget_duration"),
                ("/key/generate", #"{"team_id": "ml", "models": ["gpt-tset"]}"#, #"did you mean \"gpt-test\"?"#),
                ("/key/generate", #"{"team_id": "nobody"}"#, "nobody"),
                ("/key/generate", #"{"team_id": "ml", "duration": "forever"}"#, "not a duration"),
                ("/team/new", #"{"team_id": "x", "members_with_roles": []}"#, "no users or roles"),
                ("/key/update", #"{"key": "sk-not-a-key", "models": []}"#, "no such key"),
                ("/manage/proxy_key", #"{"team": "ml", "limits": {"monthly_spend": 5}}"#, "monthly_spend"),
            ]
            for (path, json, why) in cases {
                let answer = try await harness.admin("POST", path, json: json)
                #expect(answer.status >= 400 && answer.text.contains(why), "\(path) \(json): \(answer.text)")
            }
            let anonymous = try await TestHTTPClient.request(
                "POST", "/key/generate", json: #"{"team_id": "ml"}"#, port: harness.controlPort, group: harness.group)
            #expect(anonymous.status == 401)
        }
    }

    @Test("spend reports by team and key, and spend logs, come from the rollups the agents' usage fills")
    func spendReports() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            _ = try await harness.admin("POST", "/team/new", json: #"{"team_id": "ml"}"#)
            let generated = try await harness.admin(
                "POST", "/key/generate", json: #"{"key_alias": "ci-bot", "team_id": "ml"}"#)
            let key = try #require(
                (try JSONSerialization.jsonObject(with: Data(generated.body)) as? [String: Any])?["key"] as? String)
            let agent = try await harness.startAgent(id: "pod-1")
            #expect(await eventually { (try? await agent.chat(key: key).status) == 200 })
            #expect(try await agent.chat(key: key).status == 200)
            // Usage reaches the control plane with the agent's next flush (every 100 ms here).
            #expect(
                await eventually {
                    (try? await UsageTotals.recorded(
                        adminToken: SyncHarness.adminToken, port: harness.controlPort, group: harness.group
                    ).totals.requests) == 2
                })
            let spent = try await harness.spentPicoUSD()
            #expect(spent > 0)

            let report = try await harness.admin("GET", "/global/spend/report?group_by=team")
            let days = try #require(try JSONSerialization.jsonObject(with: Data(report.body)) as? [[String: Any]])
            let teams = days.flatMap { ($0["teams"] as? [[String: Any]]) ?? [] }
            let ml = try #require(teams.first { $0["team_name"] as? String == "ml" })
            #expect(abs((ml["total_spend"] as? Double ?? 0) - Double(spent) / 1e12) < 1e-9, "\(report.text)")
            let models = (ml["metadata"] as? [[String: Any]]) ?? []
            #expect(models.first?["model"] as? String == "gpt-test" && models.first?["api_requests"] as? Int == 2)

            let byKey = try await harness.admin("GET", "/global/spend/report?group_by=api_key")
            #expect(byKey.text.contains(#""api_key":"ci-bot""#), "\(byKey.text)")
            let logs = try await harness.admin("GET", "/spend/logs?api_key=\(key)")
            let entries = try #require(try JSONSerialization.jsonObject(with: Data(logs.body)) as? [[String: Any]])
            #expect(entries.count == 1 && entries.first?["api_key"] as? String == "ci-bot")
            #expect(entries.first?["team_id"] as? String == "ml" && entries.first?["api_requests"] as? Int == 2)
            let single = try await harness.admin("GET", "/spend/logs?request_id=abc")
            #expect(single.status == 400 && single.text.contains("audit lines"))
            try await agent.stop()
        }
    }
}
