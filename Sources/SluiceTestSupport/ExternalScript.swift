import Foundation
import Synchronization

/// A helper program (a Python SDK check, …) run to completion for one test: its standard
/// output and error go to a file, and its exit is awaited (see ``SpawnedChild``), not polled.
public enum ExternalScript {
    /// How the program exited, and what it printed (standard output and error together).
    public struct Outcome: Sendable {
        public var status: Int32
        public var output: String
    }

    /// Runs `executable` with `arguments` to completion.
    public static func run(
        _ executable: String, arguments: [String], outputDirectory: TemporaryDirectory,
        environment: [String: String]? = nil
    ) async throws -> Outcome {
        let path = outputDirectory.file("script-output.txt")
        let child = try SpawnedChild(
            executable: executable, arguments: arguments, environment: environment, outputPath: path, errorPath: path)
        let status = await child.waitForExit()
        let output = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return Outcome(status: status, output: output)
    }
}
