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
        try await AgentHarness.with(settings: settings) { harness in try await body(harness, issuer) }
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
