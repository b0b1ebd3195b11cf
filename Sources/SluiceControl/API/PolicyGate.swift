import Foundation
import SluicePolicy
import SluiceWire

/// Runs every admin write through the agents' own compiler before it is stored, so no
/// write can publish a bundle that agents refuse (which would freeze every agent on its
/// last policy: revocations included). A write is refused when it breaks the identifier
/// grammar, or when the policy it leads to has a problem the policy before it did not
/// have: a disabled entry, a dangling reference, or a document no agent would compile.
/// Problems already stored (from before these checks) are not blamed on an unrelated write,
/// and a write that removes one is always allowed.
///
/// The check reads a snapshot, then the store writes: two concurrent writes may each pass
/// alone. The store's own reference checks still hold inside its transaction, and what
/// else two racing writes could break (an allowlist naming a model deleted at the same
/// moment) is tolerated by agents: a dangling name matches nothing.
struct PolicyGate: Sendable {
    enum Change: Sendable {
        case put(Entity)
        case delete(EntityKind, String)
        case settings(SettingsDocument)
    }

    let keyPepper: Secret
    let zoneDirectory: String

    init(
        keyPepper: Secret, zoneDirectory: String = ProcessInfo.processInfo.environment["TZDIR"] ?? "/usr/share/zoneinfo"
    ) {
        self.keyPepper = keyPepper
        self.zoneDirectory = zoneDirectory
    }

    /// Throws a 400 (409 for a delete something still needs) naming every new problem.
    func check(_ change: Change, store: any Store) async throws {
        let grammar = Self.grammar(change)
        guard grammar.isEmpty else { throw Self.refusal(grammar, status: 400, code: "invalid_name") }
        let snapshot = try await store.snapshot()
        let before = Set(problems(in: document(snapshot)))
        var after = snapshot
        switch change {
        case .put(let entity):
            after.entities.removeAll { $0.kind == entity.kind && $0.name == entity.name }
            after.entities.append(entity)
        case .delete(let kind, let name):
            after.entities.removeAll { $0.kind == kind && $0.name == name }
        case .settings(let settings):
            after.settings = settings
        }
        var added = problems(in: document(after)).filter { !before.contains($0) }
        if case .delete = change {
            // A deny list naming a deleted model denies nothing that exists: harmless.
            added.removeAll { $0.path.hasSuffix(".denied_models") }
        }
        guard added.isEmpty else {
            if case .delete(let kind, let name) = change {
                let users = added.prefix(10).map { $0.path.isEmpty ? $0.message : $0.path }.joined(separator: ", ")
                throw APIError(
                    409,
                    "\(kind.rawValue) \(Identifier.quoted(name)) is still used by \(users)"
                        + (added.count > 10 ? " (and \(added.count - 10) more)" : "") + "; delete or move those first",
                    code: "still_referenced")
            }
            throw Self.refusal(added, status: 400, code: "policy_invalid")
        }
    }

    /// What the agents' compiler and the reference check find in `document`.
    func problems(in document: PolicyDocument) -> [AdmissionProblem] {
        let context = PolicyDocument.LocalContext(
            keyPepper: keyPepper,
            // Which credentials an agent holds is the agent's business: a missing one
            // disables only that deployment there.
            credential: { _ in Secret("held-by-agents") },
            timeZone: { [zoneDirectory] name in
                try? TimeZoneRules.resolve(name, directory: zoneDirectory) { path in
                    FileManager.default.contents(atPath: path).map { Array($0) }
                }
            })
        return document.admissionProblems(in: context)
    }

    private func document(_ snapshot: PolicySnapshot) -> PolicyDocument {
        PolicyPublisher.document(from: snapshot, pepperFingerprint: "", now: 0)
    }

    static func grammar(_ change: Change) -> [AdmissionProblem] {
        switch change {
        case .put(.team(let team)): PolicyDocument.grammarProblems(team: team)
        case .put(.project(let project)): PolicyDocument.grammarProblems(project: project)
        case .put(.service(let service)): PolicyDocument.grammarProblems(service: service)
        case .put(.model(let model)): PolicyDocument.grammarProblems(model: model)
        case .put(.key(let key)): PolicyDocument.grammarProblems(key: key)
        case .settings(let settings): PolicyDocument.grammarProblems(settings: settings)
        case .delete: []
        }
    }

    static func refusal(_ problems: [AdmissionProblem], status: Int, code: String) -> APIError {
        let shown = problems.prefix(5).map(\.description).joined(separator: "; ")
        let more = problems.count > 5 ? " (and \(problems.count - 5) more)" : ""
        return APIError(status, shown + more, code: code)
    }
}
