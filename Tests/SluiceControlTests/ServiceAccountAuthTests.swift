import Foundation
import Logging
import NIOPosix
import SluiceHTTP2
import SluiceKubernetes
import SluicePolicy
import SluiceTestSupport
import Synchronization
import Testing

@testable import SluiceControl

/// Agents authenticated by projected service-account tokens, against a real control plane
/// and a fake API server on 127.0.0.1 (TLS): TokenReview, offline key sets, claim rules,
/// refusals counted by reason, usage attributed to the verified service.
@Suite("Service-account agents")
struct ServiceAccountAuthTests {
    static let issuer = try! TestTokenIssuer()

    /// Runs `body` with a fake API server knowing `deployments` and a control plane that
    /// verifies tokens as `verification` says.
    static func withCluster(
        deployments: Set<String> = ["shop/checkout"],
        verification: AgentIdentitySettings.Verification = .tokenReview,
        claims: ServiceClaimRules = ServiceClaimRules(rules: ["*": .deployment]),
        _ body: (FakeKubernetesAPI, ControlHarness) async throws -> Void
    ) async throws {
        try await FakeKubernetesAPI.with(issuer: issuer, deployments: deployments) { api in
            let settings = api.settings(verification, claims: claims)
            try await ControlHarness.with(configure: { $0.agentIdentity = settings }) { control in
                try await body(api, control)
            }
        }
    }

    static func token(
        _ namespace: String = "shop", _ account: String = "checkout", pod: String? = "checkout-5f7c-x2x9z",
        audience: String = "sluice", issuedAt: Int64 = Int64(Date().timeIntervalSince1970),
        issuer: TestTokenIssuer = issuer
    ) throws -> String {
        try issuer.token(
            namespace: namespace, serviceAccount: account, pod: pod, audience: audience, issuedAt: issuedAt)
    }

    static func policy(_ control: ControlHarness, _ token: String, claiming service: String?) async throws
        -> TestResponse
    {
        try await control.request(
            "GET", "/v1/agent/policy", token: token, headers: service.map { [("Sluice-Service", $0)] } ?? [])
    }

    @Test("TokenReview: a pod's token for a Deployment it may claim is accepted, once reviewed, then cached")
    func tokenReviewAccepts() async throws {
        try await Self.withCluster { api, control in
            let token = try Self.token()
            let answer = try await Self.policy(control, token, claiming: "checkout")
            #expect(answer.status == 200, "\(answer.text)")
            #expect(answer.header("sluice-agent-id") == "k8s:shop/checkout-5f7c-x2x9z")
            for _ in 0..<3 { #expect(try await Self.policy(control, token, claiming: "checkout").status == 200) }
            let calls = api.state.withLock { ($0.reviews, $0.deploymentLookups, $0.unauthorizedCalls) }
            #expect(calls == (1, 1, 0), "one review and one lookup, then the caches answer")
            let report = try control.json(try await control.request("GET", "/v1/admin/agent-auth"))
            #expect(report["accepted"] as? Int == 4)
        }
    }

    @Test("refused and counted: another audience, expired, unknown key, deleted pod, unclaimable or missing service")
    func refusals() async throws {
        try await Self.withCluster(deployments: ["shop/checkout", "billing/invoices"]) { api, control in
            let now = Int64(Date().timeIntervalSince1970)
            func status(_ token: String, _ service: String? = "checkout") async throws -> (Int, String) {
                let answer = try await Self.policy(control, token, claiming: service)
                let body = try control.json(answer)
                return (answer.status, ((body["error"] as? [String: Any])?["code"] as? String) ?? "")
            }
            #expect(try await status(Self.token(audience: "vault")) == (401, "review_refused"))
            #expect(try await status(Self.token(issuedAt: now - 7200)) == (401, "review_refused"))
            #expect(try await status(Self.token(issuer: TestTokenIssuer(keyID: "stranger"))) == (401, "review_refused"))
            api.state.withLock { _ = $0.deletedPods.insert("shop/gone-pod") }
            #expect(try await status(Self.token(pod: "gone-pod")) == (401, "review_refused"))
            // Namespace billing cannot reach shop's service: its claim is read in its own namespace.
            #expect(try await status(Self.token("billing", "invoices"), "checkout") == (403, "service_not_allowed"))
            #expect(try await status(Self.token("billing", "invoices"), "shop/checkout") == (403, "invalid_service"))
            #expect(try await status(Self.token(), "payments") == (403, "service_not_allowed"))
            #expect(try await status(Self.token(), nil) == (403, "no_service_claimed"))
            // An issued token is still accepted, and a garbage bearer is just unauthorized.
            #expect(try await status(control.agentToken()).0 == 200)
            #expect(try await status("not-a-token") == (401, "unauthorized"))

            let report = try control.json(try await control.request("GET", "/v1/admin/agent-auth"))
            let refused = try #require(report["refused"] as? [String: Int])
            #expect(
                refused == [
                    "review_refused": 4, "service_not_allowed": 2, "invalid_service": 1, "no_service_claimed": 1,
                ])
            #expect(report["accepted"] as? Int == 0)
        }
    }

