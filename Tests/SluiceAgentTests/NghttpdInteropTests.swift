import Foundation
import Logging
import NIOPosix
import SluiceTestSupport
import Testing

/// The agent against nghttpd, an HTTP/2 server we did not write (apt `nghttp2-server`).
/// `--echo-upload` answers a POST with its own body, so what comes back is exactly what the
/// agent sent upstream.
@Suite("Interop with nghttpd")
struct NghttpdInteropTests {
    static let nghttpd = ExternalProcess.find(["/usr/sbin/nghttpd", "/usr/bin/nghttpd"])

    @Test("chat through the agent to nghttpd, over TLS (ALPN h2) and h2c", arguments: [true, false])
    func echo(tls: Bool) async throws {
        let nghttpd = try #require(Self.nghttpd, "nghttpd is missing: scripts/test.sh installs nghttp2-server")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let certificate = try TestCertificate()
        let docroot = try TemporaryDirectory(prefix: "nghttpd")
        defer {
            certificate.directory.remove()
            docroot.remove()
        }
        let port = try await ExternalProcess.freePort(group: group)
        var arguments = ["--echo-upload", "--address=127.0.0.1", "-d", docroot.path]
        if !tls { arguments.append("--no-tls") }
        arguments.append(String(port))
        if tls { arguments += [certificate.privateKeyPath, certificate.certificatePath] }
        let server = try await ExternalProcess(executable: nghttpd, arguments: arguments, port: port, group: group)
        do {
            try await exercise(server: server, scheme: tls ? "https" : "http", certificate: certificate)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
        try await group.shutdownGracefully()
    }

    func exercise(server: ExternalProcess, scheme: String, certificate: TestCertificate) async throws {
        let port = server.port

        try await AgentHarness.with(aliases: [:]) { harness in
            try await harness.restartAgent(
                yaml: """
                    model_list:
                      - model_name: echo
                        litellm_params:
                          model: openai/echo-upstream
                          api_base: \(scheme)://127.0.0.1:\(port)/v1
                          api_key: sk-test-provider-secret-0123456789
                          ssl_verify: \(certificate.certificatePath)
                    """)
            let body = #"{"model":"echo","messages":[{"role":"user","content":"héllo \"world\""}],"temperature":0.5}"#
            let response = try await harness.post(body)
            #expect(response.status == 200)
            // nghttpd echoed exactly the forwarded body: the model changed, and the service
            // identity went in as `user` because the caller named none.
            #expect(
                response.text
                    == body.replacingOccurrences(of: #""model":"echo""#, with: #""model":"echo-upstream""#)
                    .replacingOccurrences(of: "0.5}", with: #"0.5,"user":"shop/checkout"}"#))
            let record = try #require(await harness.auditRecords(1).first)
            #expect(record["http_version"] as? String == "h2")
            #expect(record["usage_estimated"] as? Bool == true)  // an echo carries no usage block

            // Many calls at once share the connection and all come back intact.
            let results = try await withThrowingTaskGroup(of: Bool.self) { tasks in
                for index in 0..<50 {
                    tasks.addTask {
                        let own = #"{"model":"echo","n":\#(index),"user":"u\#(index)"}"#
                        return try await harness.post(own).text
                            == #"{"model":"echo-upstream","n":\#(index),"user":"u\#(index)"}"#
                    }
                }
                return try await tasks.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(results.count == 50 && results.allSatisfy { $0 })
        }
    }
}
