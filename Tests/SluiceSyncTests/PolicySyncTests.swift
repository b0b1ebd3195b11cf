import Crypto
import Foundation
import SluiceAgent
import SluiceControl
import SluiceKubernetes
import SluiceTestSupport
import Testing

@Suite("agent ↔ control plane: policy sync, fail-static, usage flush")
struct PolicySyncTests {
    /// An Anthropic alias on the mock provider whose credential only some agents hold.
    static func claudeModel(port: Int, extra: String = "") -> String {
        """
        {"alias":"claude","deployments":[{"provider":"anthropic","api_base":"http://127.0.0.1:\(port)/v1",
         "upstream_model":"mock","credential_ref":"ANTHROPIC_API_KEY"}]\(extra)}
        """
    }

    @Test("a revoked key and a newly blocked model are refused by the agent within 2 s of the admin change")
    func revocationPropagates() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            _ = try await harness.adminJSON("POST", "/v1/admin/teams", json: #"{"name":"ml"}"#)
            let created =
                try await harness.adminJSON("POST", "/v1/admin/keys", json: #"{"id":"ci","team":"ml"}"#)
                as? [String: Any]
            let key = try #require(created?["key"] as? String)
            let agent = try await harness.startAgent(id: "pod-1")
            #expect(await eventually { (try? await agent.chat(key: key).status) == 200 })

            _ = try await harness.adminJSON("POST", "/v1/admin/keys/ci/revoke")
            let revokedAt = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(2)) { agent.refuses(key: key) })
            let revocation = ContinuousClock.now - revokedAt
            #expect(revocation < .seconds(2))
            #expect(try await agent.chat(key: key).status == 401)

