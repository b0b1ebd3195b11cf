import Foundation
import NIOCore
import NIOPosix
import SluiceAPI
import SluiceAgent
import SluiceTestSupport
import Testing

/// External guardrails through a real agent: a second mock provider on the loopback plays
/// the guardrail (see `GuardrailMockScript`), allowing, denying, modifying, hanging and
/// answering garbage as the prompt asks it to.
@Suite("Guardrails")
struct GuardrailTests {
    static let mlToken = "sk-guardrail-ml-0123456789abcdef"
    static let webToken = "sk-guardrail-web-0123456789abcdef"

    /// Runs `body` with a guardrail server and an agent whose policy is `policy(port)`.
    static func with(
        policy: (Int) -> String, _ body: (AgentHarness, MockProvider) async throws -> Void
    ) async throws {
        let guardrail = try MockProvider(configuration: .init(transport: .plaintext))
        let port = try await guardrail.start()
        do {
            try await AgentHarness.with(settings: policy(port)) { harness in try await body(harness, guardrail) }
        } catch {
            try? await guardrail.stop()
            throw error
        }
        try await guardrail.stop()
    }

    static func keys(limits: String = "") -> String {
        """
          teams:
            ml: {\(limits)}
            web: {}
          static_keys:
            - {id: ml-key, token: \(mlToken), team: ml}
            - {id: web-key, token: \(webToken), team: web}

        """
    }

