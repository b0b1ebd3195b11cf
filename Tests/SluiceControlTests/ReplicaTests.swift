import Crypto
import Foundation
import NIOPosix
import SluiceTestSupport
import SluiceWire
import Testing

/// Two real `sluice-control` processes on one PostgreSQL database, as two replicas behind a
/// load balancer would run.
@Suite("sluice-control replicas")
struct ReplicaTests {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("sluice-control").path
    }

    @Test("a change made through one replica is served by the other, and wakes its long-polls")
    func twoProcesses() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await TemporaryPostgres.server()
        let url = "postgres://postgres@127.0.0.1:\(server.port)/\(try await server.createDatabase())"
        // Both replicas must sign with the same key and hash with the same pepper: one
        // data directory's secrets, shared, as a Kubernetes Secret would be.
        let shared = directory.file("shared")
        let environment = ["SLUICE_ADMIN_TOKEN": ControlHarness.adminToken, "SLUICE_KEY_PEPPER": "replica-test-pepper-0123456789",
                           "PATH": "/usr/bin:/bin"]
        var started: [ExternalProcess] = []
        for index in 0..<2 {
            let port = try await ExternalProcess.freePort(group: group)
            started.append(try await ExternalProcess(
                executable: Self.binary, arguments: ["--listen", "127.0.0.1:\(port)", "--db", url, "--data-dir", shared],
                port: port, group: group, environment: environment, stderrPath: directory.file("replica-\(index).log")))
        }
        let replicas = started
        @Sendable func call(_ replica: ExternalProcess, _ method: String, _ path: String, json: String = "", token: String = ControlHarness.adminToken,
                            headers: [(String, String)] = []) async throws -> TestResponse {
            try await TestHTTPClient.request(method, path, json: json, bearer: token, headers: headers, port: replica.port, group: group)
        }
        let publicKey = try Curve25519.Signing.PublicKey(
            rawRepresentation: try #require(Data(base64Encoded: try String(contentsOfFile: "\(shared)/signing-key.pub", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines))))

        #expect(try await call(replicas[0], "POST", "/v1/admin/teams", json: #"{"name":"ml"}"#).status == 201)
        let created = try await call(replicas[0], "POST", "/v1/admin/keys", json: #"{"id":"ci","team":"ml"}"#)
        #expect(created.status == 201)
        // Replica B sees A's writes, and refuses a duplicate A already made.
        #expect(try await call(replicas[1], "GET", "/v1/admin/keys/ci").status == 200)
        #expect(try await call(replicas[1], "POST", "/v1/admin/teams", json: #"{"name":"ml"}"#).status == 409)

        let tokenAnswer = try await call(replicas[1], "POST", "/v1/admin/agents", json: #"{"id":"agent-1"}"#)
        let token = try #require(try JSONSerialization.jsonObject(with: Data(tokenAnswer.body)) as? [String: Any])["token"] as? String ?? ""
        let first = try await call(replicas[1], "GET", "/v1/agent/policy", token: token)
        let tag = try #require(first.header("etag"))
        // A long-poll on B, a revoke through A: B answers within its one-second re-read.
        let pollStarted = ContinuousClock.now
        let poll = Task { try await call(replicas[1], "GET", "/v1/agent/policy?wait=20", token: token, headers: [("If-None-Match", tag)]) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await call(replicas[0], "POST", "/v1/admin/keys/ci/revoke", json: "{}").status == 200)
        let answer = try await poll.value
        #expect(answer.status == 200 && ContinuousClock.now - pollStarted < .seconds(3))
        let document = try WireCoding.decoder.decode(SignedBundle.self, from: Data(answer.body)).verified(with: publicKey)
        #expect(document.keys.first?.revoked == true)

        // The same usage batch sent to both replicas counts once.
        let batch = #"{"agent_id":"agent-1","epoch":"e1","sequence":1,"deltas":[{"hour":1795435200,"team":"ml","service":"a/b","model":"m","requests":2,"prompt_tokens":2,"completion_tokens":2,"cost_pico_usd":7,"denials":{}}]}"#
        async let viaA = call(replicas[0], "POST", "/v1/agent/usage", json: batch, token: token)
        async let viaB = call(replicas[1], "POST", "/v1/agent/usage", json: batch, token: token)
        let acks = try await [viaA, viaB].map { String(decoding: $0.body, as: UTF8.self) }
        #expect(acks.filter { $0.contains(#""duplicate":false"#) }.count == 1)
        let usage = try await call(replicas[1], "GET", "/v1/admin/usage?group_by=team&from=1795435200&to=1795438800")
        #expect(usage.text.contains(#""requests":2"#))

        for replica in replicas { await replica.stop() }
        try await group.shutdownGracefully()
    }
}