            _ = try await harness.adminJSON(
                "POST", "/v1/admin/models",
                json: """
                    {"alias":"another","deployments":[{"api_base":"http://127.0.0.1:1/v1","upstream_model":"mock"}]}
                    """)
            // The model write's version must be in force first: the next change is the block.
            #expect(await eventually { (try? await agent.chat(model: "another").status) != 404 })
            let before = agent.runtime.activePolicy.version
            _ = try await harness.adminJSON("PUT", "/v1/admin/settings", json: #"{"only_allow_models":["another"]}"#)
            let blockedAt = ContinuousClock.now
            // Timed in process, as the revocation is: the policy reaching the agent, not a
            // call's time on a loaded machine.
            #expect(await eventually(timeout: .seconds(2)) { agent.runtime.activePolicy.version != before })
            #expect(ContinuousClock.now - blockedAt < .seconds(2))
            let refused = try await agent.chat()
            #expect(refused.status == 403)
            #expect(refused.text.contains("model_not_allowed"))
            try await agent.stop()
        }
    }

    @Test("an agent without a provider credential serves the rest, answers 503 naming it, and still gets revocations")
    func missingCredentialDisablesOnlyItsDeployments() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            _ = try await harness.adminJSON(
                "POST", "/v1/admin/models",
                json: Self.claudeModel(port: harness.mockPort))
            _ = try await harness.adminJSON("POST", "/v1/admin/teams", json: #"{"name":"support"}"#)
            let created = try await harness.adminJSON(
                "POST", "/v1/admin/keys", json: #"{"id":"helpdesk","team":"support"}"#)
            let key = try #require((created as? [String: Any])?["key"] as? String)
            let marketing = try await harness.startAgent(id: "marketing-1", service: "marketing")
            let support = try await harness.startAgent(
                id: "support-1", service: "support",
                environment: ["ANTHROPIC_API_KEY": "sk-ant-test"])
            #expect(await eventually { (try? await marketing.chat(key: key).status) == 200 })
            #expect(await eventually { (try? await support.chat(model: "claude", key: key).status) == 200 })

            let unavailable = try await marketing.chat(model: "claude", key: key)
            #expect(
                unavailable.status == 503 && unavailable.text.contains("credential_unavailable")
                    && unavailable.text.contains("ANTHROPIC_API_KEY") && !unavailable.text.contains("sk-ant"))
            let marketingReady = try await marketing.readiness()
            #expect(marketingReady.status == 200)
            #expect(marketingReady.body["missing_credentials"] as? [String] == ["ANTHROPIC_API_KEY"])
            #expect(try await support.readiness().body["missing_credentials"] as? [String] == [])

            // A write only the support agent can use, then a revocation: both agents refuse the key.
            _ = try await harness.adminJSON(
                "PUT", "/v1/admin/models/claude",
                json: Self.claudeModel(port: harness.mockPort, extra: #","input_cost_per_token":0.000003"#))
            // Timed from the write's acknowledgement: what the admin call itself costs on a
            // loaded machine is not propagation.
            _ = try await harness.adminJSON("POST", "/v1/admin/keys/helpdesk/revoke")
            let revokedAt = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(2)) { marketing.refuses(key: key) && support.refuses(key: key) })
            #expect(ContinuousClock.now - revokedAt < .seconds(2))
            #expect(try await marketing.chat(key: key).status == 401)
            #expect(try await support.chat(model: "claude", key: key).status == 401)
            try await marketing.stop()
            try await support.stop()
        }
    }

    @Test("agents bound to a service get bundles scoped to it: the marketing pod runs without the Anthropic secret")
    func scopedBundles() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            _ = try await harness.adminJSON(
                "POST", "/v1/admin/models",
                json: Self.claudeModel(port: harness.mockPort))
            _ = try await harness.adminJSON(
                "POST", "/v1/admin/services",
                json: #"{"name":"shop/marketing","keyless":true,"allowed_models":["gpt-test"]}"#)
            _ = try await harness.adminJSON(
                "POST", "/v1/admin/services", json: #"{"name":"shop/support","keyless":true}"#)
            _ = try await harness.adminJSON("POST", "/v1/admin/teams", json: #"{"name":"support"}"#)
            let created = try await harness.adminJSON(
                "POST", "/v1/admin/keys", json: #"{"id":"helpdesk","team":"support"}"#)
            let key = try #require((created as? [String: Any])?["key"] as? String)
            let marketing = try await harness.startAgent(id: "marketing-1", service: "marketing", boundToService: true)
            let support = try await harness.startAgent(
                id: "support-1", service: "support", boundToService: true,
                environment: ["ANTHROPIC_API_KEY": "sk-ant-test"])
            #expect(await eventually { (try? await marketing.chat(key: key).status) == 200 })
            #expect(await eventually { (try? await support.chat(model: "claude", key: key).status) == 200 })

            // The marketing agent never received the alias it may not use, so it needs no credential for it.
            #expect(marketing.runtime.activePolicy.configuration.catalog.names == ["gpt-test"])
            #expect(try await marketing.readiness().body["missing_credentials"] as? [String] == [])
            #expect(try await marketing.chat(model: "claude", key: key).status == 404)
            #expect(Set(support.runtime.activePolicy.configuration.catalog.names) == ["gpt-test", "claude"])

            // A write only the support agent's bundle holds, then a revocation: both refuse the key.
            _ = try await harness.adminJSON(
                "PATCH", "/v1/admin/models/claude", json: #"{"input_cost_per_token":0.000003}"#)
            // Timed from the write's acknowledgement: what the admin call itself costs on a
            // loaded machine is not propagation.
            _ = try await harness.adminJSON("POST", "/v1/admin/keys/helpdesk/revoke")
            let revokedAt = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(2)) { marketing.refuses(key: key) && support.refuses(key: key) })
            #expect(ContinuousClock.now - revokedAt < .seconds(2))
            #expect(try await marketing.chat(key: key).status == 401)
            #expect(try await support.chat(model: "claude", key: key).status == 401)
            try await marketing.stop()
            try await support.stop()
        }
    }

    @Test(
        "control plane away: the cached policy is still enforced, then past the maximum age calls get 503 naming why"
    )
    func failStaticThenClosed() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            let clock = TestClock()
            let agent = try await harness.startAgent(id: "pod-1", clock: clock, maxPolicyAgeSeconds: 600)
            #expect(await eventually { (try? await agent.chat().status) == 200 })
            let ready = try await agent.readiness()
            #expect(ready.status == 200)
            let policy = try #require(ready.body["policy"] as? [String: Any])
            #expect((policy["version"] as? Int ?? 0) > 0 && policy["source"] as? String == "control_plane")

            try await harness.stopControl()
            // The agent notices the outage on its next poll and says so (its last answer, a
            // 304 sent as the control plane stopped, is handled by then).
            #expect(
                await eventually {
                    ((try? await agent.readiness().body["policy"] as? [String: Any])?["last_sync_error"] as? String)
                        != nil
                })
            clock.advance(seconds: 300)
            #expect(try await agent.chat().status == 200)
            #expect(try await agent.readiness().status == 200)

            clock.advance(seconds: 301)
            let stale = try await agent.chat()
            #expect(stale.status == 503)
            #expect(stale.text.contains(#""code":"policy_stale""#) && stale.text.contains("maximum age of 600 s"))
            #expect(stale.text.contains("last sync error: control plane unreachable"))
            let notReady = try await agent.readiness()
            #expect(notReady.status == 503 && notReady.body["status"] as? String == "policy_stale")

            // Back: the policy is confirmed again and calls flow.
            try await harness.startControl()
            #expect(await eventually { (try? await agent.chat().status) == 200 })
            try await agent.stop()
        }
    }

    @Test("a restarted agent serves at once from its cached bundle while the control plane is down")
    func servesFromCache() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            let token = try await harness.agentToken("pod-1")
            let state = harness.directory.file("pod-1-state")
            let first = try await harness.startAgent(id: "pod-1", token: token, stateDirectory: state)
            #expect(await eventually { (try? await first.chat().status) == 200 })
            try await first.stop()
            try await harness.stopControl()

            let second = try await harness.startAgent(id: "pod-1", token: token, stateDirectory: state)
            #expect(try await second.chat().status == 200)
            try await second.stop()

            // A damaged cache is refused whole: the agent waits for the control plane (503).
            let cache = "\(state)/policy-bundle.json"
            let bytes = try Data(contentsOf: URL(fileURLWithPath: cache))
            try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: cache))
            let third = try await harness.startAgent(id: "pod-1", token: token, stateDirectory: state)
            let refused = try await third.chat()
            #expect(refused.status == 503 && refused.text.contains("no policy yet"))
            try await harness.startControl()
            #expect(await eventually { (try? await third.chat().status) == 200 })
            try await third.stop()
        }
    }

    @Test("a rolled-back or foreign-signed bundle from the control plane is refused and the old policy kept")
    func refusesRollbackAndForeignKey() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            let agent = try await harness.startAgent(id: "pod-1")
            #expect(await eventually { (try? await agent.chat().status) == 200 })
            // A backup of the control plane's database, taken now.
            try await harness.stopControl()
            for suffix in ["", "-wal", "-shm"]
            where FileManager.default.fileExists(atPath: harness.directory.file("control.db\(suffix)")) {
                try FileManager.default.copyItem(
                    atPath: harness.directory.file("control.db\(suffix)"),
                    toPath: harness.directory.file("backup.db\(suffix)"))
            }
            try await harness.startControl()
            _ = try await harness.adminJSON(
                "POST", "/v1/admin/models",
                json: """
                    {"alias":"second",
                     "deployments":[{"api_base":"http://127.0.0.1:\(harness.mockPort)/v1","upstream_model":"mock"}]}
                    """)
            #expect(await eventually { (try? await agent.chat(model: "second").status) == 200 })
            let version = try #require(agent.runtime.sync?.version)

            // The backup is restored: the control plane serves an older version.
            try await harness.stopControl()
            try await harness.startControl(database: "backup.db")
            let rollback = await eventually {
                (agent.runtime.sync?.report(at: Clocks.wallNanoseconds()).lastError ?? "").contains(
                    "refusing to roll back")
            }
            #expect(rollback)
            #expect(agent.runtime.sync?.version == version)
            #expect(try await agent.chat(model: "second").status == 200)

            // The current database, another signing key: the signature is not the configured one.
            try await harness.stopControl()
            try await harness.startControl(newSigningKey: true)
            #expect(try await harness.admin("DELETE", "/v1/admin/models/second").status == 204)
            let foreign = await eventually {
                (agent.runtime.sync?.report(at: Clocks.wallNanoseconds()).lastError ?? "").contains(
                    "not the configured one")
            }
            #expect(foreign)
            #expect(agent.runtime.sync?.version == version)
            #expect(try await agent.chat(model: "second").status == 200)
            try await agent.stop()
        }
    }

    @Test(
        "an hour without the control plane: calls are served, and the backlog is flushed exactly once on reconnect"
    )
    func hourLongOutage() async throws {
        // Not SyncHarness.with: Swift 6.3.1's region checker (SendNonSendable) crashes on
        // this body as a closure. A failure here can leak the harness, nothing else.
        let harness = try await SyncHarness()
        try await harness.seedPolicy()
        let clock = TestClock()
        let agent = try await harness.startAgent(
            id: "pod-1", clock: clock, maxPolicyAgeSeconds: 7200, flushInterval: .milliseconds(50))
        #expect(await eventually { (try? await agent.chat().status) == 200 })
        try await harness.stopControl()
        // Six ten-minute steps of the agent's clock, each with calls: usage lands in
        // different hours, and the policy ages an hour without going stale.
        for step in 0..<6 {
            clock.advance(seconds: 600)
            for call in 0..<5 {
                #expect(try await agent.chat(content: "step \(step) call \(call)").status == 200)
            }
        }
        #expect(await agent.mode.flusher.flush() == false)  // nowhere to send it
        try await harness.startControl()
        let ledger = agent.ledger.value
        #expect(ledger.requests == 31)
        let flushed = await eventually {
            let totals = try? await harness.totals()
            return totals?.requests == ledger.requests
        }
        #expect(flushed)
        // Sent again and again (a retry after a lost answer looks the same): counted once.
        #expect(await agent.mode.flusher.flush())
        let totals = try await harness.totals()
        #expect(totals == ledger)
        #expect(try agent.mode.spool.pending().isEmpty)
        try await agent.stop()
        try await harness.shutdown()
    }

    @Test("an injected agent takes the policy key from SLUICE_POLICY_PUBLIC_KEY, and a wrong one is refused")
    func publicKeyFromEnvironment() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            let agent = try await harness.startAgent(id: "pod-env", publicKeyInEnvironment: true)
            #expect(await eventually { (try? await agent.chat().status) == 200 })
            let foreign = Curve25519.Signing.PrivateKey().publicKey.rawRepresentation.base64EncodedString()
            let misled = try await harness.startAgent(
                id: "pod-foreign", publicKey: foreign, publicKeyInEnvironment: true)
            let refused = try await misled.chat()
            #expect(refused.status == 503)
        }
    }

    @Test("over TLS, an agent with the CA and key in its environment (as injected) syncs; without the CA it cannot")
    func tlsControlPlane() async throws {
        try await SyncHarness.with(tls: true) { harness in
            try await harness.seedPolicy()
            let agent = try await harness.startAgent(id: "pod-tls", publicKeyInEnvironment: true)
            #expect(await eventually { (try? await agent.chat().status) == 200 })
            let untrusting = try await harness.startAgent(
                id: "pod-no-ca", publicKeyInEnvironment: true, trustControlPlaneCA: false)
            let status = try #require(untrusting.mode.runtime.sync)
            #expect(await eventually { status.report(at: Clocks.wallNanoseconds()).lastError != nil })
            let error = status.report(at: Clocks.wallNanoseconds()).lastError ?? ""
            #expect(error.contains("TLS") || error.contains("certificate"), "\(error)")
            #expect(try await untrusting.chat().status == 503)
            // Nothing is served in the clear on the TLS port.
            let plain = try? await TestHTTPClient.get("/healthz", port: harness.controlPort, group: harness.group)
            #expect(plain?.status != 200)
        }
    }

    @Test("a token rotated in the agent's file takes over without a restart: usage and policy keep flowing")
    func rotatedTokenFile() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            let agent = try await harness.startAgent(id: "pod-rotate")
            #expect(await eventually { (try? await agent.chat().status) == 200 })
            // Registering the id again replaces its token: the one the agent started with stops working.
            let rotated = try await harness.agentToken("pod-rotate")
            try rotated.write(toFile: harness.directory.file("pod-rotate.token"), atomically: true, encoding: .utf8)
            for _ in 0..<3 { #expect(try await agent.chat().status == 200) }
            // Its next flush is refused with the old token, re-reads the file and goes through.
            #expect(await eventually { (try? await harness.totals()) == agent.ledger.value })
            _ = try await harness.adminJSON(
                "POST", "/v1/admin/models",
                json: """
                    {"alias":"gpt-after-rotation","deployments":[{"api_base":"http://127.0.0.1:\(harness.mockPort)/v1",
                     "upstream_model":"mock"}]}
                    """)
            #expect(await eventually { (try? await agent.chat(model: "gpt-after-rotation").status) == 200 })
        }
    }

    @Test("an agent with a projected service-account token syncs as its token's namespace; usage lands there")
    func serviceAccountAgent() async throws {
        let issuer = try TestTokenIssuer()
        let keys = try JSONWebKeySet.parse(Array(issuer.keySetJSON.utf8))
        try await SyncHarness.with(configureControl: { options in
            options.agentIdentity = AgentIdentitySettings(
                verification: .keySetFile("jwks.json"), issuer: issuer.issuer,
                claims: ServiceClaimRules(rules: ["retail": .serviceAccounts(["checkout-sa": ["checkout"]])]))
            options.agentKeySet = keys
        }) { harness in
            try await harness.seedPolicy()
            // The agent's own environment says namespace shop (the harness's); its token says retail.
            let token = try issuer.token(namespace: "retail", serviceAccount: "checkout-sa", pod: "checkout-abc")
            let agent = try await harness.startAgent(id: "checkout-abc", token: token)
            // The agent's chat helper counts each answered call in its ledger.
            #expect(await eventually { (try? await agent.chat().status) == 200 })
            for _ in 0..<2 { #expect(try await agent.chat().status == 200) }
            #expect(await eventually { (try? await harness.totals()) == agent.ledger.value })
            let rows = try #require(
                try await harness.adminJSON("GET", "/v1/admin/usage?group_by=service") as? [[String: Any]])
            #expect(rows.compactMap { ($0["group"] as? [String: String])?["service"] } == ["retail/checkout"])

            // The same account may not serve payments: that agent never gets a policy.
            let payments = try await harness.startAgent(
                id: "payments-1",
                token: try issuer.token(
                    namespace: "retail", serviceAccount: "checkout-sa", pod: "payments-1"),
                service: "payments")
            #expect(
                await eventually {
                    let report = try? await harness.adminJSON("GET", "/v1/admin/agent-auth") as? [String: Any]
                    return (report?["refused"] as? [String: Int])?["service_not_allowed"] ?? 0 > 0
                })
            #expect(try await payments.readiness().status == 503)
            #expect(try await payments.chat().status == 503)
        }
    }

    @Test("SIGTERM's path: the last calls' usage is flushed before the agent exits")
    func drainThenFlush() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            // A flush interval no test waits for: only the shutdown flush can deliver.
            let agent = try await harness.startAgent(id: "pod-1", flushInterval: .seconds(3600))
            #expect(await eventually { (try? await agent.chat().status) == 200 })
            for _ in 0..<4 { #expect(try await agent.chat().status == 200) }
            try await agent.stop()
            let ledger = agent.ledger.value
            let totals = try await harness.totals()
            #expect(totals == ledger)
        }
    }

    @Test(
        "disk full, fail_closed: the unwritten call is kept, new calls get 503, and all is flushed on recovery"
    )
    func diskFullFailsClosed() async throws {
        try await SyncHarness.with { harness in
            try await harness.seedPolicy()
            _ = try await harness.adminJSON(
                "PUT", "/v1/admin/settings", json: #"{"usage_spool_failure":"fail_closed"}"#)
            let state = harness.directory.file("pod-1-state")
            let agent = try await harness.startAgent(
                id: "pod-1", stateDirectory: state, flushInterval: .milliseconds(50))
            #expect(await eventually { (try? await agent.chat().status) == 200 })
            #expect(
                await eventually {
                    (try? agent.mode.spool.pending().isEmpty) == true
                        && agent.mode.spool.health.acknowledgedSequence >= 1
                })
            // The next journals the spool will open answer every write with ENOSPC (/dev/full).
            let spool = "\(state)/spool"
            let next =
                (try FileManager.default.contentsOfDirectory(atPath: spool).compactMap { name -> Int? in
                    guard name.hasPrefix("journal-"), name.hasSuffix(".log") else { return nil }
                    return Int(name.dropFirst(8).dropLast(4))
                }.max() ?? 0) + 1
            let blocked = (next..<(next + 500)).map { "\(spool)/journal-\($0).log" }
            for path in blocked where !FileManager.default.fileExists(atPath: path) {
                try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: "/dev/full")
            }
            // The journal in use may still take writes; calls go on until one is refused.
            var refused: TestResponse?
            for _ in 0..<200 {
                let response = try await agent.chat()
                if response.status == 503 {
                    refused = response
                    break
                }
                #expect(response.status == 200)
                try await Task.sleep(for: .milliseconds(20))
            }
            let answer = try #require(refused)
            #expect(
                answer.text.contains(#""code":"usage_spool_unavailable""#)
                    && answer.text.contains("No space left on device"))
            let ready = try await agent.readiness()
            #expect(ready.status == 503 && ready.body["status"] as? String == "usage_spool_unavailable")
            let spoolState = try #require(ready.body["usage_spool"] as? [String: Any])
            #expect(
                (spoolState["held_in_memory"] as? Int ?? 0) >= 1
                    && (spoolState["disk_error"] as? String)?.contains("No space left") == true)

            for path in blocked { try? FileManager.default.removeItem(atPath: path) }
            #expect(await eventually { (try? await agent.chat().status) == 200 })
            let ledger = agent.ledger.value
            #expect(await eventually { (try? await harness.totals().requests) == ledger.requests })
            try await agent.stop()
            let totals = try await harness.totals()
            #expect(totals == ledger)
        }
    }
}