    @Test("deny, garbage, an error status, a hang and a bad modify refuse the call and reserve nothing")
    func refusalsAreFree() async throws {
        try await Self.with(policy: { port in
            """
            sluice_policy:
              guardrails:
                - {name: screen, url: "http://127.0.0.1:\(port)/v1/guardrail", timeout_ms: 400}
            \(Self.keys(limits: "limits: {requests_per_minute: 1}"))
            """
        }) { harness, guardrail in
            let denied = try await harness.chat(key: Self.mlToken, content: "please guard=deny")
            #expect(denied.status == 403, "\(denied.text)")
            #expect(denied.text.contains("guardrail_blocked") && denied.text.contains(#"guardrail \"screen\""#))
            #expect(denied.text.contains("mock policy"), "the guardrail's reason is passed on: \(denied.text)")

            for fault in ["guard=garbage", "guard=error", "guard=hang", "guard=modify_bad"] {
                let failed = try await harness.chat(key: Self.mlToken, content: "hello \(fault)")
                #expect(failed.status == 503, "\(fault): \(failed.text)")
                #expect(failed.text.contains("guardrail_unavailable"), "\(fault): \(failed.text)")
            }
            // None of the five refusals took the minute's one call.
            let allowed = try await harness.chat(key: Self.mlToken)
            #expect(allowed.status == 200, "\(allowed.text)")
            let over = try await harness.chat(key: Self.mlToken)
            #expect(over.status == 429 && over.text.contains("rate_limit_exceeded"), "\(over.text)")
            #expect(harness.mock.requests.count == 1, "only the allowed call reached the provider")

            let records = await harness.auditRecords(7)
            let verdicts = records.map { record in
                ((record["guardrails"] as? [[String: Any]])?.first?["verdict"] as? String) ?? "-"
            }
            let failed = Array(repeating: "failed_closed", count: 4)
            #expect(
                verdicts == ["deny"] + failed + ["allow", "allow"],
                "guardrails are asked before limits, so nothing waits on them holding a reservation: \(verdicts)")
            #expect(records[0]["error"] as? String == "guardrail_blocked")
            #expect(records[0]["rule"] as? String == #"guardrail "screen""#)
            let hang = (records[3]["guardrails"] as? [[String: Any]])?.first
            let hangMilliseconds = hang?["ms"] as? Double ?? 0
            #expect(hangMilliseconds >= 400 && hangMilliseconds < 5000, "bounded by timeout_ms: \(hangMilliseconds)")
            // Each guardrail request carries the caller's ids, never its key.
            let asked = guardrail.requests
            #expect(asked.count == 7)
            for request in asked {
                let text = String(decoding: request.body, as: UTF8.self)
                #expect(!text.contains(Self.mlToken) && request.header("authorization") == nil)
                #expect(text.contains(#""key_id":"ml-key""#) && text.contains(#""team":"ml""#), "\(text)")
                #expect(text.contains(#""service":"shop/checkout""#), "\(text)")
            }
            let metrics = try await harness.metricsText()
            #expect(metrics.contains(#"sluice_guardrail_decisions_total{"#))
            #expect(sample(metrics, "sluice_guardrail_decisions_total", [#"verdict="failed_closed""#]) == 4)
            #expect(sample(metrics, "sluice_guardrail_decisions_total", [#"verdict="deny""#]) == 1)
        }
    }

    @Test("a modify sends the masked prompt upstream, streamed or not, and in the Messages dialect")
    func modifyRewritesThePrompt() async throws {
        try await Self.with(policy: { port in
            """
            sluice_policy:
              guardrails:
                - {name: mask, url: "http://127.0.0.1:\(port)/v1/guardrail"}
            \(Self.keys())
            """
        }) { harness, _ in
            let plain = try await harness.chat(key: Self.mlToken, content: "card 4242-4242 guard=modify")
            #expect(plain.status == 200, "\(plain.text)")
            let streamed = try await harness.chat(stream: true, key: Self.mlToken, content: "pin 1234 guard=modify")
            #expect(streamed.status == 200 && streamed.text.contains("[DONE]"), "\(streamed.text)")
            let messages = try await harness.post(
                #"{"model":"gpt-test","max_tokens":50,"system":"account 998877","#
                    + #""messages":[{"role":"user","content":[{"type":"text","text":"code 5555 guard=modify"}]}]}"#,
                path: "/v1/messages", headers: [("x-api-key", Self.mlToken), ("anthropic-version", "2023-06-01")])
            #expect(messages.status == 200 && messages.text.contains(#""type":"message""#), "\(messages.text)")

            let sent = harness.mock.requests.map { String(decoding: $0.body, as: UTF8.self) }
            #expect(sent.count == 3)
            #expect(sent[0].contains("card ####-#### guard=modify") && !sent[0].contains("4242"), "\(sent[0])")
            #expect(sent[1].contains("pin #### guard=modify") && sent[1].contains(#""stream":true"#), "\(sent[1])")
            #expect(sent[2].contains("code #### guard=modify") && sent[2].contains("account ######"), "\(sent[2])")
            #expect(!sent[2].contains("5555") && !sent[2].contains("998877"))

            let records = await harness.auditRecords(3)
            for record in records {
                let decision = (record["guardrails"] as? [[String: Any]])?.first
                #expect(decision?["verdict"] as? String == "modify")
                #expect(decision?["reason"] as? String == "digits masked")
                #expect(record["status"] as? Int == 200)
            }
        }
    }

    @Test("fail-open lets a call through unchecked, sampling at 0 % never asks, and scopes choose the callers")
    func failOpenSamplingAndScopes() async throws {
        try await Self.with(policy: { port in
            """
            sluice_policy:
              guardrails:
                - name: lenient
                  url: "http://127.0.0.1:\(port)/v1/guardrail"
                  on_failure: open
                  scopes: {teams: [ml]}
                - {name: never, url: "http://127.0.0.1:\(port)/v1/guardrail", sample_percent: 0}
            \(Self.keys())
            """
        }) { harness, guardrail in
            let garbage = try await harness.chat(key: Self.mlToken, content: "hi guard=garbage")
            #expect(garbage.status == 200, "fails open: \(garbage.text)")
            let denied = try await harness.chat(key: Self.mlToken, content: "hi guard=deny")
            #expect(denied.status == 403 && denied.text.contains(#"guardrail \"lenient\""#), "\(denied.text)")
            let outOfScope = try await harness.chat(key: Self.webToken, content: "hi guard=deny")
            #expect(outOfScope.status == 200, "web is not in the guardrail's scope: \(outOfScope.text)")
            #expect(guardrail.requests.count == 2, "only ml's two calls were checked, and never by `never`")

            let records = await harness.auditRecords(3)
            let first = records[0]["guardrails"] as? [[String: Any]] ?? []
            #expect(first.map { $0["verdict"] as? String } == ["failed_open", "skip"])
            #expect(first.first?["reason"] as? String != nil)
            let web = records[2]["guardrails"] as? [[String: Any]] ?? []
            #expect(web.map { $0["name"] as? String } == ["never"])
        }
    }

    @Test("a guardrail whose credential is not on this agent refuses the calls it checks, never skips them")
    func unusableGuardrailFailsClosed() async throws {
        try await Self.with(policy: { port in
            """
            sluice_policy:
              guardrails:
                - {name: vendor, url: "http://127.0.0.1:\(port)/v1/guardrail", credential_ref: SLUICE_TEST_UNSET_TOKEN}
            \(Self.keys())
            """
        }) { harness, guardrail in
            let refused = try await harness.chat(key: Self.mlToken)
            #expect(refused.status == 503 && refused.text.contains("guardrail_unavailable"), "\(refused.text)")
            #expect(refused.text.contains("credential"), "\(refused.text)")
            #expect(guardrail.requests.isEmpty && harness.mock.requests.isEmpty)
        }
    }

    @Test("a caller gone while its guardrail is asked is settled as 499 and the exchange is cancelled")
    func hangUpWhileGuarding() async throws {
        try await Self.with(policy: { port in
            """
            sluice_policy:
              guardrails:
                - {name: slow, url: "http://127.0.0.1:\(port)/v1/guardrail", timeout_ms: 30000}
            \(Self.keys())
            """
        }) { harness, guardrail in
            let channel = try await ClientBootstrap(group: harness.group)
                .connect(host: "127.0.0.1", port: harness.agentPort).get()
            let body = #"{"model":"gpt-test","messages":[{"role":"user","content":"hi guard=hang"}]}"#
            try await channel.writeAndFlush(
                channel.allocator.buffer(
                    string: "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Authorization: Bearer \(Self.mlToken)\r\n"
                        + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"))
            await guardrail.waitForRequests(1)
            try await channel.close()

            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["status"] as? Int == 499 && record["error"] as? String == "client_disconnected")
            await guardrail.waitForAbandonedStreams(1)
            #expect(harness.mock.requests.isEmpty)
        }
    }

    static let answerText = "Sluice mock says hello and counts every token"

    @Test("a held answer reaches the caller only once allowed; a deny replaces it with 403 and still charges it")
    func heldAnswers() async throws {
        try await Self.with(policy: { port in
            """
            sluice_policy:
              guardrails:
                - {name: output, url: "http://127.0.0.1:\(port)/v1/guardrail", timeout_ms: 400, check_completion: hold}
            \(Self.keys())
            """
        }) { harness, guardrail in
            let streamed = try await harness.chat(stream: true, key: Self.mlToken)
            #expect(streamed.status == 200 && streamed.text.contains("[DONE]"), "\(streamed.text)")
            let checked = try #require(guardrail.requests.last)
            let body = try JSONValue.parseObject(checked.body)
            #expect(body["stage"]?.stringValue == "completion")
            #expect(body["completion"]?.stringValue == Self.answerText, "the text the caller got")
            #expect(body["messages"]?.arrayValue?.first?["content"]?.stringValue == "Hello there")

            let denied = try await harness.chat(key: Self.mlToken, content: "hi guard_completion=deny")
            #expect(denied.status == 403 && denied.text.contains("guardrail_blocked"), "\(denied.text)")
            #expect(denied.text.contains("the answer was blocked") && !denied.text.contains("Sluice mock says"))
            let deniedStream = try await harness.chat(stream: true, key: Self.mlToken, content: "guard_completion=deny")
            #expect(deniedStream.status == 403 && !deniedStream.text.contains("data:"), "\(deniedStream.text)")
            let messages = try await harness.post(
                #"{"model":"gpt-test","max_tokens":50,"#
                    + #""messages":[{"role":"user","content":"guard_completion=modify"}]}"#,
                path: "/v1/messages", headers: [("x-api-key", Self.mlToken), ("anthropic-version", "2023-06-01")])
            #expect(messages.status == 403 && messages.text.contains(#""type":"error""#), "\(messages.text)")
            let hung = try await harness.chat(key: Self.mlToken, content: "hi guard_completion=hang")
            #expect(hung.status == 503 && hung.text.contains("guardrail_unavailable"), "\(hung.text)")

            let records = await harness.auditRecords(5)
            #expect(records.map { $0["status"] as? Int } == [200, 403, 403, 403, 503])
            for record in records.dropFirst() {
                #expect((record["cost_usd"] as? Double ?? 0) > 0, "the provider answered: the tokens are charged")
            }
            let stages = (records[1]["guardrails"] as? [[String: Any]] ?? []).map {
                "\($0["stage"] as? String ?? "")/\($0["verdict"] as? String ?? "")"
            }
            #expect(stages == ["prompt/allow", "completion/deny"])
            #expect(harness.mock.requests.count == 5)
        }
    }

    @Test("an answer checked after delivery reaches the caller; the verdict gets its own audit line")
    func checkedAfterDelivery() async throws {
        try await Self.with(policy: { port in
            """
            sluice_policy:
              guardrails:
                - {name: watch, url: "http://127.0.0.1:\(port)/v1/guardrail", check_completion: after}
            \(Self.keys())
            """
        }) { harness, guardrail in
            let answered = try await harness.chat(stream: true, key: Self.mlToken, content: "guard_completion=deny")
            #expect(answered.status == 200 && answered.text.contains("[DONE]"), "\(answered.text)")
            let records = await harness.auditRecords(2)
            #expect(records[0]["request_id"] as? String == records[1]["request_id"] as? String)
            #expect(records[0]["status"] as? Int == 200 && (records[0]["cost_usd"] as? Double ?? 0) > 0)
            let verdict = (records[1]["guardrails"] as? [[String: Any]])?.first
            #expect(verdict?["stage"] as? String == "completion" && verdict?["verdict"] as? String == "deny")
            #expect(records[1]["rule"] as? String == #"guardrail "watch""#)
            #expect(records[1]["cost_usd"] is NSNull, "the verdict's line counts nothing again")
            #expect(guardrail.requests.count == 2)
        }
    }

    @Test("a caller gone while its answer is held is settled as 499, charged, and the check is cancelled")
    func hangUpWhileHeld() async throws {
        try await Self.with(policy: { port in
            """
            sluice_policy:
              guardrails:
                - {name: slow, url: "http://127.0.0.1:\(port)/v1/guardrail", timeout_ms: 30000, check_completion: hold}
            \(Self.keys())
            """
        }) { harness, guardrail in
            let channel = try await ClientBootstrap(group: harness.group)
                .connect(host: "127.0.0.1", port: harness.agentPort).get()
            let body = #"{"model":"gpt-test","messages":[{"role":"user","content":"hi guard_completion=hang"}]}"#
            try await channel.writeAndFlush(
                channel.allocator.buffer(
                    string: "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Authorization: Bearer \(Self.mlToken)\r\n"
                        + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"))
            await guardrail.waitForRequests(2)
            try await channel.close()

            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["status"] as? Int == 499 && record["error"] as? String == "client_disconnected")
            #expect((record["cost_usd"] as? Double ?? 0) > 0)
            await guardrail.waitForAbandonedStreams(1)
        }
    }
}
