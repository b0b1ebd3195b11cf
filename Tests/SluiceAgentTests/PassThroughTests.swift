import Foundation
import SluiceAgent
import SluiceTestSupport
import Testing

/// Explicit pass-throughs to endpoints Sluice does not meter, through a real agent and the
/// mock provider: only the scopes named get through, each call is counted, limited, priced
/// where the answer reports usage, and audited; everyone else still gets endpoint_not_metered.
@Suite("Pass-through")
struct PassThroughTests {
    static let mlToken = "sk-passthrough-ml-0123456789abcdef"
    static let webToken = "sk-passthrough-web-0123456789abcdef"

    static func policy(teamLimits: String = "", extraModels: String = "") -> String {
        """
        \(extraModels)sluice_policy:
          teams:
            ml: {\(teamLimits)}
            web: {}
          static_keys:
            - {id: ml-key, token: \(mlToken), team: ml}
            - {id: web-key, token: \(webToken), team: web}
          pass_through:
            - name: openai-files
              paths: [/v1/files, /v1/batches, /v1/images/generations]
              alias: gpt-test
              scopes: {teams: [ml]}

        """
    }

    /// One request with any method, body and content type.
    static func send(
        _ harness: AgentHarness, _ method: String, _ path: String, key: String?, contentType: String = "",
        body: [UInt8] = [], headers: [(String, String)] = []
    ) async throws -> TestResponse {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\n"
        if !contentType.isEmpty { head += "Content-Type: \(contentType)\r\n" }
        if let key { head += "Authorization: Bearer \(key)\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        return try await TestHTTPClient.send(
            raw: Array((head + "\r\n").utf8) + body, port: harness.agentPort, group: harness.group)
    }

    @Test("a scope's pass-through forwards files, batches and images as they are, counted, priced and audited")
    func forwardsForItsScope() async throws {
        try await AgentHarness.with(settings: Self.policy()) { harness in
            let boundary = "sluice-boundary-42"
            let multipart = Array(
                ("--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
                    + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n"
                    + "Content-Type: application/jsonl\r\n\r\n{\"custom_id\":\"1\"}\n\r\n--\(boundary)--\r\n").utf8)
            let upload = try await Self.send(
                harness, "POST", "/v1/files", key: Self.mlToken,
                contentType: "multipart/form-data; boundary=\(boundary)", body: multipart)
            #expect(upload.status == 200 && upload.text.contains(#""bytes":\#(multipart.count)"#), "\(upload.text)")
            let listed = try await Self.send(harness, "GET", "/v1/files?purpose=batch&limit=2", key: Self.mlToken)
            #expect(listed.status == 200 && listed.text.contains(#""object":"list""#), "\(listed.text)")
            let deleted = try await Self.send(harness, "DELETE", "/v1/files/file-mock-1", key: Self.mlToken)
            #expect(deleted.status == 200 && deleted.text.contains(#""deleted":true"#), "\(deleted.text)")
            let image = try await Self.send(
                harness, "POST", "/v1/images/generations", key: Self.mlToken, contentType: "application/json",
                body: Array(#"{"model":"gpt-image-1","prompt":"a sluice gate"}"#.utf8))
            #expect(image.status == 200 && image.text.contains("b64_json"), "\(image.text)")
            let size = 3_000_000
            let download = try await Self.send(
                harness, "GET", "/v1/files/file-mock-1/content?bytes=\(size)", key: Self.mlToken)
            #expect(download.status == 200 && download.body.count == size)
            #expect(download.header("content-type") == "application/octet-stream")

            let seen = harness.mock.requests
            #expect(seen.map { "\($0.method) \($0.path)" } == [
                "POST /v1/files", "GET /v1/files?purpose=batch&limit=2", "DELETE /v1/files/file-mock-1",
                "POST /v1/images/generations", "GET /v1/files/file-mock-1/content?bytes=\(size)",
            ])
            #expect(seen[0].body == multipart, "the body goes upstream byte for byte")
            #expect(seen[0].header("content-type") == "multipart/form-data; boundary=\(boundary)")
            for request in seen {
                #expect(request.header("authorization") == "Bearer sk-test-provider-secret-0123456789")
            }

            let records = await harness.auditRecords(5)
            for record in records {
                #expect(record["alias"] as? String == "gpt-test" && record["key_id"] as? String == "ml-key")
                #expect(record["status"] as? Int == 200 && record["team"] as? String == "ml")
            }
            #expect(records[0]["path"] as? String == "/v1/files")
            // The image answer's usage is priced at the alias's rates: 50 × 1e-6 + 4160 × 2e-6.
            #expect(records[3]["prompt_tokens"] as? Int == 50 && records[3]["completion_tokens"] as? Int == 4160)
            let cost = try #require(records[3]["cost_usd"] as? Double)
            #expect(abs(cost - 0.00837) < 1e-9, "\(cost)")
            #expect(records[0]["cost_usd"] as? Double == 0, "a call without usage costs nothing, but is counted")
        }
    }

