import Foundation
import SluiceAPI

/// Runs `kubernetes-validate --strict` (PyPI; scripts/test.sh installs it into the test
/// venv) over manifests: every field must exist in Kubernetes' schema for the version.
public enum KubernetesValidate {
    /// The Kubernetes version manifests are validated against: the oldest with native
    /// sidecars on by default.
    public static let kubernetesVersion = "1.29.0"

    /// Why validation could not run or failed; `output` is the tool's report.
    public struct Failure: Error, CustomStringConvertible {
        public var output: String
        public var description: String { output }
        public init(output: String) { self.output = output }
    }

    /// The tool: `SLUICE_K8S_VALIDATE`, else the test venv's.
    public static var executable: String? {
        if let path = ProcessInfo.processInfo.environment["SLUICE_K8S_VALIDATE"], !path.isEmpty { return path }
        let venv = FileManager.default.currentDirectoryPath + "/.state/sdk-venv/bin/kubernetes-validate"
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }

    /// Validates each JSON document (a whole object with `apiVersion` and `kind`).
    public static func check(_ documents: [JSONValue]) async throws {
        let directory = try TemporaryDirectory(prefix: "sluice-k8s")
        defer { directory.remove() }
        var files: [String] = []
        for (index, document) in documents.enumerated() {
            let path = directory.file("object-\(index).json")
            try Data(document.bytes).write(to: URL(fileURLWithPath: path))
            files.append(path)
        }
        try await check(files: files)
    }

    /// Validates YAML or JSON files (a file may hold several YAML documents).
    public static func check(files: [String]) async throws {
        guard let executable else {
            throw Failure(output: "kubernetes-validate not found: run scripts/test.sh, or set SLUICE_K8S_VALIDATE")
        }
        let output = try TemporaryDirectory(prefix: "sluice-k8s-out")
        defer { output.remove() }
        let outcome = try await ExternalScript.run(
            executable, arguments: ["--strict", "--quiet", "-k", kubernetesVersion] + files, outputDirectory: output)
        guard outcome.status == 0 else { throw Failure(output: outcome.output) }
    }
}
