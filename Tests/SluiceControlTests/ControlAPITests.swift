import Crypto
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import SluiceControl
import SluicePolicy
import SluiceTestSupport
import SluiceWire
import Testing

/// A control plane on 127.0.0.1 (port 0) over a fresh SQLite store, for one test.
final class ControlHarness: ScopedHarness, @unchecked Sendable {
    static let adminToken = "admin-token-for-tests-0123456789"
    static let pepper = Secret("control-test-pepper-0123456789")
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let directory: TemporaryDirectory
    let store: any Store
    /// What agents verify bundles with.
    let publicKey: Curve25519.Signing.PublicKey
    let publisher: PolicyPublisher
    private(set) var port = 0
    private var serviceGroup: ServiceGroup?
    private var task: Task<Void, any Error>?
    private var isShutDown = false

    /// The production wiring (`ControlPlane`) over a fresh SQLite file and data directory.
    init(configure: (inout ControlOptions) throws -> Void = { _ in }) async throws {
        directory = try TemporaryDirectory()
        var options = ControlOptions(
            adminToken: Secret(Self.adminToken), environment: ["SLUICE_KEY_PEPPER": Self.pepper.reveal()])
        options.port = 0
        options.database = "sqlite:" + directory.file("control.db")
        options.dataDirectory = directory.file("data")
        options.policyPollInterval = .milliseconds(200)
        // Every batch is checked against the budgets, so tests need no waiting.
        options.budgetCheckInterval = 0
        try configure(&options)
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        options.onListening = { port in continuation.yield(port) }
        let control = try ControlPlane(options, logger: Logger(label: "test"))
        store = control.store
        publicKey = control.publicKey
        publisher = control.publisher
        let serviceGroup = ServiceGroup(configuration: .init(services: [control], logger: Logger(label: "test")))
        self.serviceGroup = serviceGroup
        task = Task { try await serviceGroup.run() }
        for await bound in stream {
            port = bound
            break
        }
    }

    func request(
        _ method: String, _ path: String, json: String? = nil, token: String? = adminToken,
        headers: [(String, String)] = []
    ) async throws -> TestResponse {
        try await TestHTTPClient.request(
            method, path, json: json, bearer: token, headers: headers, port: port, group: group)
    }

    func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    func agentToken(_ id: String = "shop/checkout/pod-1") async throws -> String {
        let response = try await request("POST", "/v1/admin/agents", json: #"{"id":"\#(id)"}"#)
        return try #require(try json(response)["token"] as? String)
    }

    /// Stops the control plane and the event loops; safe to call more than once.
    func shutdown() async throws {
        guard !isShutDown else { return }
        isShutDown = true
        await serviceGroup?.triggerGracefulShutdown()
        try await task?.value
        try await group.shutdownGracefully()
        directory.remove()
    }

    /// Runs `body` with a started control plane and shuts it down afterwards, also when
    /// `body` throws.
    static func with(
        configure: @escaping (inout ControlOptions) throws -> Void = { _ in },
        _ body: (ControlHarness) async throws -> Void
    ) async throws {
        try await with(starting: { try await ControlHarness(configure: configure) }, body)
    }
}

@Suite("Control plane HTTP API")
struct ControlAPITests {
    @Test("admin routes need the admin token; agent routes need an agent token; neither opens the other")
    func authentication() async throws {
        try await ControlHarness.with { control in
            #expect(try await control.request("GET", "/v1/admin/teams", token: nil).status == 401)
            #expect(try await control.request("GET", "/v1/admin/teams", token: "wrong-token-0123456789").status == 401)
            let agentToken = try await control.agentToken()
            #expect(try await control.request("GET", "/v1/admin/teams", token: agentToken).status == 401)
            #expect(
                try await control.request("GET", "/v1/agent/policy", token: ControlHarness.adminToken).status == 401)
            #expect(try await control.request("GET", "/v1/agent/policy", token: agentToken).status == 200)
            let refused = try await control.request("GET", "/v1/admin/teams", token: nil)
            #expect(refused.text.contains(#""code":"unauthorized""#))
        }
    }