    @Test("outside the scope, on another path or method, or as an upgrade, the endpoint stays refused")
    func othersStayRefused() async throws {
        try await AgentHarness.with(settings: Self.policy()) { harness in
            let web = try await Self.send(harness, "GET", "/v1/files", key: Self.webToken)
            #expect(web.status == 404 && web.text.contains("endpoint_not_metered"), "\(web.text)")
            let audio = try await Self.send(harness, "POST", "/v1/audio/transcriptions", key: Self.mlToken)
            #expect(audio.status == 404 && audio.text.contains("endpoint_not_metered"), "\(audio.text)")
            let put = try await Self.send(harness, "PUT", "/v1/files/file-mock-1", key: Self.mlToken)
            #expect(put.status == 404 && put.text.contains("endpoint_not_metered"), "\(put.text)")
            let upgrade = try await Self.send(
                harness, "GET", "/v1/files", key: Self.mlToken,
                headers: [("Upgrade", "websocket"), ("Connection", "Upgrade")])
            #expect(upgrade.status == 404 && upgrade.text.contains("endpoint_not_metered"), "\(upgrade.text)")
            let anonymous = try await Self.send(harness, "GET", "/v1/files", key: nil)
            #expect(anonymous.status == 401, "\(anonymous.text)")
            let forged = try await Self.send(harness, "GET", "/v1/files", key: "sk-not-a-key-0123456789abcdef")
            #expect(forged.status == 401 && forged.text.contains("invalid_api_key"), "\(forged.text)")
            #expect(harness.mock.requests.isEmpty)
        }
    }

    @Test("pass-through calls spend the scope's request limit (a provider error gives it back), errors are scrubbed")
    func limitsAndErrors() async throws {
        try await AgentHarness.with(settings: Self.policy(teamLimits: "limits: {requests_per_minute: 2}")) {
            harness in
            let failed = try await Self.send(harness, "GET", "/v1/files/echo_key", key: Self.mlToken)
            #expect(failed.status == 401, "the provider's own status: \(failed.text)")
            #expect(!failed.text.contains("sk-test-provider-secret-0123456789"), "scrubbed: \(failed.text)")
            // Like a chat call the provider refused, it used nothing: the minute's two calls remain.
            for _ in 0..<2 {
                let answered = try await Self.send(harness, "GET", "/v1/batches/batch_mock_1", key: Self.mlToken)
                #expect(answered.status == 200 && answered.text.contains("batch_mock_1"), "\(answered.text)")
            }
            let over = try await Self.send(harness, "GET", "/v1/files", key: Self.mlToken)
            #expect(over.status == 429 && over.text.contains("rate_limit_exceeded"), "\(over.text)")
            #expect(harness.mock.requests.count == 3)
            let records = await harness.auditRecords(4)
            #expect(records.map { $0["status"] as? Int } == [401, 200, 200, 429])
            #expect(records[0]["error"] as? String == "upstream_http_401")
        }
    }

    @Test("Anthropic's token counting goes to the alias's Anthropic deployment with its own credential header")
    func anthropicEndpoint() async throws {
        try await AgentHarness.with(aliases: [:], settings: "") { harness in
            let port = harness.mock.port
            try await harness.restartAgent(
                yaml: """
                    model_list:
                      - model_name: claude
                        litellm_params:
                          model: anthropic/mock
                          api_base: https://127.0.0.1:\(port)/v1
                          api_key: sk-ant-provider-secret-0123456789
                          ssl_verify: \(harness.certificate.certificatePath)
                    sluice_policy:
                      teams: {ml: {}}
                      static_keys:
                        - {id: ml-key, token: \(Self.mlToken), team: ml}
                      pass_through:
                        - {name: count, paths: [/v1/messages/count_tokens], methods: [POST], alias: claude,
                           scopes: {services: ["*"]}}

                    """)
            let counted = try await Self.send(
                harness, "POST", "/v1/messages/count_tokens", key: nil, contentType: "application/json",
                body: Array(#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#.utf8),
                headers: [("x-api-key", Self.mlToken)])
            #expect(counted.status == 200 && counted.text == #"{"input_tokens":42}"#, "\(counted.text)")
            let seen = try #require(harness.mock.requests.first)
            #expect(seen.path == "/v1/messages/count_tokens")
            #expect(seen.header("x-api-key") == "sk-ant-provider-secret-0123456789")
            #expect(seen.header("anthropic-version") == "2023-06-01" && seen.header("authorization") == nil)
        }
    }
}
