import Foundation
import Synchronization

/// A helper program (a Python SDK check, …) run to completion for one test: its standard
/// output and error go to a file, and its exit is awaited through Foundation's termination
/// handler, not polled.
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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let path = outputDirectory.file("script-output.txt")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        process.standardOutput = handle
        process.standardError = handle
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { finished in continuation.resume(returning: finished.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        try? handle.close()
        let output = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return Outcome(status: status, output: output)
    }
}