    @Test("a key is shown once at creation; listings show id and prefix, never the secret or its hash")
    func keys() async throws {
        try await ControlHarness.with { control in
            #expect(try await control.request("POST", "/v1/admin/teams", json: #"{"name":"marketing"}"#).status == 201)
            #expect(
                try await control.request("POST", "/v1/admin/projects", json: #"{"name":"website","team":"marketing"}"#)
                    .status == 201)
            #expect(
                try await control.request(
                    "POST", "/v1/admin/models",
                    json: """
                        {"alias":"gpt4_limited",
                         "deployments":[{"api_base":"https://api.openai.com/v1","upstream_model":"gpt-4o"}]}
                        """
                ).status == 201)
            let created = try await control.request(
                "POST", "/v1/admin/keys",
                json: """
                    {"team":"marketing","project":"website","allowed_models":["gpt4_limited"],
                     "metadata":{"owner":"marketing-team","env":"prod"},
                     "limits":{"requests_per_minute":60,"tokens_per_minute":60000,"monthly_spend_usd":200}}
                    """)
            #expect(created.status == 201)
            let body = try control.json(created)
            let secret = try #require(body["key"] as? String)
            let details = try #require(body["details"] as? [String: Any])
            let id = try #require(details["id"] as? String)
            #expect(secret.hasPrefix("sk-sluice-") && secret.count == 42)
            #expect(!secret.contains(id.dropFirst(4)))  // the made-up id shares nothing with the secret
            #expect(details["prefix"] as? String == String(secret.prefix(14)))
            let listing = try await control.request("GET", "/v1/admin/keys")
            #expect(
                listing.status == 200 && listing.text.contains(id) && !listing.text.contains(secret)
                    && !listing.text.contains("hmac-sha256"))
            let one = try await control.request("GET", "/v1/admin/keys/\(id)")
            #expect(!one.text.contains(secret) && one.text.contains(#""owner":"marketing-team""#))

