import Foundation
import Logging
import NIOPosix
import SluiceAgent
import SluiceTestSupport
import Testing

/// The agent as a shared gateway: TLS on 127.0.0.1 with a real certificate, the official
/// SDKs as callers, keyless callers refused whatever the policy says, and a renewed
/// certificate taken without a restart.
@Suite("Shared gateway mode")
struct GatewayModeTests {
    static let key = "sk-gateway-ml-0123456789abcdef"
    static let policy = """
        sluice_policy:
          teams: {ml: {}}
          services: {"*": {keyless: allowed}}
          static_keys:
            - {id: ml-key, token: \(key), team: ml}

        """

    /// Restarts `harness`'s agent as a gateway serving `certificate`.
    static func gateway(_ harness: AgentHarness, certificate: TestCertificate, reload: Duration = .seconds(10))
        async throws
    {
        harness.configureOptions = { options in
            var gateway = GatewayOptions(
                certificateFile: certificate.certificatePath, privateKeyFile: certificate.privateKeyPath)
            gateway.tlsReloadInterval = reload
            options.gateway = gateway
        }
        try await harness.restartAgent(yaml: harness.yaml)
    }

    static let script = """
        import sys, httpx, openai, anthropic
        base, ca, key = sys.argv[1], sys.argv[2], sys.argv[3]
        client = openai.OpenAI(base_url=base + "/v1", api_key=key, http_client=httpx.Client(verify=ca))
        reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
        print("ok openai", reply.choices[0].message.content)
        with client.chat.completions.stream(model="gpt-test", messages=[{"role": "user", "content": "hi"}]) as s:
            print("ok stream", "".join(e.delta for e in s if e.type == "content.delta"))
        claude = anthropic.Anthropic(base_url=base, api_key=key, http_client=httpx.Client(verify=ca))
        message = claude.messages.create(model="gpt-test", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
        print("ok anthropic", message.content[0].text)
        try:
            openai.OpenAI(base_url=base + "/v1", api_key="none", http_client=httpx.Client(verify=ca)) \\
                .chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
            print("FAIL keyless served")
        except openai.AuthenticationError as error:
            print("ok keyless refused", error.status_code)
        try:
            openai.OpenAI(base_url=base + "/v1", api_key=key, http_client=httpx.Client(verify=True)) \\
                .chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
            print("FAIL unverified certificate accepted")
        except openai.APIConnectionError:
            print("ok untrusted certificate refused")
        """

    @Test(
        "the official SDKs call the gateway over TLS with a key; keyless callers are refused",
        .enabled(if: ProviderDialectTests.sdkPython != nil, "set SLUICE_SDK_PYTHON (scripts/test.sh makes the venv)"))
    func sdksOverTLS() async throws {
        try await AgentHarness.with(settings: Self.policy) { harness in
            let certificate = try TestCertificate()
            defer { certificate.directory.remove() }
            try await Self.gateway(harness, certificate: certificate)
            let output = try TemporaryDirectory()
            defer { output.remove() }
            try Self.script.write(toFile: output.file("gateway_check.py"), atomically: true, encoding: .utf8)
            let run = try await ExternalScript.run(
                try #require(ProviderDialectTests.sdkPython),
                arguments: [
                    output.file("gateway_check.py"), "https://127.0.0.1:\(harness.agentPort)",
                    certificate.certificatePath, Self.key,
                ], outputDirectory: output)
            #expect(run.status == 0 && !run.output.contains("FAIL"), "\(run.output)")
            #expect(run.output.split(separator: "\n").filter { $0.hasPrefix("ok ") }.count == 5, "\(run.output)")
            #expect(run.output.contains("ok keyless refused 401"))
            // Plain HTTP to the TLS port gets no answer.
            await #expect(throws: (any Error).self) { _ = try await harness.chat(key: Self.key) }
        }
    }

    @Test("a non-loopback gateway without TLS is refused at start, and --tls-cert alone is refused")
    func refusesCleartext() throws {
        var options = AgentOptions(environment: [:], audit: MemoryAuditSink())
        options.listen = ListenAddress(host: "0.0.0.0", port: 0)
        options.gateway = GatewayOptions(certificateFile: nil, privateKeyFile: nil)
        let group = MultiThreadedEventLoopGroup.singleton
        do {
            _ = try buildAgent(options, group: group, logger: Logger(label: "test"))
            Issue.record("a cleartext gateway beyond loopback was built")
        } catch {
            #expect(error.message.contains("without TLS"), "\(error.message)")
        }
    }

    @Test("a renewed certificate is served to new connections without a restart")
    func reloadsCertificate() async throws {
        try await AgentHarness.with(settings: Self.policy) { harness in
            let certificate = try TestCertificate()
            defer { certificate.directory.remove() }
            try await Self.gateway(harness, certificate: certificate, reload: .milliseconds(50))
            let first = try await Self.servedCertificate(port: harness.agentPort)
            #expect(first.contains("BEGIN CERTIFICATE"), "\(first)")
            // Renew in place, as cert-manager does: new key and certificate at the same paths.
            let renewed = try TestCertificate()
            defer { renewed.directory.remove() }
            try FileManager.default.removeItem(atPath: certificate.certificatePath)
            try FileManager.default.removeItem(atPath: certificate.privateKeyPath)
            try FileManager.default.copyItem(atPath: renewed.privateKeyPath, toPath: certificate.privateKeyPath)
            try FileManager.default.copyItem(atPath: renewed.certificatePath, toPath: certificate.certificatePath)
            let deadline = ContinuousClock.now + .seconds(10)
            var served = first
            while served == first, ContinuousClock.now < deadline {
                // The reload is a periodic check; there is no event to wait on from outside.
                try await Task.sleep(for: .milliseconds(50))
                served = try await Self.servedCertificate(port: harness.agentPort)
            }
            #expect(served != first, "the renewed certificate was never served")
        }
    }

    /// The certificate the server on `port` presents to a new connection (PEM), read by
    /// Python's ssl module: a TLS client that shares no code with the agent.
    static func servedCertificate(port: Int) async throws -> String {
        let output = try TemporaryDirectory()
        defer { output.remove() }
        let run = try await ExternalScript.run(
            "/usr/bin/python3",
            arguments: ["-c", "import ssl; print(ssl.get_server_certificate(('127.0.0.1', \(port))))"],
            outputDirectory: output)
        guard run.status == 0 else { throw ProbeFailure(output: run.output) }
        return run.output
    }

    struct ProbeFailure: Error { var output: String }
}
