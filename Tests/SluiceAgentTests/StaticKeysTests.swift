import Foundation
import SluiceAgent
import SluicePolicy
import SluiceTestSupport
import Testing

/// Static token mappings: tokens from the environment, a file or the config, hashed at load
/// into keys of the policy; never named in an error.
@Suite("Static token mappings")
struct StaticKeysTests {
    static let catalog = """
        model_list:
          - model_name: a
            litellm_params: {model: openai/a}
            model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}

        """
    static let first = "sk-static-aaaaaaaaaaaaaaaaaaaa"
    static let second = "sk-static-bbbbbbbbbbbbbbbbbbbb"

    func engine(_ yaml: String, environment: [String: String]) throws -> PolicyEngine {
        let configuration = try ConfigLoader(environment: environment).load(yaml: yaml)
        return try PolicyEngine(policy: configuration.policy, serviceName: "shop/checkout", limiter: Limiter())
    }

    func refusal(_ yaml: String, environment: [String: String]) -> String? {
        do {
            _ = try ConfigLoader(environment: environment).load(yaml: yaml)
            return nil
        } catch {
            return error.message
        }
    }

    @Test("SLUICE_STATIC_KEYS alone: each token is a key of its team and project, and only they get in")
    func environment() throws {
        let engine = try engine(
            Self.catalog, environment: ["SLUICE_STATIC_KEYS": "\(Self.first)=ml/website, \(Self.second)=ops"])
        let now: Int64 = 1_795_435_200 * 1_000_000_000
        guard case .success(let caller) = engine.authenticate(presentedKey: Self.first, now: now) else {
            Issue.record("the first static token was refused")
            return
        }
        #expect(caller.keyID == "env-1" && caller.team == "ml" && caller.project == "website")
        guard case .success(let other) = engine.authenticate(presentedKey: Self.second, now: now) else {
            Issue.record("the second static token was refused")
            return
        }
        #expect(other.keyID == "env-2" && other.team == "ops" && other.project == nil)
        // Not keyless: no token, or any other, is refused.
        #expect((try? engine.authenticate(presentedKey: nil, now: now).get()) == nil)
        #expect((try? engine.authenticate(presentedKey: "sk-static-cccccccccccccccccccc", now: now).get()) == nil)
    }

    @Test("a file of token=team lines, comments skipped; a change to it changes the policy's version")
    func file() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("static-keys")
        try "# handed out 2026-12\n\n\(Self.first)=ml\n  \(Self.second)=ml/website  \n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let loaded = try ConfigLoader(environment: ["SLUICE_STATIC_KEYS_FILE": path]).load(yaml: Self.catalog)
        #expect(loaded.policy.keys.map(\.id) == ["file-1", "file-2"])
        try "\(Self.first)=ops\n".write(toFile: path, atomically: true, encoding: .utf8)
        let reloaded = try ConfigLoader(environment: ["SLUICE_STATIC_KEYS_FILE": path]).load(yaml: Self.catalog)
        #expect(reloaded.policy.version != loaded.policy.version)
        #expect(
            refusal(Self.catalog, environment: ["SLUICE_STATIC_KEYS_FILE": directory.file("missing")])?
                .contains("cannot be read") == true)
    }

    @Test("malformed or short entries are refused naming where they are, never the token")
    func refusals() {
        for (value, says) in [
            (Self.first, "SLUICE_STATIC_KEYS entry 1 must be token=team"),
            ("\(Self.first)=ml,\(Self.second)=", "SLUICE_STATIC_KEYS entry 2 must be token=team"),
            ("\(Self.first)=ml/a/b", "SLUICE_STATIC_KEYS entry 1 must be token=team"),
            ("short=ml", "SLUICE_STATIC_KEYS entry 1: the token is shorter than 16"),
        ] {
            let message = refusal(Self.catalog, environment: ["SLUICE_STATIC_KEYS": value])
            #expect(message?.contains(says) == true, "\(value): \(message ?? "accepted")")
            #expect(message?.contains("sk-static") == false, "a token was quoted: \(message ?? "")")
        }
        // With a policy section, a static key's team must exist: a typo is not a new team.
        let policy = Self.catalog + "sluice_policy:\n  teams: {ml: {}}\n"
        let dangling = refusal(policy, environment: ["SLUICE_STATIC_KEYS": "\(Self.first)=mll"])
        #expect(dangling?.contains("team \"mll\" does not exist") == true, "\(dangling ?? "accepted")")
        #expect(dangling?.contains("sk-static") == false)
    }

    @Test("static_keys in the config, tokens from the environment, beside hashed keys")
    func configured() throws {
        let yaml =
            Self.catalog + """
            sluice_policy:
              key_pepper: pepper-0123456789abcdef
              teams: {ml: {limits: {requests_per_minute: 10}}}
              static_keys:
                - {id: notebook, token: os.environ/NOTEBOOK_TOKEN, team: ml}

            """
        let engine = try engine(yaml, environment: ["NOTEBOOK_TOKEN": Self.first])
        let caller = try engine.authenticate(presentedKey: Self.first, now: 0).get()
        #expect(caller.keyID == "notebook" && caller.team == "ml")
        #expect(
            refusal(yaml, environment: [:])?.contains("static_keys[0].token refers to the environment variable")
                == true)
    }

    @Test("through a real agent: a static token in a configured key header gets in, audited by id; others do not")
    func keyHeaders() async throws {
        let settings = """
            sluice_settings:
              key_headers: [api-key, authorization]
            sluice_policy:
              teams: {ml: {}}
              static_keys:
                - {id: azure-sdk, token: \(Self.first), team: ml}

            """
        try await AgentHarness.with(settings: settings) { harness in
            let viaAPIKey = try await harness.post(
                #"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#,
                headers: [("api-key", Self.first)])
            #expect(viaAPIKey.status == 200, "\(viaAPIKey.text)")
            let viaBearer = try await harness.chat(key: Self.first)
            #expect(viaBearer.status == 200)
            // x-api-key is no longer one of the key headers: the call has no key.
            let notListed = try await harness.post(
                #"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#,
                headers: [("x-api-key", Self.first)])
            #expect(notListed.status == 401 && notListed.text.contains("missing_api_key"), "\(notListed.text)")
            let wrong = try await harness.chat(key: Self.second)
            #expect(wrong.status == 401)
            let records = await harness.auditRecords(4)
            #expect(records.prefix(2).allSatisfy { $0["key_id"] as? String == "azure-sdk" })
            #expect(records.prefix(2).allSatisfy { $0["team"] as? String == "ml" })
            #expect(!records.contains { String(describing: $0).contains(Self.first) }, "a token reached the audit")
        }
    }

    @Test("key_headers are checked: header names only, never one that carries something else")
    func keyHeaderRefusals() {
        for (list, says) in [
            ("[]", "one to eight header names"), ("[\"api key\"]", "must be a header name"),
            ("[cookie]", "cookie carries something else"), ("[x-sluice-key]", "carries something else"),
            ("[api-key, API-Key]", "listed twice"),
        ] {
            let message = refusal(Self.catalog + "sluice_settings:\n  key_headers: \(list)\n", environment: [:])
            #expect(message?.contains(says) == true, "\(list): \(message ?? "accepted")")
        }
    }
}
