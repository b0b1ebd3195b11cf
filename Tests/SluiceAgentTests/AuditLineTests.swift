import SluiceAPI
import SluicePolicy
import Testing

@testable import SluiceAgent

/// The audit line is written field by field straight into bytes; these pin its exact text,
/// since log pipelines parse it.
@Suite("Audit line")
struct AuditLineTests {
    static let identity = ServiceIdentity(
        service: "checkout", namespace: "shop", pod: "checkout-7f9", serviceAccount: "")

    @Test("a served call's line, byte for byte")
    func served() {
        var record = AuditRecord(
            timestampNanoseconds: 1_764_873_296_123_456_789, requestID: "req-1", identity: Self.identity,
            method: "POST", path: "/v1/chat/completions", status: 200, latencySeconds: 0.001_234_6)
        record.keyID = "k1"
        record.team = "ml"
        record.endUser = "user \"quoted\"\n" + String(repeating: "x", count: 200)
        record.alias = "gpt"
        record.servedAlias = "gpt"
        record.attempts = 2
        record.upstreamModel = "gpt-4o-mini"
        record.deployment = "openai-0"
        record.httpVersion = "h2"
        record.usage = TokenUsage(promptTokens: 14, completionTokens: 21, cachedPromptTokens: 4, reasoningTokens: 3)
        record.costUSD = 0.000_014_7
        record.timeToFirstByteSeconds = 0.000_5
        let endUser = #"user \"quoted\"\n"# + String(repeating: "x", count: 114)
        let expected: String = [
            #"{"ts":"2025-12-04T18:34:56.123Z","request_id":"req-1","service":"checkout","namespace":"shop","#,
            #""pod":"checkout-7f9","service_account":null,"key_id":"k1","team":"ml","project":null,"#,
            #""end_user":"\#(endUser)","method":"POST","path":"/v1/chat/completions","alias":"gpt","#,
            #""served_alias":"gpt","attempts":2,"upstream_model":"gpt-4o-mini","deployment":"openai-0","#,
            #""http_version":"h2","status":200,"stream":false,"stream_completed":null,"prompt_tokens":14,"#,
            #""completion_tokens":21,"cached_tokens":4,"cache_creation_tokens":0,"reasoning_tokens":3,"#,
            #""usage_estimated":false,"cost_usd":0.0000147,"price_missing":false,"latency_ms":1.235,"#,
            #""ttfb_ms":0.5,"error":null,"rule":null}"#, "\n",
        ].joined()
        #expect(String(decoding: record.jsonLine, as: UTF8.self) == expected)
    }

    @Test("a refused call's line: no usage, a rule, and each guardrail asked")
    func refused() throws {
        var record = AuditRecord(
            timestampNanoseconds: 0, requestID: "req-2", identity: Self.identity, method: "POST",
            path: "/v1/chat/completions", status: 403, latencySeconds: 0)
        record.stream = true
        record.streamCompleted = false
        record.errorCode = "guardrail_denied"
        record.rule = #"guardrail "pii""#
        record.guardrails = [
            GuardrailDecision(guardrail: "pii", verdict: .denied, reason: "SSN", milliseconds: 2.5),
            GuardrailDecision(guardrail: "tone", verdict: .skipped, stage: .completion),
        ]
        let line = String(decoding: record.jsonLine, as: UTF8.self)
        #expect(line.hasPrefix(#"{"ts":"1970-01-01T00:00:00.000Z","request_id":"req-2","#))
        let ending: String = [
            #""status":403,"stream":true,"stream_completed":false,"prompt_tokens":null,"completion_tokens":null,"#,
            #""cached_tokens":null,"cache_creation_tokens":null,"reasoning_tokens":null,"#,
            #""usage_estimated":null,"cost_usd":null,"price_missing":false,"latency_ms":0,"ttfb_ms":null,"#,
            #""error":"guardrail_denied","rule":"guardrail \"pii\"","guardrails":["#,
            #"{"name":"pii","stage":"prompt","verdict":"deny","ms":2.5,"reason":"SSN"},"#,
            #"{"name":"tone","stage":"completion","verdict":"skip","ms":null,"reason":null}]}"#, "\n",
        ].joined()
        #expect(line.hasSuffix(ending))
        let parsed = try JSONValue.parseObject(Array(line.utf8.dropLast()))
        #expect(parsed["guardrails"]?.arrayValue?.count == 2)
    }
}
