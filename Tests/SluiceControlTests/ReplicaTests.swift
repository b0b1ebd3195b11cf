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
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "sluice-control"
        ).path
    }

    /// Two replicas on a new database, sharing one data directory's secrets.
    struct Replicas: Sendable {
        let processes: [ExternalProcess]
        let group: MultiThreadedEventLoopGroup
        let directory: TemporaryDirectory
        /// The replicas' shared signing key, raw: the key type itself is not Sendable.
        let publicKeyBytes: Data
        var publicKey: Curve25519.Signing.PublicKey {
            get throws { try Curve25519.Signing.PublicKey(rawRepresentation: publicKeyBytes) }
        }

        init() async throws {
            group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            directory = try TemporaryDirectory()
            let server = try await TemporaryPostgres.server()
            let url = "postgres://postgres@127.0.0.1:\(server.port)/\(try await server.createDatabase())"
            // Both replicas must sign with the same key and hash with the same pepper: one
            // data directory's secrets, shared, as a Kubernetes Secret would be.
            let shared = directory.file("shared")
            let environment = [
                "SLUICE_ADMIN_TOKEN": ControlHarness.adminToken, "SLUICE_KEY_PEPPER": "replica-test-pepper-0123456789",
                "PATH": "/usr/bin:/bin",
            ]
            var started: [ExternalProcess] = []
            for index in 0..<2 {
                let port = try await ExternalProcess.freePort(group: group)
                started.append(
                    try await ExternalProcess(
                        executable: ReplicaTests.binary,
                        arguments: ["--listen", "127.0.0.1:\(port)", "--db", url, "--data-dir", shared],
                        port: port, group: group, environment: environment,
                        stderrPath: directory.file("replica-\(index).log")))
            }
            processes = started
            let encodedKey = try String(contentsOfFile: "\(shared)/signing-key.pub", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            publicKeyBytes = try #require(Data(base64Encoded: encodedKey))
        }

        func call(
            _ index: Int, _ method: String, _ path: String, json: String = "",
            token: String = ControlHarness.adminToken,
            headers: [(String, String)] = []
        ) async throws -> TestResponse {
            try await TestHTTPClient.request(
                method, path, json: json, bearer: token, headers: headers, port: processes[index].port, group: group)
        }

        func stop() async throws {
            for process in processes { await process.stop() }
            try await group.shutdownGracefully()
            directory.remove()
        }
    }

    @Test("a change made through one replica is served by the other, and wakes its long-polls")
    func twoProcesses() async throws {
        let fleet = try await Replicas()
        let replicas = [0, 1]
        let publicKey = try fleet.publicKey
        @Sendable func call(
            _ index: Int, _ method: String, _ path: String, json: String = "",
            token: String = ControlHarness.adminToken,
            headers: [(String, String)] = []
        ) async throws -> TestResponse {
            try await fleet.call(index, method, path, json: json, token: token, headers: headers)
        }

        #expect(try await call(replicas[0], "POST", "/v1/admin/teams", json: #"{"name":"ml"}"#).status == 201)
        let created = try await call(replicas[0], "POST", "/v1/admin/keys", json: #"{"id":"ci","team":"ml"}"#)
        #expect(created.status == 201)
        // Replica B sees A's writes, and refuses a duplicate A already made.
        #expect(try await call(replicas[1], "GET", "/v1/admin/keys/ci").status == 200)
        #expect(try await call(replicas[1], "POST", "/v1/admin/teams", json: #"{"name":"ml"}"#).status == 409)

        let tokenAnswer = try await call(replicas[1], "POST", "/v1/admin/agents", json: #"{"id":"agent-1"}"#)
        let token =
            try #require(try JSONSerialization.jsonObject(with: Data(tokenAnswer.body)) as? [String: Any])["token"]
            as? String ?? ""
        let first = try await call(replicas[1], "GET", "/v1/agent/policy", token: token)
        let tag = try #require(first.header("etag"))
        // A long-poll on B, a revoke through A: B answers within its one-second re-read.
        let pollStarted = ContinuousClock.now
        let poll = Task {
            try await call(
                replicas[1], "GET", "/v1/agent/policy?wait=20", token: token, headers: [("If-None-Match", tag)])
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await call(replicas[0], "POST", "/v1/admin/keys/ci/revoke", json: "{}").status == 200)
        let answer = try await poll.value
        #expect(answer.status == 200 && ContinuousClock.now - pollStarted < .seconds(3))
        let document = try WireCoding.decoder.decode(SignedBundle.self, from: Data(answer.body)).verified(
            with: publicKey)
        #expect(document.keys.first?.revoked == true)

        // The same usage batch sent to both replicas counts once.
        let batch =
            #"{"agent_id":"agent-1","epoch":"e1","sequence":1,"deltas":[{"hour":1795435200,"team":"ml","#
            + #""service":"a/b","model":"m","requests":2,"prompt_tokens":2,"completion_tokens":2,"#
            + #""cost_pico_usd":7,"denials":{}}]}"#
        async let viaA = call(replicas[0], "POST", "/v1/agent/usage", json: batch, token: token)
        async let viaB = call(replicas[1], "POST", "/v1/agent/usage", json: batch, token: token)
        let acks = try await [viaA, viaB].map { String(decoding: $0.body, as: UTF8.self) }
        #expect(acks.filter { $0.contains(#""duplicate":false"#) }.count == 1)
        let usage = try await call(replicas[1], "GET", "/v1/admin/usage?group_by=team&from=1795435200&to=1795438800")
        #expect(usage.text.contains(#""requests":2"#))

        try await fleet.stop()
    }

    @Test("writes on two replicas that each pass alone but together would dangle: one lands, one is refused")
    func racingWrites() async throws {
        let fleet = try await Replicas()
        let model = #"{"api_base":"https://api.openai.com/v1","upstream_model":"gpt-4o"}"#
        #expect(try await fleet.call(0, "POST", "/v1/admin/teams", json: #"{"name":"ml"}"#).status == 201)
        let pairs = 12
        for index in 0..<pairs {
            let body = #"{"alias":"m\#(index)","deployments":[\#(model)]}"#
            #expect(try await fleet.call(0, "POST", "/v1/admin/models", json: body).status == 201)
        }
        // Replica A deletes each alias while replica B creates a key allowed only that alias.
        let outcomes = try await withThrowingTaskGroup(of: (Int, Int, Int).self) { group in
            for index in 0..<pairs {
                group.addTask {
                    async let deleted = fleet.call(0, "DELETE", "/v1/admin/models/m\(index)")
                    async let created = fleet.call(
                        1, "POST", "/v1/admin/keys",
                        json: #"{"id":"k\#(index)","team":"ml","allowed_models":["m\#(index)"]}"#)
                    return (index, try await deleted.status, try await created.status)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for (index, deleted, created) in outcomes {
            // Whichever came second saw the first: a 409 for the delete, a 400 for the key.
            #expect((deleted == 204) != (created == 201), "pair \(index): delete \(deleted), create \(created)")
            #expect([204, 409].contains(deleted) && [201, 400].contains(created), "pair \(index)")
        }
        // A patch racing a revocation cannot bring the key back.
        let keyed = outcomes.filter { $0.2 == 201 }.map(\.0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in keyed {
                group.addTask { _ = try await fleet.call(0, "POST", "/v1/admin/keys/k\(index)/revoke", json: "{}") }
                group.addTask {
                    _ = try await fleet.call(1, "PATCH", "/v1/admin/keys/k\(index)", json: #"{"metadata":{"n":"1"}}"#)
                }
            }
            try await group.waitForAll()
        }
        let registered = try await fleet.call(0, "POST", "/v1/admin/agents", json: #"{"id":"a1"}"#)
        let answer = try JSONSerialization.jsonObject(with: Data(registered.body)) as? [String: Any]
        let token = try #require(answer?["token"] as? String)
        let bundle = try await fleet.call(1, "GET", "/v1/agent/policy", token: token)
        let document = try WireCoding.decoder.decode(SignedBundle.self, from: Data(bundle.body))
            .verified(with: try fleet.publicKey)
        #expect(document.danglingReferences().isEmpty, "\(document.danglingReferences())")
        #expect(document.keys.count == keyed.count && document.keys.allSatisfy { $0.revoked })
        try await fleet.stop()
    }
}
