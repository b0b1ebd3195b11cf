import Foundation
import SluiceControl
import SluicePolicy
import SluiceTestSupport
import Testing

/// The sidecar injection webhook served by a real control plane: configured from a file the
/// way the chart does it, called over HTTP with AdmissionReviews. The injector's decisions
/// themselves are covered by PodInjectorTests.
@Suite("Injection webhook on the control plane")
struct WebhookTests {
    static let pem = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"

    /// Writes the configuration (and a CA file) into `directory`, returning the config path.
    static func configFile(_ json: String, in directory: TemporaryDirectory) throws -> String {
        try pem.write(toFile: directory.file("ca.crt"), atomically: true, encoding: .utf8)
        let path = directory.file("injection.json")
        try json.replacingOccurrences(of: "CA_FILE", with: directory.file("ca.crt"))
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let config = """
        {"image":"registry.local/sluice-agent:1.0","control_plane_url":"https://sluice-control.sluice.svc:8443",
         "control_plane_ca_file":"CA_FILE","namespace":"sluice","flush_interval_seconds":3,
         "resources":{"cpu_request":"10m","memory_limit":null}}
        """

    static func review(annotated: Bool) -> String {
        let annotations = annotated ? #","annotations":{"sluice.dev/inject":"true"}"# : ""
        return """
            {"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1",
             "kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"shop","operation":"CREATE",
             "object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"worker"\(annotations)},
              "spec":{"containers":[{"name":"app","image":"shop/worker:1"}]}}}}
            """
    }

    func patch(_ response: TestResponse) throws -> [[String: Any]] {
        let review = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        let answer = try #require(review["response"] as? [String: Any])
        #expect(answer["allowed"] as? Bool == true && answer["uid"] as? String == "u-1")
        guard let encoded = answer["patch"] as? String else { return [] }
        let bytes = try #require(Data(base64Encoded: encoded))
        return try #require(try JSONSerialization.jsonObject(with: bytes) as? [[String: Any]])
    }

    @Test("an annotated pod gets the agent with this control plane's public key and CA; others pass unchanged")
    func injects() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let path = try Self.configFile(Self.config, in: scratch)
        try await ControlHarness.with(configure: { try $0.loadInjection(from: path) }) { control in
            let injected = try patch(
                try await control.request("POST", "/mutate", json: Self.review(annotated: true), token: nil))
            let agent = try #require(
                (injected.first { $0["path"] as? String == "/spec/initContainers" }?["value"] as? [[String: Any]])?
                    .first)
            #expect(agent["image"] as? String == "registry.local/sluice-agent:1.0")
            let env = (agent["env"] as? [[String: Any]] ?? []).reduce(into: [String: String]()) {
                if let name = $1["name"] as? String, let value = $1["value"] as? String { $0[name] = value }
            }
            #expect(env["SLUICE_POLICY_PUBLIC_KEY"] == control.publicKey.rawRepresentation.base64EncodedString())
            #expect(env["SLUICE_CONTROL_PLANE_CA"] == Self.pem && env["SLUICE_SERVICE"] == "worker")
            let resources = agent["resources"] as? [String: Any]
            #expect((resources?["requests"] as? [String: String])?["cpu"] == "10m")
            #expect(resources?["limits"] == nil)
            let args = agent["args"] as? [String] ?? []
            #expect(args.firstIndex(of: "--flush-interval-seconds").map { args[$0 + 1] } == "3")

            // Not annotated: unchanged at /mutate, injected where the namespace opted in.
            let plain = Self.review(annotated: false)
            #expect(try patch(try await control.request("POST", "/mutate", json: plain, token: nil)).isEmpty)
            #expect(
                try !patch(try await control.request("POST", "/mutate/namespace", json: plain, token: nil)).isEmpty)

            let malformed = try await control.request("POST", "/mutate", json: #"{"kind":"Pod"}"#, token: nil)
            #expect(malformed.status == 400 && malformed.text.contains("invalid_admission_review"))
        }
    }

    @Test("without an injection configuration there is no webhook")
    func noWebhook() async throws {
        try await ControlHarness.with { control in
            let response = try await control.request("POST", "/mutate", json: Self.review(annotated: true), token: nil)
            #expect(response.status == 404)
        }
    }

    @Test("the configuration file is strict: unknown fields, bad values and a missing CA file are refused by name")
    func strictConfiguration() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        func refusal(_ json: String) throws -> String {
            var options = ControlOptions(adminToken: Secret("admin-token-for-tests-0123456789"))
            let path = try Self.configFile(json, in: scratch)
            do throws(ControlStartError) {
                try options.loadInjection(from: path)
            } catch {
                return error.message
            }
            Issue.record("accepted: \(json)")
            return ""
        }
        let base = #""image":"i","control_plane_url":"https://c","namespace":"sluice""#
        #expect(try refusal("{\(base),\"imagee\":\"x\"}").contains("\"imagee\": unknown field"))
        #expect(try refusal("{\(base),\"resources\":{\"cpu_reqest\":\"1\"}}").contains("did you mean cpu_request?"))
        #expect(try refusal("{\(base),\"resources\":{\"cpu_request\":\"lots\"}}").contains("resources.cpu_request"))
        #expect(try refusal("{\(base),\"admin_port\":4000}").contains("admin_port: must differ from agent_port"))
        #expect(try refusal("{\(base),\"flush_interval_seconds\":0}").contains("flush_interval_seconds"))
        #expect(try refusal(#"{"image":"i","namespace":"sluice"}"#).contains("control_plane_url"))
        #expect(try refusal("{\(base),\"control_plane_ca_file\":\"/nonexistent\"}").contains("no PEM file"))
        #expect(
            try refusal("{\(base),\"pod_annotations\":{\"no-prefix\":\"443\"}}").contains(
                #"pod_annotations."no-prefix": expected a prefixed annotation name"#))
        #expect(
            try refusal("{\(base),\"pod_annotations\":{\"config.linkerd.io/skip-outbound-ports\":443}}").contains(
                "pod_annotations"))
    }
}
