import Foundation
import NIOCore
import NIOPosix
import SluiceTestSupport
import Testing

@Suite("Agent errors: every denial and failure is OpenAI-shaped and names its cause")
struct AgentErrorTests {
    /// Decodes `{"error":{...}}` and returns (code, message).
    func errorBody(_ response: TestResponse) throws -> (code: String, message: String) {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        let error = try #require(object["error"] as? [String: Any])
        return (try #require(error["code"] as? String), try #require(error["message"] as? String))
    }

    @Test("400 for malformed, too deep, duplicated or redirecting bodies")
    func badBodies() async throws {
        try await AgentHarness.with { harness in
            let cases: [(String, String)] = [
                ("{not json", "invalid_json"),
                (
                    #"{"model":"gpt-test","messages":"# + String(repeating: "[", count: 5000)
                        + String(repeating: "]", count: 5000) + "}", "json_too_deep"
                ),
                (#"{"model":"gpt-test","model":"other"}"#, "duplicate_key"),
                (#"{"model":"gpt-test","api_base":"https://evil.example/v1"}"#, "forbidden_field"),
                (#"{"model":"gpt-test","base_url":"https://evil.example/v1"}"#, "forbidden_field"),
                (#"{"model":"gpt-test","api_key":"sk-mine"}"#, "forbidden_field"),
                (#"{"messages":[]}"#, "missing_model"),
            ]
            for (body, expected) in cases {
                let response = try await harness.post(body)
                #expect(response.status == 400, "\(expected)")
                #expect(try errorBody(response).code == expected)
            }
            #expect(harness.mock.requests.isEmpty)
            let records = await harness.auditRecords(cases.count)
            #expect(records.map { $0["error"] as? String } == cases.map(\.1))
        }
    }

    @Test("404 for unknown models and endpoints, 405 for wrong methods")
    func notFound() async throws {
        try await AgentHarness.with { harness in
            let unknown = try await harness.chat(model: "gpt-4o/../admin")
            #expect(unknown.status == 404)
            #expect(try errorBody(unknown).code == "model_not_found")
            let endpoint = try await harness.post("{}", path: "/v1/nothing")
            #expect(endpoint.status == 404)
            #expect(try errorBody(endpoint).code == "endpoint_not_metered")
            let method = try await TestHTTPClient.get(
                "/v1/chat/completions", port: harness.agentPort, group: harness.group)
            #expect(method.status == 405)
            #expect(method.header("allow") == "POST")
            #expect(harness.mock.requests.isEmpty)
        }
    }

    @Test("every endpoint the agent does not meter is refused naming it, never forwarded; so is any upgrade")
    func unmeteredEndpoints() async throws {
        try await AgentHarness.with { harness in
            let refused: [(method: String, path: String, names: String)] = [
                ("POST", "/v1/batches", "Batch API"), ("GET", "/v1/batches/batch_abc", "Batch API"),
                ("POST", "/v1/files", "Files API"), ("GET", "/v1/files/file-abc/content", "Files API"),
                ("POST", "/v1/uploads", "Uploads API"), ("GET", "/v1/realtime?model=gpt-4o-realtime", "Realtime API"),
                ("POST", "/v1/realtime/sessions", "Realtime API"), ("POST", "/v1/assistants", "Assistants API"),
                ("POST", "/v1/threads/runs", "threads"), ("POST", "/v1/vector_stores", "vector stores"),
                ("POST", "/v1/fine_tuning/jobs", "fine-tuning"), ("POST", "/v1/images/generations", "image"),
                ("POST", "/v1/audio/transcriptions", "Audio API"), ("POST", "/v1/audio/speech", "Audio API"),
                ("POST", "/v1/moderations", "moderations"), ("GET", "/v1/responses/resp_abc", "stored responses"),
                ("GET", "/v1/chat/completions/chatcmpl-abc", "stored chat completions"),
                ("POST", "/v1/messages/batches", "Message Batches"), ("POST", "/v1/messages/count_tokens", "token"),
                ("POST", "/v1beta/models/gemini-2.5-flash:generateContent", "Gemini"),
                ("POST", "/openai/deployments/gpt-4o/chat/completions", "Azure"),
                ("POST", "/v1/filesystem", "not an endpoint Sluice meters"),
                ("DELETE", "/admin", "not an endpoint Sluice meters"),
            ]
            for (method, path, names) in refused {
                let response = try await harness.send(
                    raw: "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n"
                        + "content-length: 2\r\nconnection: close\r\n\r\n{}")
                #expect(response.status == 404, "\(method) \(path)")
                let body = try errorBody(response)
                #expect(body.code == "endpoint_not_metered", "\(method) \(path)")
                let shownPath = String(path.split(separator: "?")[0])
                #expect(body.message.contains(shownPath) && body.message.contains(names), "\(body.message)")
            }
            // Anthropic's own paths are refused in Anthropic's error shape, for its SDKs.
            let batches = try await harness.post("{}", path: "/v1/messages/batches")
            #expect(batches.text.contains(#""type":"error""#) && batches.text.contains("endpoint_not_metered"))

            // A WebSocket handshake is refused even on a metered path.
            let upgrade = try await harness.send(
                raw: "GET /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
                    + "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            #expect(upgrade.status == 403)
            #expect(try errorBody(upgrade).code == "endpoint_not_metered")
            #expect(try errorBody(upgrade).message.contains("WebSockets"))

            #expect(harness.mock.requests.isEmpty)
            let records = await harness.auditRecords(refused.count + 2)
            #expect(records.allSatisfy { $0["error"] as? String == "endpoint_not_metered" })
            // Still serving: the refusals left the agent as it was.
            #expect(try await harness.chat().status == 200)
        }
    }

    @Test("413 from the declared length, before the body is read")
    func tooLargeDeclared() async throws {
        try await AgentHarness.with(settings: "sluice_settings:\n  max_request_body_bytes: 1024\n") { harness in
            // Declares 100 MB but sends only a few bytes: the answer must not wait for the rest.
            let raw =
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "Content-Length: 104857600\r\n\r\n{\"model\""
            let response = try await harness.send(raw: raw)
            #expect(response.status == 413)
            #expect(try errorBody(response).code == "request_too_large")
            #expect(response.header("connection") == "close")
        }
    }

    @Test("413 for a chunked body once it crosses the cap")
    func tooLargeChunked() async throws {
        try await AgentHarness.with(settings: "sluice_settings:\n  max_request_body_bytes: 1024\n") { harness in
            let chunk = String(repeating: "a", count: 600)
            let raw =
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "258\r\n\(chunk)\r\n258\r\n\(chunk)\r\n"  // 2 × 600 bytes, never terminated
            let response = try await harness.send(raw: raw)
            #expect(response.status == 413)
            #expect(harness.mock.requests.isEmpty)
        }
    }

    @Test("431 for oversized headers, 400 for ambiguous framing")
    func malformedHTTP() async throws {
        try await AgentHarness.with { harness in
            let big = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "b", count: 100_000))\r\n\r\n"
            let headers = try await harness.send(raw: big)
            #expect(headers.status == 431)
            #expect(try errorBody(headers).code == "request_header_fields_too_large")

            let smuggle =
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            let framing = try await harness.send(raw: smuggle)
            #expect(framing.status == 400)
            #expect(try errorBody(framing).code == "malformed_http")
            #expect(harness.mock.requests.isEmpty)
        }
    }

    @Test("an upstream error passes through with its status, credentials scrubbed")
    func upstreamErrorScrubbed() async throws {
        try await AgentHarness.with(aliases: [
            "limited": "mock+status=429+echo_key", "broken": "mock+status=500",
        ]) { harness in
            let limited = try await harness.chat(model: "limited")
            #expect(limited.status == 429)
            #expect(!limited.text.contains("sk-test-provider-secret-0123456789"))
            #expect(!limited.text.contains("0123456789"))
            #expect(limited.text.contains("[REDACTED]"))
            #expect(try errorBody(limited).code == "mock_429")
            let broken = try await harness.chat(model: "broken")
            #expect(broken.status == 500)
            let records = await harness.auditRecords(2)
            #expect(records.map { $0["error"] as? String } == ["upstream_http_429", "upstream_http_500"])
            #expect(!harness.audit.all.joined().contains("0123456789"))
        }
    }

    @Test("502 when the upstream is unreachable or its certificate is untrusted")
    func unreachable() async throws {
        try await AgentHarness.with { harness in
            // A port held bound but never listening refuses every connection, and no other
            // test can be handed it meanwhile (a stopped server's port could be).
            let refusing = try ExternalProcess.refusingPort()
            defer { refusing.close() }
            try await harness.restartAgent(
                yaml: harness.yaml.replacingOccurrences(
                    of: "127.0.0.1:\(harness.mock.port)", with: "127.0.0.1:\(refusing.port)"))
            let refused = try await harness.chat()
            #expect(refused.status == 502)
            #expect(try errorBody(refused).code == "upstream_connect_failed")
            #expect(!refused.text.contains("sk-test"))
        }
    }

    @Test("504 when the first byte does not come in time")
    func firstByteTimeout() async throws {
        try await AgentHarness.with(
            aliases: ["slow": "mock+first_byte_delay_ms=3000"],
            settings: "sluice_settings:\n  first_byte_timeout_seconds: 0.3\n"
        ) { harness in
            let response = try await harness.chat(model: "slow")
            #expect(response.status == 504)
            #expect(try errorBody(response).code == "upstream_first_byte_timeout")
        }
    }

    @Test("a request that trickles in is cut off: 408 mid-body, a silent close mid-headers")
    func slowCallers() async throws {
        // Long enough that a loaded machine connects and writes within it (1 s was not, once
        // the fleet tests' agent processes share the cores); the body never completes, so the
        // timeout still fires.
        try await AgentHarness.with(settings: "sluice_settings:\n  request_read_timeout_seconds: 3\n") { harness in
            let slowBody = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\""
            let response = try await harness.send(raw: slowBody)
            #expect(response.status == 408)
            #expect(try errorBody(response).code == "request_timeout")
            let slowHeaders = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Trickle: a"
            await #expect(throws: TestClientError.self) {
                _ = try await harness.send(raw: slowHeaders)
            }
            #expect(harness.mock.requests.isEmpty)
        }
    }

    @Test("connections beyond max_connections are closed on accept")
    func connectionCap() async throws {
        try await AgentHarness.with(settings: "sluice_settings:\n  max_connections: 2\n") { harness in
            // Two callers hold the two allowed connections; a third is closed on accept.
            var held: [any Channel] = []
            for _ in 0..<2 {
                let channel = try await ClientBootstrap(group: harness.group).connect(
                    host: "127.0.0.1", port: harness.agentPort
                ).get()
                held.append(channel)
            }
            await #expect(throws: (any Error).self) {
                _ = try await TestHTTPClient.get("/healthz", port: harness.agentPort, group: harness.group)
            }
            for channel in held { try await channel.close() }
        }
    }
}