            // An update applies without rotating; rotation issues a new secret with a grace period.
            let patched = try await control.request(
                "PATCH", "/v1/admin/keys/\(id)", json: #"{"limits":{"requests_per_minute":120}}"#)
            #expect(patched.status == 200 && patched.text.contains(#""requests_per_minute":120"#))
            let rotated = try control.json(
                try await control.request(
                    "POST", "/v1/admin/keys/\(id)/rotate", json: #"{"grace_period_seconds":3600}"#))
            let newSecret = try #require(rotated["key"] as? String)
            #expect(newSecret != secret)
            let revoked = try await control.request("POST", "/v1/admin/keys/\(id)/revoke", json: "{}")
            #expect(revoked.status == 200 && revoked.text.contains(#""revoked":true"#))
            #expect(try await control.request("POST", "/v1/admin/keys/\(id)/rotate", json: "{}").status == 409)
            // A key for a team that does not exist, and a project of another team, are refused.
            #expect(try await control.request("POST", "/v1/admin/keys", json: #"{"team":"ghosts"}"#).status == 400)
            #expect(try await control.request("DELETE", "/v1/admin/teams/marketing").status == 409)
        }
    }

    @Test("end users: created, patched and blocked strictly; the bundle carries them, a block only when set")
    func endUsers() async throws {
        try await ControlHarness.with { control in
            let token = try await control.agentToken()
            let created = try await control.request(
                "POST", "/v1/admin/end-users", json: #"{"name":"u-123","limits":{"requests_per_minute":5}}"#)
            #expect(created.status == 201, "\(created.text)")
            let typo = try await control.request("POST", "/v1/admin/end-users", json: #"{"name":"u-9","blockd":true}"#)
            #expect(typo.status == 400 && typo.text.contains(#"did you mean \"blocked\""#), "\(typo.text)")
            let badName = try await control.request("POST", "/v1/admin/end-users", json: #"{"name":""}"#)
            #expect(badName.status == 400 && badName.text.contains("an end user is 1 to 256 bytes"), "\(badName.text)")
            let badLimit = try await control.request(
                "POST", "/v1/admin/end-users", json: #"{"name":"u-9","limits":{"requests_per_minute":0}}"#)
            #expect(badLimit.status == 400 && badLimit.text.contains("requests_per_minute"), "\(badLimit.text)")

            var bundle = try await control.request("GET", "/v1/agent/policy", token: token)
            var document = try WireCoding.decoder.decode(SignedBundle.self, from: Data(bundle.body))
                .verified(with: control.publicKey)
            let endUser = try #require(document.endUsers?.first)
            #expect(document.endUsers == [EndUserDocument(name: "u-123", limits: LimitsDocument(requestsPerMinute: 5))])
            let encoded = String(decoding: try WireCoding.encoder.encode(endUser), as: UTF8.self)
            #expect(!encoded.contains("blocked"), "an end user not blocked encodes as before blocks existed")

            let patched = try await control.request(
                "PATCH", "/v1/admin/end-users/u-123", json: #"{"blocked":true}"#)
            #expect(patched.status == 200 && patched.text.contains(#""requests_per_minute":5"#), "\(patched.text)")
            bundle = try await control.request("GET", "/v1/agent/policy", token: token)
            document = try WireCoding.decoder.decode(SignedBundle.self, from: Data(bundle.body))
                .verified(with: control.publicKey)
            #expect(document.endUsers?.first?.blocked == true)
            #expect(try await control.request("DELETE", "/v1/admin/end-users/u-123").status == 204)
            #expect(try await control.request("GET", "/v1/admin/end-users/u-123").status == 404)
        }
    }

    @Test("the bundle is signed, carries key hashes not keys, and answers If-None-Match with 304")
    func bundle() async throws {
        try await ControlHarness.with { control in
            let token = try await control.agentToken()
            _ = try await control.request(
                "POST", "/v1/admin/models",
                json: """
                    {"alias":"gpt-4o-mini",
                     "deployments":[{"api_base":"https://api.openai.com/v1","upstream_model":"gpt-4o-mini",
                                     "credential_ref":"OPENAI_API_KEY"}],
                     "input_cost_per_token":0.00000015,"output_cost_per_token":0.0000006}
                    """)
            #expect(
                try await control.request(
                    "POST", "/v1/admin/teams", json: #"{"name":"ml","denied_models":["gpt-4o-mini"]}"#
                ).status == 201)
            _ = try await control.request(
                "POST", "/v1/admin/services", json: #"{"name":"shop/checkout","keyless":true}"#)
            let secret = try #require(
                try control.json(
                    try await control.request("POST", "/v1/admin/keys", json: #"{"id":"ci","team":"ml"}"#))[
                        "key"] as? String)
            let response = try await control.request("GET", "/v1/agent/policy", token: token)
            #expect(response.status == 200)
            let tag = try #require(response.header("etag"))
            #expect(tag == "\"v5\"")  // 1 at start, then four writes
            #expect(!response.text.contains(secret))
            let bundle = try WireCoding.decoder.decode(SignedBundle.self, from: Data(response.body))
            let document = try bundle.verified(with: control.publicKey)
            #expect(document.version == 5 && document.keys.map(\.id) == ["ci"] && document.keys[0].prefix == nil)
            #expect(document.keys[0].hash == KeyHasher(pepper: ControlHarness.pepper).hash(secret).encoded)
            #expect(document.keyPepperFingerprint == PolicyPublisher.fingerprint(of: ControlHarness.pepper))
            #expect(document.services.first?.keyless == true && document.teams.first?.deniedModels == ["gpt-4o-mini"])
            let unchanged = try await control.request(
                "GET", "/v1/agent/policy", token: token, headers: [("If-None-Match", tag)])
            #expect(unchanged.status == 304 && unchanged.body.isEmpty)
            // The bundle turns into an engine policy on the agent's side.
            let context = PolicyDocument.LocalContext(
                keyPepper: ControlHarness.pepper, credential: { _ in Secret("sk-provider") },
                timeZone: { TimeZoneRules(fixedOffset: $0) })
            #expect(try document.policy(in: context).policy.keys.count == 1)
        }
    }

    @Test("a revoked agent token is refused: at once through this replica, within a second through another")
    func agentTokenRevocation() async throws {
        try await ControlHarness.with { control in
            let here = try await control.agentToken("pod-here")
            let elsewhere = try await control.agentToken("pod-elsewhere")
            // Both found (and kept) by their first calls.
            #expect(try await control.request("GET", "/v1/agent/policy", token: here).status == 200)
            #expect(try await control.request("GET", "/v1/agent/policy", token: elsewhere).status == 200)
            #expect(try await control.request("DELETE", "/v1/admin/agents/pod-here").status == 204)
            #expect(try await control.request("GET", "/v1/agent/policy", token: here).status == 401)
            // Another replica deletes through the shared store: this one learns of it from the
            // agent-token generation, read at most once a second (AgentTokenCacheTests pins the
            // timing with a clock; here the deadline only stops a broken build from hanging).
            #expect(try await control.store.deleteAgent(id: "pod-elsewhere"))
            let deleted = ContinuousClock.now
            var status = 200
            while status == 200, ContinuousClock.now - deleted < .seconds(20) {
                status = try await control.request("GET", "/v1/agent/policy", token: elsewhere).status
                if status == 200 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(status == 401)
        }
    }

    @Test("a long-poll answers as soon as the policy changes")
    func longPoll() async throws {
        try await ControlHarness.with { control in
            let token = try await control.agentToken()
            _ = try await control.request("POST", "/v1/admin/teams", json: #"{"name":"ml"}"#)
            _ = try await control.request("POST", "/v1/admin/keys", json: #"{"id":"ci","team":"ml"}"#)
            let tag = try #require(try await control.request("GET", "/v1/agent/policy", token: token).header("etag"))
            let poll = Task {
                try await control.request(
                    "GET", "/v1/agent/policy?wait=30", token: token, headers: [("If-None-Match", tag)])
            }
            // The poll must be waiting before the change, or the test proves nothing.
            while control.publisher.waitingPolls == 0 { try await Task.sleep(for: .milliseconds(2)) }
            _ = try await control.request("POST", "/v1/admin/keys/ci/revoke", json: "{}")
            let changed = ContinuousClock.now
            let answer = try await poll.value
            let waited = ContinuousClock.now - changed
            #expect(answer.status == 200 && answer.header("etag") != tag)
            let document = try WireCoding.decoder.decode(SignedBundle.self, from: Data(answer.body)).verified(
                with: control.publicKey)
            #expect(document.keys.first?.revoked == true)
            // Woken by the change, not by the end of its 30 s wait (the bound leaves room for
            // a loaded two-core machine).
            #expect(waited < .seconds(10))
            // With nothing changing, the long-poll ends at its wait with 304.
            let idle = try await control.request(
                "GET", "/v1/agent/policy?wait=1", token: token,
                headers: [("If-None-Match", answer.header("etag") ?? "")])
            #expect(idle.status == 304)
        }
    }

    @Test("usage batches over HTTP apply once and only for the authenticated agent")
    func usage() async throws {
        try await ControlHarness.with { control in
            let token = try await control.agentToken("agent-1")
            let batch =
                #"{"agent_id":"agent-1","epoch":"e1","sequence":1,"deltas":[{"hour":1795435200,"team":"ml","#
                + #""service":"shop/checkout","key_id":"ci","model":"gpt-4o-mini","requests":3,"prompt_tokens":30,"#
                + #""completion_tokens":9,"cost_pico_usd":9000,"denials":{}}]}"#
            let first = try await control.request("POST", "/v1/agent/usage", json: batch, token: token)
            #expect(
                first.status == 200 && first.text.contains(#""acknowledged_sequence":1"#)
                    && first.text.contains(#""duplicate":false"#))
            let again = try await control.request("POST", "/v1/agent/usage", json: batch, token: token)
            #expect(again.text.contains(#""duplicate":true"#))
            let impostor = try await control.request(
                "POST", "/v1/agent/usage", json: batch.replacingOccurrences(of: "agent-1", with: "agent-2"),
                token: token)
            #expect(impostor.status == 403)
            #expect(try await control.request("POST", "/v1/agent/usage", json: "{not json", token: token).status == 400)
            let usage = try await control.request(
                "GET", "/v1/admin/usage?group_by=team,model&from=1795435200&to=1795438800")
            #expect(
                usage.status == 200 && usage.text.contains(#""cost_pico_usd":9000"#)
                    && usage.text.contains(#""team":"ml""#)
            )
            #expect(try await control.request("GET", "/v1/admin/usage?group_by=colour").status == 400)
        }
    }

    @Test("a usage batch carrying a lease renewal is answered with the grants; a bad renewal never holds usage up")
    func usageCarryingRenewal() async throws {
        try await ControlHarness.with { control in
            let token = try await control.agentToken("agent-1")
            func batch(_ sequence: Int, limit: String) -> String {
                #"{"agent_id":"agent-1","epoch":"e1","sequence":\#(sequence),"deltas":[{"hour":1795435200,"#
                    + #""team":"ml","service":"shop/checkout","key_id":"ci","model":"m","requests":2,"#
                    + #""prompt_tokens":0,"completion_tokens":0,"cost_pico_usd":0,"denials":{}}],"#
                    + #""leases":{"instance":"e1","demands":[{"scope_kind":"team","scope":"ml","limit":"\#(limit)","#
                    + #""per_minute":30,"limit_value":600,"held":5}]}}"#
            }
            let answer = try await control.request(
                "POST", "/v1/agent/usage", json: batch(1, limit: "requests_per_minute"), token: token)
            let ack = try WireCoding.decoder.decode(UsageAck.self, from: Data(answer.body))
            #expect(answer.status == 200 && ack.acknowledgedSequence == 1 && !ack.duplicate)
            // Alone on the limit: the whole of it.
            #expect(ack.leases?.grants.map(\.perMinute) == [600])
            #expect(ack.leases?.grants.first?.limit == "requests_per_minute")
            // A renewal the control plane refuses is left out of the answer; the usage counts.
            let refused = try await control.request(
                "POST", "/v1/agent/usage", json: batch(2, limit: "requests_per_fortnight"), token: token)
            let second = try WireCoding.decoder.decode(UsageAck.self, from: Data(refused.body))
            #expect(refused.status == 200 && second.acknowledgedSequence == 2 && second.leases == nil)
            let usage = try await control.request("GET", "/v1/admin/usage?from=1795435200&to=1795438800")
            #expect(usage.text.contains(#""requests":4"#))
        }
    }

    @Test("usage groups by key metadata and carries refusals by reason")
    func usageByMetadata() async throws {
        try await ControlHarness.with { control in
            let token = try await control.agentToken("agent-1")
            _ = try await control.request("POST", "/v1/admin/teams", json: #"{"name":"ml"}"#)
            for (id, owner) in [("ci", "ana"), ("ci2", "bo"), ("ci3", "ana")] {
                let created = try await control.request(
                    "POST", "/v1/admin/keys", json: #"{"id":"\#(id)","team":"ml","metadata":{"owner":"\#(owner)"}}"#)
                #expect(created.status == 201)
            }
            func delta(_ key: String?, cost: Int, denials: String = "{}") -> String {
                let keyField = key.map { #""key_id":"\#($0)","# } ?? ""
                return
                    #"{"hour":1795435200,"team":"ml","service":"shop/checkout",\#(keyField)"model":"m","requests":1,"#
                    + #""prompt_tokens":1,"completion_tokens":1,"cost_pico_usd":\#(cost),"denials":\#(denials)}"#
            }
            let deltas = [
                delta("ci", cost: 9000, denials: #"{"budget_exceeded":2}"#), delta("ci2", cost: 1000),
                delta("ci3", cost: 500, denials: #"{"budget_exceeded":1,"rate_limited":1}"#), delta(nil, cost: 10),
            ]
            let batch =
                #"{"agent_id":"agent-1","epoch":"e1","sequence":1,"deltas":[\#(deltas.joined(separator: ","))]}"#
            #expect(try await control.request("POST", "/v1/agent/usage", json: batch, token: token).status == 200)
            let answer = try await control.request(
                "GET", "/v1/admin/usage?group_by=meta.owner&from=1795435200&to=1795438800")
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [[String: Any]])
            let summary = rows.map { row in
                "\((row["group"] as? [String: String])?["meta.owner"] ?? "?") \(row["cost_pico_usd"] as? Int ?? -1)"
                    + " \(((row["denials"] as? [String: Int]) ?? [:]).sorted(by: <).map { "\($0.key)=\($0.value)" })"
            }
            #expect(summary == [#"ana 9500 ["budget_exceeded=3", "rate_limited=1"]"#, "bo 1000 []", " 10 []"])
            let top = try await control.request(
                "GET", "/v1/admin/usage?group_by=meta.owner,model&limit=1&from=1795435200&to=1795438800")
            #expect(
                top.text.contains(#""meta.owner":"ana""#) && !top.text.contains(#""bo""#)
                    && top.text.contains(#""model":"m""#))
            #expect(try await control.request("GET", "/v1/admin/usage?group_by=meta.").status == 400)
        }
    }

    /// Every route the control plane must serve: a change to the API changes this list.
    static let expectedRoutes: [(method: String, path: String)] = [
        ("GET", "/healthz"), ("GET", "/openapi.json"),
        ("GET", "/v1/admin/teams"), ("POST", "/v1/admin/teams"), ("GET", "/v1/admin/teams/{name}"),
        ("PUT", "/v1/admin/teams/{name}"), ("PATCH", "/v1/admin/teams/{name}"), ("DELETE", "/v1/admin/teams/{name}"),
        ("GET", "/v1/admin/projects"), ("POST", "/v1/admin/projects"), ("GET", "/v1/admin/projects/{name}"),
        ("PUT", "/v1/admin/projects/{name}"), ("PATCH", "/v1/admin/projects/{name}"),
        ("DELETE", "/v1/admin/projects/{name}"),
        ("GET", "/v1/admin/services"), ("POST", "/v1/admin/services"),
        ("GET", "/v1/admin/services/{namespace}/{service}"),
        ("PUT", "/v1/admin/services/{namespace}/{service}"), ("PATCH", "/v1/admin/services/{namespace}/{service}"),
        ("DELETE", "/v1/admin/services/{namespace}/{service}"),
        ("GET", "/v1/admin/services/{namespace}"), ("PUT", "/v1/admin/services/{namespace}"),
        ("PATCH", "/v1/admin/services/{namespace}"), ("DELETE", "/v1/admin/services/{namespace}"),
        ("GET", "/v1/admin/models"), ("POST", "/v1/admin/models"), ("GET", "/v1/admin/models/{alias}"),
        ("PUT", "/v1/admin/models/{alias}"), ("PATCH", "/v1/admin/models/{alias}"),
        ("DELETE", "/v1/admin/models/{alias}"),
        ("GET", "/v1/admin/end-users"), ("POST", "/v1/admin/end-users"), ("GET", "/v1/admin/end-users/{name}"),
        ("PUT", "/v1/admin/end-users/{name}"), ("PATCH", "/v1/admin/end-users/{name}"),
        ("DELETE", "/v1/admin/end-users/{name}"),
        ("GET", "/v1/admin/keys"), ("POST", "/v1/admin/keys"), ("GET", "/v1/admin/keys/{id}"),
        ("PATCH", "/v1/admin/keys/{id}"),
        ("DELETE", "/v1/admin/keys/{id}"),
        ("POST", "/v1/admin/keys/{id}/rotate"), ("POST", "/v1/admin/keys/{id}/revoke"),
        ("GET", "/v1/admin/settings"), ("PUT", "/v1/admin/settings"), ("PATCH", "/v1/admin/settings"),
        ("GET", "/v1/admin/usage"), ("GET", "/v1/admin/usage/export"), ("GET", "/v1/admin/audit"),
        ("POST", "/v1/admin/agents"),
        ("GET", "/v1/admin/agents"), ("DELETE", "/v1/admin/agents/{id}"), ("GET", "/v1/admin/agent-auth"),
        ("GET", "/v1/agent/policy"), ("POST", "/v1/agent/usage"), ("POST", "/v1/agent/leases"),
        ("GET", "/readyz"),
        // LiteLLM's admin API (docs/litellm.md).
        ("POST", "/key/generate"), ("POST", "/key/update"), ("POST", "/key/delete"), ("GET", "/key/info"),
        ("GET", "/key/list"), ("POST", "/key/regenerate"), ("POST", "/key/block"), ("POST", "/key/unblock"),
        ("POST", "/team/new"), ("POST", "/team/update"), ("POST", "/team/delete"), ("GET", "/team/info"),
        ("GET", "/team/list"), ("POST", "/team/model/add"), ("POST", "/team/model/delete"),
        ("POST", "/manage/proxy_key"), ("PATCH", "/manage/proxy_key/{key}"), ("GET", "/global/spend/report"),
        ("GET", "/spend/logs"), ("POST", "/customer/new"), ("POST", "/customer/update"),
        ("POST", "/customer/delete"), ("POST", "/customer/block"), ("POST", "/customer/unblock"),
        ("GET", "/customer/info"), ("GET", "/customer/list"),
    ]

    @Test("/openapi.json describes exactly the routes served, and every one of them answers")
    func openAPI() async throws {
        try await ControlHarness.with { control in
            let response = try await control.request("GET", "/openapi.json", token: nil)
            let document = try control.json(response)
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            var documented: Set<String> = []
            for (path, operations) in paths {
                for method in operations.keys { documented.insert("\(method.uppercased()) \(path)") }
            }
            let expected = Set(Self.expectedRoutes.map { "\($0.method) \($0.path)" })
            #expect(documented == expected)
            // Every documented route is really routed: no 404 "no such route" for any of them.
            let agentToken = try await control.agentToken()
            for route in Self.expectedRoutes {
                let path = route.path.replacingOccurrences(of: "{namespace}/{service}", with: "ns/svc")
                    .replacingOccurrences(of: "{name}", with: "x").replacingOccurrences(of: "{alias}", with: "x")
                    .replacingOccurrences(of: "{id}", with: "x")
                let token = route.path.hasPrefix("/v1/agent") ? agentToken : ControlHarness.adminToken
                let answer = try await control.request(route.method, path, json: "{}", token: token)
                #expect(
                    answer.status != 404 || answer.text.contains("\"not_found\""),
                    "\(route.method) \(route.path) is not routed")
            }
        }
    }
}
