import Foundation
import SluiceKubernetes
import SluiceTestSupport
import Testing

/// Offline verification of projected service-account tokens: tokens signed by a test issuer
/// (RS256 and ES256), checked against its JWKS at a fixed time.
@Suite("Service-account tokens")
struct ServiceAccountTokenTests {
    static let issuer = try! TestTokenIssuer()
    static let now: Int64 = 1_800_000_000

    static func verifier(audience: String = "sluice") throws -> ServiceAccountTokenVerifier {
        ServiceAccountTokenVerifier(
            issuer: issuer.issuer, audience: audience, keys: try JSONWebKeySet.parse(Array(issuer.keySetJSON.utf8)))
    }

    static func refusal(_ token: String, at now: Int64 = now) throws -> String? {
        let verifier = try verifier()
        do throws(TokenRefusal) {
            _ = try verifier.verify(token, now: now)
            return nil
        } catch {
            #expect(!error.message.contains(token), "a refusal never repeats the token")
            return error.reason
        }
    }

    @Test("a good token gives its namespace, service account, pod and expiry, with RS256 and ES256")
    func goodTokens() throws {
        for algorithm in [TestTokenIssuer.Algorithm.rs256, .es256] {
            let token = try Self.issuer.token(
                namespace: "shop", serviceAccount: "checkout", pod: "checkout-7d9f-abcde", issuedAt: Self.now - 100,
                algorithm: algorithm)
            #expect(ServiceAccountTokenVerifier.looksLikeJWT(token))
            let identity = try Self.verifier().verify(token, now: Self.now)
            #expect(
                identity
                    == ServiceAccountIdentity(
                        namespace: "shop", serviceAccount: "checkout", podName: "checkout-7d9f-abcde",
                        expiresAt: Self.now - 100 + 3600))
            #expect(identity.userName == "system:serviceaccount:shop:checkout")
        }
        let unbound = try Self.issuer.token(namespace: "shop", serviceAccount: "checkout", pod: nil, issuedAt: Self.now)
        #expect(try Self.verifier().verify(unbound, now: Self.now).podName == nil)
    }

    @Test("another audience, an expired or future token, another issuer are refused by reason")
    func claimsRefused() throws {
        let issuer = Self.issuer
        #expect(
            try Self.refusal(issuer.token(namespace: "a", serviceAccount: "b", audience: "vault", issuedAt: Self.now))
                == "wrong_audience")
        let expired = try issuer.token(namespace: "a", serviceAccount: "b", issuedAt: Self.now - 3600 - 31)
        #expect(try Self.refusal(expired) == "expired")
        // Within the 30 s leeway a just-expired token still passes (clock skew).
        #expect(try Self.refusal(issuer.token(namespace: "a", serviceAccount: "b", issuedAt: Self.now - 3610)) == nil)
        #expect(
            try Self.refusal(issuer.token(namespace: "a", serviceAccount: "b", issuedAt: Self.now + 120))
                == "not_yet_valid")
        #expect(
            try Self.refusal(
                issuer.token(namespace: "a", serviceAccount: "b", issuedAt: Self.now, issuer: "https://evil.example"))
                == "wrong_issuer")
        let notAnAccount = try issuer.sign(
            claims: #"{"aud":"sluice","exp":\#(Self.now + 60),"iss":"\#(issuer.issuer)","sub":"alice"}"#)
        #expect(try Self.refusal(notAnAccount) == "not_a_service_account")
        // `sub` must agree with the kubernetes.io claim.
        let mismatched = try issuer.sign(
            claims: """
                {"aud":"sluice","exp":\(Self.now + 60),"iss":"\(issuer.issuer)",\
                "kubernetes.io":{"namespace":"shop","serviceaccount":{"name":"checkout"}},\
                "sub":"system:serviceaccount:billing:checkout"}
                """)
        #expect(try Self.refusal(mismatched) == "not_a_service_account")
    }

    @Test("an unknown key, a forged signature, a swapped payload, alg none and garbage are refused")
    func signaturesRefused() throws {
        let stranger = try TestTokenIssuer(keyID: "someone-else")
        #expect(
            try Self.refusal(stranger.token(namespace: "a", serviceAccount: "b", issuedAt: Self.now)) == "unknown_key")
        // The right key id, the wrong key.
        let forged = try stranger.token(
            namespace: "a", serviceAccount: "b", issuedAt: Self.now, keyID: Self.issuer.rsaKeyID)
        #expect(try Self.refusal(forged) == "bad_signature")
        let good = try Self.issuer.token(namespace: "a", serviceAccount: "b", issuedAt: Self.now).split(separator: ".")
        let other = try Self.issuer.token(namespace: "kube-system", serviceAccount: "admin", issuedAt: Self.now)
            .split(separator: ".")
        #expect(try Self.refusal("\(good[0]).\(other[1]).\(good[2])") == "bad_signature")
        let none = TestTokenIssuer.base64URL(Data(#"{"alg":"none"}"#.utf8))
        #expect(try Self.refusal("\(none).\(good[1]).") == "unsupported_algorithm")
        let hs256 = TestTokenIssuer.base64URL(Data(#"{"alg":"HS256","kid":"test-key-1"}"#.utf8))
        #expect(try Self.refusal("\(hs256).\(good[1]).\(good[2])") == "unsupported_algorithm")
        #expect(try Self.refusal("eyJ.not.ajwt") == "malformed")
        #expect(try Self.refusal("\(good[0]).\(good[1]).\(good[2])=") == "malformed")
        #expect(!ServiceAccountTokenVerifier.looksLikeJWT("sat-0123456789"))
    }

    @Test("a key set is read strictly: malformed keys are refused by index, foreign key types skipped")
    func keySets() throws {
        let set = try JSONWebKeySet.parse(
            Array(
                Self.issuer.keySetJSON.replacingOccurrences(
                    of: #"{"keys":["#, with: #"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"},"#
                ).utf8))
        #expect(set.keys.count == 2)
        #expect(set.skipped == 1)
        func error(_ json: String) -> String? {
            do throws(KubernetesConfigError) {
                _ = try JSONWebKeySet.parse(Array(json.utf8))
                return nil
            } catch {
                return error.message
            }
        }
        #expect(error(#"{"kes":[]}"#) == "keys: missing array")
        #expect(error(#"{"keys":[{"kty":"RSA","n":"AQAB"}]}"#)?.hasPrefix("keys[0]: an RSA key needs n and e") == true)
        #expect(
            error(#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#)?.hasPrefix("keys[0]: not a usable RSA") == true)
        #expect(
            error(#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#)?.hasPrefix("keys[0]: a P-256") == true)
        #expect(error(#"{"keys":[]}"#) == "keys: no RSA or P-256 signing key in the set")
    }
}

@Suite("Service claims and the agent identity file")
struct ServiceClaimTests {
    static let identity = ServiceAccountIdentity(
        namespace: "shop", serviceAccount: "checkout", podName: "checkout-1", expiresAt: 0)

    @Test("the namespace's rule decides; without one nothing may be claimed")
    func rules() {
        let rules = ServiceClaimRules(rules: [
            "shop": .serviceAccounts(["checkout": ["checkout", "checkout-worker"], "ops": ["*"]]),
            "billing": .serviceAccountName, "*": .deployment,
        ])
        #expect(rules.decide(service: "checkout", for: Self.identity) == .allowed)
        #expect(rules.decide(service: "checkout-worker", for: Self.identity) == .allowed)
        #expect(reason(rules.decide(service: "payments", for: Self.identity)) == "service_not_allowed")
        var ops = Self.identity
        ops.serviceAccount = "ops"
        #expect(rules.decide(service: "anything", for: ops) == .allowed)
        var billing = Self.identity
        billing.namespace = "billing"
        #expect(rules.decide(service: "checkout", for: billing) == .allowed)
        #expect(reason(rules.decide(service: "invoices", for: billing)) == "service_not_allowed")
        var other = Self.identity
        other.namespace = "search"
        #expect(rules.decide(service: "indexer", for: other) == .needsDeployment(namespace: "search", name: "indexer"))
        #expect(reason(rules.decide(service: nil, for: Self.identity)) == "no_service_claimed")
        #expect(reason(rules.decide(service: "Shop/Checkout", for: Self.identity)) == "invalid_service")
        let strict = ServiceClaimRules(rules: ["shop": .serviceAccountName])
        #expect(reason(strict.decide(service: "indexer", for: other)) == "no_claim_rule")
    }

    private func reason(_ decision: ServiceClaimRules.Decision) -> String? {
        if case .refused(let refusal) = decision { return refusal.reason }
        return nil
    }

    @Test("the identity file has defaults, and every mistake is named by its field")
    func file() throws {
        let defaults = try AgentIdentitySettings.parse(Array("{}".utf8))
        #expect(defaults == AgentIdentitySettings(verification: .tokenReview))
        #expect(defaults.claims.rules == ["*": .deployment])
        let offline = try AgentIdentitySettings.parse(
            Array(
                """
                {"verify":"key_set","key_set_file":"/etc/sluice/jwks.json","issuer":"https://issuer.example",
                 "audience":"sluice-prod","api_ca_file":null,
                 "service_claims":{"shop":{"service_accounts":{"checkout":["checkout"]}},
                                   "*":{"rule":"service_account_name"}}}
                """.utf8))
        #expect(offline.verification == .keySetFile("/etc/sluice/jwks.json"))
        #expect(offline.audience == "sluice-prod")
        #expect(offline.apiCAFile == nil)
        #expect(!offline.needsDeploymentLookups)
        func error(_ json: String) -> String? {
            do throws(KubernetesConfigError) {
                _ = try AgentIdentitySettings.parse(Array(json.utf8))
                return nil
            } catch {
                return error.message
            }
        }
        #expect(error(#"{"audiense":"x"}"#) == #""audiense": unknown field (did you mean audience?)"#)
        #expect(error(#"{"verify":"key_set","key_set_file":"/k"}"#)?.hasPrefix("issuer: required") == true)
        #expect(error(#"{"verify":"key_set","issuer":"i"}"#)?.hasPrefix("verify: key_set needs exactly one") == true)
        #expect(error(#"{"verify":"trust_me"}"#) == #"verify: "trust_me" is not token_review or key_set"#)
        #expect(error(#"{"key_set_file":"/k"}"#)?.hasPrefix("key_set_file/key_set_url: only with") == true)
        #expect(
            error(#"{"service_claims":{"shop":{"rule":"anyone"}}}"#)?.hasPrefix(
                #"service_claims."shop".rule: expected"#)
                == true)
        #expect(
            error(#"{"service_claims":{"shop":{"rul":"deployment"}}}"#)
                == #"service_claims."shop"."rul": unknown field (did you mean rule?)"#)
        #expect(
            error(#"{"service_claims":{"shop":{"service_accounts":{"a":["Not A Label"]}}}}"#)
                == #"service_claims."shop".service_accounts."a": expected a list of service names"#)
        #expect(error(#"{"service_claims":{"Shop!":{"rule":"deployment"}}}"#)?.contains("not a namespace") == true)
    }
}

@Suite("Envoy's x-forwarded-client-cert")
struct ForwardedClientCertTests {
    @Test("the nearest hop's SPIFFE URI names the workload; quoting, case and other keys do not confuse it")
    func parses() {
        let workload = ForwardedClientCert.Workload(namespace: "shop", serviceAccount: "checkout-sa")
        #expect(
            ForwardedClientCert.workload(
                in: #"By=spiffe://cluster.local/ns/a/sa/b;Hash=9f;Subject="CN=x,O=y;z";"#
                    + #"uri=spiffe://cluster.local/ns/shop/sa/checkout-sa"#,
                trustDomain: "cluster.local") == workload)
        #expect(
            ForwardedClientCert.workload(
                in: #"URI=spiffe://cluster.local/ns/x/sa/y,By=z;URI="spiffe://cluster.local/ns/shop/sa/checkout-sa""#,
                trustDomain: "cluster.local") == workload)
        for bad in [
            "URI=spiffe://cluster.local/ns/shop/sa/checkout-sa/extra", "URI=spiffe://cluster.local/ns/Shop/sa/x",
            "URI=spiffe://cluster.local.evil/ns/shop/sa/x", "URI=https://cluster.local/ns/shop/sa/x",
            "URI=spiffe://cluster.local/ns/shop/sa/x,Hash=only", "", ";;;", "URI=spiffe://cluster.local/ns//sa/x",
        ] {
            #expect(ForwardedClientCert.workload(in: bad, trustDomain: "cluster.local") == nil, "\(bad)")
        }
    }
}
