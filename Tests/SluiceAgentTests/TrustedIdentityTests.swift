import Foundation
import SluiceAgent
import SluiceTestSupport
import Testing

/// Identity from a mesh or an API gateway in front of the agent: real signed JWTs (RS256
/// and ES256) against a JWKS file, and Envoy client-certificate headers, through a real
/// agent; forged, expired, wrong-audience and unmapped ones refused, and none of it
/// believed from a peer that is not a configured source.
@Suite("Trusted identity headers")
struct TrustedIdentityTests {
    static let key = "sk-trusted-ml-0123456789abcdef"
    static let issuerURL = "https://gateway.example"

    /// Runs `body` with an agent trusting `sources`, and the issuer whose JWKS it loaded.
    static func with(
        sources: String = "[127.0.0.1/32, \"::1/128\"]", jwtHeader: String = "x-gateway-jwt",
        _ body: (AgentHarness, TestTokenIssuer) async throws -> Void
    ) async throws {
        try await with(sources: sources, jwtHeader: jwtHeader) { harness, issuer, _ in try await body(harness, issuer) }
    }

    /// ``with(sources:jwtHeader:_:)``, also handing `body` the JWKS file's path.
    static func with(
        sources: String = "[127.0.0.1/32, \"::1/128\"]", jwtHeader: String = "x-gateway-jwt",
        _ body: (AgentHarness, TestTokenIssuer, String) async throws -> Void
    ) async throws {
        let issuer = try TestTokenIssuer(issuer: issuerURL, keyID: "gw-1")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try issuer.keySetJSON.write(toFile: directory.file("jwks.json"), atomically: true, encoding: .utf8)
        let settings = """
            sluice_settings:
              trusted_identity:
                sources: \(sources)
                jwt:
                  header: \(jwtHeader)
                  jwks_file: \(directory.file("jwks.json"))
                  issuer: \(issuerURL)
                  audience: sluice
                  project_claim: project
                  user_claim: sub
                xfcc:
                  trust_domain: cluster.local
                  workloads:
                    shop/checkout-sa: {team: ml, project: search}
                    batch/*: {team: web}
            sluice_policy:
              teams:
                ml: {limits: {requests_per_minute: 3}}
                web: {}
              projects: {search: {team: ml}}
              static_keys:
                - {id: ml-key, token: \(key), team: ml}

            """
        try await AgentHarness.with(settings: settings) { harness in
            try await body(harness, issuer, directory.file("jwks.json"))
        }
    }

