import Foundation
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

    func run(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("refuses a non-loopback address and says why")
    func nonLoopback() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try "model_list: []\n".write(toFile: directory.file("c.yaml"), atomically: true, encoding: .utf8)
        let result = try run(["--config", directory.file("c.yaml"), "--listen", "0.0.0.0:4999"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("refusing to listen on 0.0.0.0:4999"))
        #expect(result.stderr.contains("--allow-non-loopback"))
    }

    @Test("reports an unreadable or invalid configuration clearly")
    func badConfig() throws {
        let missing = try run(["--config", "/nonexistent/sluice.yaml"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("cannot read the configuration file /nonexistent/sluice.yaml"))
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try "model_list:\n  - model_name: a\n".write(toFile: directory.file("c.yaml"), atomically: true, encoding: .utf8)
        let invalid = try run(["--config", directory.file("c.yaml")])
        #expect(invalid.status == 2)
        #expect(invalid.stderr.contains("model_list[0].litellm_params is missing"))
    }
}