    @Test("the API server down: a token not yet verified gets 503, one verified before keeps working")
    func apiServerDown() async throws {
        try await Self.withCluster { api, control in
            let known = try Self.token()
            #expect(try await Self.policy(control, known, claiming: "checkout").status == 200)
            api.state.withLock { $0.failing = true }
            #expect(try await Self.policy(control, known, claiming: "checkout").status == 200)
            let fresh = try Self.token(pod: "checkout-new")
            let answer = try await Self.policy(control, fresh, claiming: "checkout")
            #expect(answer.status == 503)
            #expect(answer.text.contains(#""code":"unavailable""#))
            #expect(!answer.text.contains(fresh))
            let report = try control.json(try await control.request("GET", "/v1/admin/agent-auth"))
            #expect((report["refused"] as? [String: Int])?["verification_unavailable"] == 1)
        }
    }

    @Test("usage is recorded under the verified namespace and claimed service, whatever the batch says")
    func usageAttributed() async throws {
        try await Self.withCluster { _, control in
            let token = try Self.token()
            let hour = Int64(Date().timeIntervalSince1970) / 3600 * 3600
            let batch = """
                {"agent_id":"k8s:shop/checkout-5f7c-x2x9z","epoch":"e1","sequence":1,
                 "deltas":[{"hour":\(hour),"service":"billing/invoices","model":"gpt","requests":3,
                            "prompt_tokens":30,"completion_tokens":12,"cost_pico_usd":7,"denials":{}}]}
                """
            let posted = try await control.request(
                "POST", "/v1/agent/usage", json: batch, token: token, headers: [("Sluice-Service", "checkout")])
            #expect(posted.status == 200, "\(posted.text)")
            // Another pod's id is refused even with a good token.
            let foreign = batch.replacingOccurrences(of: "k8s:shop/checkout-5f7c-x2x9z", with: "k8s:shop/other")
            #expect(
                try await control.request(
                    "POST", "/v1/agent/usage", json: foreign, token: token, headers: [("Sluice-Service", "checkout")]
                ).status == 403)
            let usage = try await control.request(
                "GET", "/v1/admin/usage?group_by=service&to=\(hour + 7200)")
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(usage.body)) as? [[String: Any]])
            #expect(rows.count == 1)
            #expect((rows.first?["group"] as? [String: String])?["service"] == "shop/checkout")
            #expect(rows.first?["requests"] as? Int == 3)
        }
    }

    @Test("offline key set from a URL: no TokenReview; a rotated signing key is fetched once, then accepted")
    func keySetURLRotation() async throws {
        try await FakeKubernetesAPI.with(issuer: Self.issuer, deployments: []) { api in
            let settings = api.settings(
                .keySetURL(api.url + "/openid/v1/jwks"), claims: ServiceClaimRules(rules: ["*": .serviceAccountName]))
            let group = MultiThreadedEventLoopGroup.singleton
            let client = try KubernetesAPIClient(
                server: settings.apiServer, tokenFile: settings.apiTokenFile, caFile: settings.apiCAFile,
                upstream: UpstreamClient(group: group), group: group)
            let now = Mutex(Int64(Date().timeIntervalSince1970))
            let counters = AgentAuthCounters()
            let authenticator = ServiceAccountAuthenticator(
                settings: settings, api: client, counters: counters, logger: Logger(label: "test"),
                clock: { now.withLock { $0 } })

            let agent = try await authenticator.agent(forBearer: try Self.token(), claimedService: "checkout")
            #expect(
                agent
                    == AgentRecord(
                        id: "k8s:shop/checkout-5f7c-x2x9z", service: "shop/checkout",
                        createdAt: now.withLock { $0 }))
            // The account-name rule: account checkout may not serve payments.
            await #expect(throws: APIError.self) {
                _ = try await authenticator.agent(forBearer: try Self.token(), claimedService: "payments")
            }
            // The cluster rotates its key: a token signed with it names a key the set lacks.
            let rotated = try TestTokenIssuer(keyID: "test-key-2")
            api.state.withLock { $0.issuer = rotated }
            let newToken = try Self.token(pod: "checkout-rotated", issuer: rotated)
            // Within 30 s of the last fetch the set is not fetched again: refused as unknown.
            await #expect(throws: APIError.self) {
                _ = try await authenticator.agent(forBearer: newToken, claimedService: "checkout")
            }
            now.withLock { $0 += 31 }
            let accepted = try await authenticator.agent(forBearer: newToken, claimedService: "checkout")
            #expect(accepted?.id == "k8s:shop/checkout-rotated")
            #expect(api.state.withLock { ($0.keySetFetches, $0.reviews) } == (2, 0))
            #expect(counters.refused == ["service_not_allowed": 1, "unknown_key": 1])
            // A sat- token is not this authenticator's to judge.
            #expect(try await authenticator.agent(forBearer: "sat-0123", claimedService: "checkout") == nil)
        }
    }

    @Test("a key set file and identity file load at start; mistakes stop the control plane naming the field")
    func identityFiles() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try Self.issuer.keySetJSON.write(toFile: directory.file("jwks.json"), atomically: true, encoding: .utf8)
        let config = """
            {"verify":"key_set","key_set_file":"\(directory.file("jwks.json"))","issuer":"\(Self.issuer.issuer)",
             "service_claims":{"shop":{"service_accounts":{"checkout":["checkout"]}}}}
            """
        try config.write(toFile: directory.file("identity.json"), atomically: true, encoding: .utf8)
        let identityFile = directory.file("identity.json")
        let (good, otherNamespace) = (try Self.token(), try Self.token("retail", "checkout"))
        try await ControlHarness.with(configure: { try $0.loadAgentIdentity(from: identityFile) }) { control in
            let accepted = try await Self.policy(control, good, claiming: "checkout")
            #expect(accepted.status == 200)
            let refused = try await Self.policy(control, otherNamespace, claiming: "checkout")
            #expect(refused.status == 403)
        }
        try #"{"keys":[{"kty":"RSA","n":"AQAB"}]}"#.write(
            toFile: directory.file("jwks.json"), atomically: true, encoding: .utf8)
        var options = ControlOptions(adminToken: Secret("admin-token-for-tests-0123456789"))
        let refusal = #expect(throws: ControlStartError.self) {
            try options.loadAgentIdentity(from: directory.file("identity.json"))
        }
        #expect(refusal?.message.contains("key_set_file") == true)
        #expect(refusal?.message.contains("keys[0]: an RSA key needs n and e") == true)
    }
}