    static func claims(
        team: String? = "ml", project: String? = "search", subject: String = "alice", audience: String = "sluice",
        issuer: String = issuerURL, expiresIn: Int64 = 600
    ) -> String {
        let now = Int64(Date().timeIntervalSince1970)
        var fields = [
            #""iss":"\#(issuer)""#, #""aud":"\#(audience)""#, #""sub":"\#(subject)""#, #""exp":\#(now + expiresIn)"#,
            #""iat":\#(now - 5)"#,
        ]
        if let team { fields.append(#""team":"\#(team)""#) }
        if let project { fields.append(#""project":"\#(project)""#) }
        return "{" + fields.joined(separator: ",") + "}"
    }

    @Test("a gateway JWT names team, project and user; forged, expired and wrong ones are refused with why")
    func gatewayTokens() async throws {
        try await Self.with { harness, issuer in
            for algorithm in [TestTokenIssuer.Algorithm.rs256, .es256] {
                let token = try issuer.sign(claims: Self.claims(), algorithm: algorithm)
                let answer = try await harness.chat(extraHeaders: [("x-gateway-jwt", token)])
                #expect(answer.status == 200, "\(algorithm): \(answer.text)")
            }
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["team"] as? String == "ml" && record["project"] as? String == "search")
            #expect(record["end_user"] as? String == "alice" && record["key_id"] is NSNull)

            let forger = try TestTokenIssuer(issuer: Self.issuerURL, keyID: "gw-1")
            let cases: [(String, String)] = [
                (try forger.sign(claims: Self.claims()), "signature"),
                (try issuer.sign(claims: Self.claims(expiresIn: -600)), "expired"),
                (try issuer.sign(claims: Self.claims(audience: "someone-else")), "audience"),
                (try issuer.sign(claims: Self.claims(issuer: "https://evil.example")), "issuer"),
                (try issuer.sign(claims: Self.claims(team: "finance")), #"team \"finance\""#),
                (try issuer.sign(claims: Self.claims(project: "other")), #"project \"other\""#),
                (try issuer.sign(claims: Self.claims(team: nil)), "team claim"),
                // alg: none, the classic forgery.
                ("eyJhbGciOiJub25lIn0.e30.", "not signed with RS256 or ES256"),
                ("eyJhbGciOi.not-base64!.x", "not a compact JWT"),
            ]
            for (token, why) in cases {
                let refused = try await harness.chat(extraHeaders: [("x-gateway-jwt", token)])
                #expect(refused.status == 401 && refused.text.contains(why), "\(why): \(refused.text)")
                #expect(!refused.text.contains(token))
            }
            #expect(harness.mock.requests.count == 2)
        }
    }

    /// An agent whose gateway keys come from the mock's `jwksPath` over TLS.
    static func withKeysFromURL(
        serving documents: [String: String], jwksPath: String = "/jwks.json",
        _ body: (AgentHarness) async throws -> Void
    ) async throws {
        let settings = """
            sluice_settings:
              trusted_identity:
                sources: [127.0.0.1/32, "::1/128"]
                jwt:
                  header: x-gateway-jwt
                  jwks_url: https://127.0.0.1:$MOCK_PORT\(jwksPath)
                  jwks_ca_file: $MOCK_CA
                  issuer: \(issuerURL)
                  audience: sluice
            sluice_policy:
              teams: {ml: {}}
              projects: {search: {team: ml}}
              static_keys:
                - {id: ml-key, token: \(key), team: ml}

            """
        try await AgentHarness.with(settings: settings, mockConfigure: { $0.documents = documents }, body)
    }

    /// Polls `condition` until it holds or 15 s pass: for a state only visible through calls.
    static func eventually(_ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    @Test("keys from a JWKS URL over TLS: read at start, and read again when a token names a rotated key")
    func keysFromURL() async throws {
        let first = try TestTokenIssuer(issuer: Self.issuerURL, keyID: "gw-1")
        let second = try TestTokenIssuer(issuer: Self.issuerURL, keyID: "gw-2")
        try await Self.withKeysFromURL(serving: ["/jwks.json": first.keySetJSON]) { harness in
            let old = try first.sign(claims: Self.claims())
            #expect(
                try await Self.eventually {
                    try await harness.chat(extraHeaders: [("x-gateway-jwt", old)]).status == 200
                })
            // Tokens naming a key nobody publishes each ask for a read; reads are at least 5 s
            // apart, so a burst costs one read now, one when the spacing allows, and one more
            // per 5 s the burst lasts (a loaded machine), plus one still owed to the calls that
            // came before the first read: never one per call.
            func reads() -> Int { harness.mock.requests.filter { $0.method == "GET" && $0.path == "/jwks.json" }.count }
            let before = reads()
            let forger = try TestTokenIssuer(issuer: Self.issuerURL, keyID: "gw-9")
            let forged = try forger.sign(claims: Self.claims())
            let burstStart = ContinuousClock.now
            for _ in 0..<20 {
                let refused = try await harness.chat(extraHeaders: [("x-gateway-jwt", forged)])
                #expect(refused.status == 401 && refused.text.contains("does not publish"), "\(refused.text)")
            }
            let allowed = 3 + Int((ContinuousClock.now - burstStart).components.seconds / 5)
            #expect(reads() - before <= allowed, "\(reads() - before) reads for 20 unknown keys, \(allowed) allowed")

            // The gateway rotates: both keys published, tokens signed with the new one.
            let keys = try [first, second].flatMap { issuer in
                let document = try JSONSerialization.jsonObject(with: Data(issuer.keySetJSON.utf8))
                return try #require((document as? [String: Any])?["keys"] as? [Any])
            }
            let both = String(decoding: try JSONSerialization.data(withJSONObject: ["keys": keys]), as: UTF8.self)
            harness.mock.publish(both, at: "/jwks.json")
            // Its first call asks for a read (unless one already brought the new set).
            let new = try second.sign(claims: Self.claims(), algorithm: .es256)
            #expect(
                try await Self.eventually {
                    try await harness.chat(extraHeaders: [("x-gateway-jwt", new)]).status == 200
                })
            #expect(try await harness.chat(extraHeaders: [("x-gateway-jwt", old)]).status == 200)
        }
    }

    @Test("a JWKS file is read again when a token names a key it lacks: a rotated ConfigMap needs no restart")
    func keysFromRotatedFile() async throws {
        try await Self.with { harness, _, path in
            let next = try TestTokenIssuer(issuer: Self.issuerURL, keyID: "gw-2")
            let token = try next.sign(claims: Self.claims())
            #expect(try await harness.chat(extraHeaders: [("x-gateway-jwt", token)]).status == 401)
            try next.keySetJSON.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(
                try await Self.eventually {
                    try await harness.chat(extraHeaders: [("x-gateway-jwt", token)]).status == 200
                })
        }
    }

    @Test("a JWKS URL that does not answer: gateway tokens get 503 naming why, keys still work")
    func keysUnavailable() async throws {
        let issuer = try TestTokenIssuer(issuer: Self.issuerURL, keyID: "gw-1")
        try await Self.withKeysFromURL(serving: [:], jwksPath: "/missing-jwks.json") { harness in
            let token = try issuer.sign(claims: Self.claims())
            let refused = try await harness.chat(extraHeaders: [("x-gateway-jwt", token)])
            #expect(
                refused.status == 503 && refused.text.contains("identity_keys_unavailable")
                    && refused.header("retry-after") == "5", "\(refused.text)")
            #expect(
                try await Self.eventually {
                    try await harness.chat(extraHeaders: [("x-gateway-jwt", token)]).text.contains("answered 404")
                })
            #expect(try await harness.chat(key: Self.key).status == 200)
        }
    }

    @Test("jwks settings are strict: one source, https only, a CA bundle only for a URL, a sane refresh")
    func keySetSettings() {
        func refusal(_ jwt: String) -> String? {
            let yaml = """
                model_list: [{model_name: a, litellm_params: {model: openai/a}}]
                sluice_settings:
                  trusted_identity:
                    sources: [127.0.0.1/32]
                    jwt: {issuer: https://gw.example, audience: sluice, \(jwt)}

                """
            do {
                _ = try ConfigLoader(environment: [:]).load(yaml: yaml)
                return nil
            } catch {
                return error.message
            }
        }
        let at = "sluice_settings.trusted_identity.jwt"
        #expect(
            refusal("jwks_url: http://gw.example/jwks")
                == "\(at).jwks_url must be an https:// URL: keys fetched in the clear could be anyone's")
        #expect(
            refusal("jwks_url: https://gw.example/jwks, jwks_file: /k.json")
                == "\(at): give jwks_file or jwks_url, not both")
        #expect(
            refusal("jwks_file: /k.json, jwks_ca_file: /ca.pem")
                == "\(at).jwks_ca_file goes with jwks_url, not jwks_file")
        #expect(refusal("jwks_url: https://gw.example/jwks, jwks_refresh_seconds: 5")?.contains("30 to 86400") == true)
        #expect(refusal("team_claim: team") == "\(at) needs jwks_file or jwks_url")
        #expect(refusal("jwks_url: https://gw.example/jwks, jwks_refresh_seconds: 60") == nil)
    }

    @Test("vouched callers are held to their team's limits, and a virtual key still works beside them")
    func limitsHold() async throws {
        try await Self.with { harness, issuer in
            let token = try issuer.sign(claims: Self.claims())
            for _ in 0..<2 {
                #expect(try await harness.chat(extraHeaders: [("x-gateway-jwt", token)]).status == 200)
            }
            #expect(try await harness.chat(key: Self.key).status == 200)
            let over = try await harness.chat(extraHeaders: [("x-gateway-jwt", token)])
            #expect(over.status == 429 && over.text.contains(#"team \"ml\""#), "\(over.text)")
        }
    }

    @Test("an Envoy client-certificate header names a mapped SPIFFE workload; others are refused")
    func meshCertificates() async throws {
        try await Self.with { harness, _ in
            let mapped =
                #"By=spiffe://cluster.local/ns/sluice/sa/gateway;Hash=1a2b;"#
                + #"Subject="O=shop,CN=checkout";URI=spiffe://cluster.local/ns/shop/sa/checkout-sa"#
            let answer = try await harness.chat(extraHeaders: [("x-forwarded-client-cert", mapped)])
            #expect(answer.status == 200, "\(answer.text)")
            let wildcard = try await harness.chat(
                extraHeaders: [("x-forwarded-client-cert", "URI=spiffe://cluster.local/ns/batch/sa/nightly")])
            #expect(wildcard.status == 200, "\(wildcard.text)")
            let records = await harness.auditRecords(2)
            #expect(records[0]["team"] as? String == "ml" && records[0]["end_user"] as? String == "shop/checkout-sa")
            #expect(records[1]["team"] as? String == "web")

            let refused = [
                ("URI=spiffe://cluster.local/ns/other/sa/x", "not mapped"),
                ("URI=spiffe://evil.example/ns/shop/sa/checkout-sa", "trust domain"),
                // Two hops: the nearest (last) element decides, not an earlier one.
                (
                    "URI=spiffe://cluster.local/ns/shop/sa/checkout-sa,URI=spiffe://cluster.local/ns/other/sa/y",
                    "not mapped"
                ),
                ("garbage;;==,", "trust domain"),
            ]
            for (header, why) in refused {
                let answer = try await harness.chat(extraHeaders: [("x-forwarded-client-cert", header)])
                #expect(answer.status == 401 && answer.text.contains(why), "\(header): \(answer.text)")
            }
        }
    }

    @Test("from a peer that is not a source the headers are ignored: a key is needed as ever")
    func untrustedSource() async throws {
        try await Self.with(sources: "[10.0.0.0/8]") { harness, issuer in
            let token = try issuer.sign(claims: Self.claims())
            let jwt = try await harness.chat(extraHeaders: [("x-gateway-jwt", token)])
            #expect(jwt.status == 401 && jwt.text.contains("missing_api_key"), "\(jwt.text)")
            let xfcc = try await harness.chat(
                extraHeaders: [("x-forwarded-client-cert", "URI=spiffe://cluster.local/ns/shop/sa/checkout-sa")])
            #expect(xfcc.status == 401 && xfcc.text.contains("missing_api_key"), "\(xfcc.text)")
            #expect(try await harness.chat(key: Self.key).status == 200)
        }
    }

    @Test("in Authorization, a JWT is the gateway's and anything else is a virtual key")
    func authorizationHeader() async throws {
        try await Self.with(jwtHeader: "authorization") { harness, issuer in
            let token = try issuer.sign(claims: Self.claims(project: nil, subject: "bob"))
            #expect(try await harness.chat(key: token).status == 200)
            #expect(try await harness.chat(key: Self.key).status == 200)
            let records = await harness.auditRecords(2)
            #expect(records[0]["end_user"] as? String == "bob" && records[0]["key_id"] is NSNull)
            #expect(records[1]["key_id"] as? String == "ml-key")
        }
    }
}
