import Foundation
import NIOPosix
import SluiceTestSupport
import Testing

/// The `sluice-agent` executable itself, as an operator runs it.
@Suite("sluice-agent command line")
struct AgentCommandTests {
    static var binary: String {
        // Tests run from the package root; the executable sits beside the test bundle.
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundle.appendingPathComponent("sluice-agent").path
    }

    /// Runs the agent binary to completion; its standard output and error, together.
    func run(_ arguments: [String]) async throws -> (status: Int32, stderr: String) {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let outcome = try await ExternalScript.run(Self.binary, arguments: arguments, outputDirectory: directory)
        return (outcome.status, outcome.output)
    }

    @Test("refuses a non-loopback address and says why")
    func nonLoopback() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try "model_list: []\n".write(toFile: directory.file("c.yaml"), atomically: true, encoding: .utf8)
        let result = try await run(["--config", directory.file("c.yaml"), "--listen", "0.0.0.0:4999"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("refusing to listen on 0.0.0.0:4999"))
        #expect(result.stderr.contains("--allow-non-loopback"))
    }

    @Test("the admin port goes beyond loopback only when asked, and that does not open the caller port")
    func adminBeyondLoopback() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try "model_list: []\n".write(toFile: directory.file("c.yaml"), atomically: true, encoding: .utf8)
        let refused = try await run(["--config", directory.file("c.yaml"), "--metrics-listen", "0.0.0.0:9999"])
        #expect(refused.status == 2 && refused.stderr.contains("--allow-non-loopback-admin"))
        let dataPort = try await run([
            "--config", directory.file("c.yaml"), "--listen", "0.0.0.0:4999", "--allow-non-loopback-admin",
        ])
        #expect(dataPort.status == 2 && dataPort.stderr.contains("refusing to listen on 0.0.0.0:4999"))
    }

    @Test("reports an unreadable or invalid configuration clearly")
    func badConfig() async throws {
        let missing = try await run(["--config", "/nonexistent/sluice.yaml"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("cannot read the configuration file /nonexistent/sluice.yaml"))
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try "model_list:\n  - model_name: a\n".write(
            toFile: directory.file("c.yaml"), atomically: true, encoding: .utf8)
        let invalid = try await run(["--config", directory.file("c.yaml")])
        #expect(invalid.status == 2)
        #expect(invalid.stderr.contains("model_list[0].litellm_params is missing"))
    }
}

/// The real binary reloading its file on SIGHUP, without dropping the listener.
@Suite("sluice-agent reload on SIGHUP")
struct AgentReloadCommandTests {
    @Test("SIGHUP puts an edited file in force; a broken one is refused and logged")
    func sighup() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let config = directory.file("sluice.yaml")
        let log = directory.file("stderr.log")
        func catalog(_ names: [String]) -> String {
            "model_list:\n"
                + names.map {
                    "  - model_name: \($0)\n    litellm_params:\n      model: openai/\($0)\n      api_base: "
                        + "http://127.0.0.1:9/v1\n"
                }.joined()
        }
        try catalog(["first"]).write(toFile: config, atomically: true, encoding: .utf8)
        let port = try await ExternalProcess.freePort(group: group)
        let agent = try await ExternalProcess(
            executable: AgentCommandTests.binary,
            arguments: [
                "--config", config, "--listen", "127.0.0.1:\(port)", "--metrics-listen", "off", "--reload-poll-seconds",
                "0",
            ],
            port: port, group: group, stderrPath: log)

        func waitForLog(_ needle: String, occurrences: Int = 1) async throws {
            // The log line is the signal that the reload finished.
            for _ in 0..<500 {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                if text.components(separatedBy: needle).count - 1 >= occurrences { return }
                try await Task.sleep(for: .milliseconds(10))
            }
            Issue.record("no \"\(needle)\" in the agent's log")
        }
        #expect(try await TestHTTPClient.get("/v1/models", port: port, group: group).text.contains("\"first\""))
        try catalog(["first", "second"]).write(toFile: config, atomically: true, encoding: .utf8)
        agent.send(signal: SIGHUP)
        try await waitForLog("policy reloaded")
        #expect(try await TestHTTPClient.get("/v1/models", port: port, group: group).text.contains("\"second\""))

        try "model_list: [unclosed\n".write(toFile: config, atomically: true, encoding: .utf8)
        agent.send(signal: SIGHUP)
        try await waitForLog("configuration rejected")
        let models = try await TestHTTPClient.get("/v1/models", port: port, group: group).text
        #expect(models.contains("\"second\""))
        await agent.stop()
        try await group.shutdownGracefully()
    }
}
