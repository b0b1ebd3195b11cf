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
/// The check runs inside the store's write transaction, on the policy the write changes
/// (``Store/change(_:)``): two concurrent writes that would each pass alone but together
/// leave a dangling reference cannot both land, on one process or across replicas.
struct PolicyGate: Sendable {
    let keyPepper: Secret
    let zoneDirectory: String

    init(
        keyPepper: Secret, zoneDirectory: String = ProcessInfo.processInfo.environment["TZDIR"] ?? "/usr/share/zoneinfo"
    ) {
        self.keyPepper = keyPepper
        self.zoneDirectory = zoneDirectory
    }

    /// Creates (`.create`), replaces (`.update`) or upserts `entity`.
    func put(_ entity: Entity, mode: PutMode, in store: any Store) async throws {
        try await write(in: store) { _ in .put(entity, mode) }
    }

    /// Reads the stored entity, changes it with `edit` and stores the result, with no other
    /// policy write in between (a patch cannot undo a concurrent revocation). Returns what
    /// was stored; 404 when there is no such entity.
    func edit(
        _ kind: EntityKind, _ name: String, in store: any Store,
        _ edit: @escaping @Sendable (Entity) throws -> Entity
    ) async throws -> Entity {
        try await stored(kind, name, absent: nil, in: store, edit)
    }

    /// ``edit(_:_:in:_:)`` that starts from `absent` when nothing of that name is stored,
    /// in the same transaction (LiteLLM blocks an end user it has not seen yet).
    func editOrCreate(
        _ kind: EntityKind, _ name: String, absent: Entity, in store: any Store,
        _ edit: @escaping @Sendable (Entity) throws -> Entity
    ) async throws -> Entity {
        try await stored(kind, name, absent: absent, in: store, edit)
    }

    /// The entity `edit` makes of the stored one (or of `absent`; 404 without either).
    private func stored(
        _ kind: EntityKind, _ name: String, absent: Entity?, in store: any Store,
        _ edit: @escaping @Sendable (Entity) throws -> Entity
    ) async throws -> Entity {
        let change = try await write(in: store) { snapshot in
            let current = snapshot.entities.first(where: { $0.kind == kind && $0.name == name })
            guard let base = current ?? absent else {
                throw APIError(404, "no \(kind.rawValue) \(Identifier.quoted(name))", code: "not_found")
            }
            return .put(try edit(base), current == nil ? .create : .update)
        }
        guard case .put(let entity, _) = change else { preconditionFailure("an edit stores an entity") }
        return entity
    }

    func delete(_ kind: EntityKind, _ name: String, in store: any Store) async throws {
        try await write(in: store) { _ in .delete(kind, name) }
    }

    /// Changes the fleet settings with `edit`; returns what was stored.
    func editSettings(
        in store: any Store, _ edit: @escaping @Sendable (SettingsDocument) throws -> SettingsDocument
    ) async throws -> SettingsDocument {
        let change = try await write(in: store) { snapshot in .settings(try edit(snapshot.settings)) }
        guard case .settings(let settings) = change else { preconditionFailure("a settings edit stores settings") }
        return settings
    }

    /// Stores the change `plan` makes, if ``check(_:against:)`` passes on the policy it
    /// changes, inside the store's write transaction.
    @discardableResult
    private func write(in store: any Store, _ plan: @escaping PolicyPlan) async throws -> PolicyChange {
        try await store.change { [self] snapshot in
            let change = try plan(snapshot)
            try check(change, against: snapshot)
            return change
        }.change
    }

    /// Throws a 400 (409 for a delete something still needs) naming every new problem
    /// `change` would bring to `snapshot`.
    func check(_ change: PolicyChange, against snapshot: PolicySnapshot) throws {
        let grammar = Self.grammar(change)
        guard grammar.isEmpty else { throw Self.refusal(grammar, status: 400, code: "invalid_name") }
        let before = Set(problems(in: document(snapshot)))
        var after = snapshot
        switch change {
        case .put(let entity, _):
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

    static func grammar(_ change: PolicyChange) -> [AdmissionProblem] {
        switch change {
        case .put(let entity, _): grammar(entity)
        case .settings(let settings): PolicyDocument.grammarProblems(settings: settings)
        case .delete: []
        }
    }

    static func grammar(_ entity: Entity) -> [AdmissionProblem] {
        switch entity {
        case .team(let team): PolicyDocument.grammarProblems(team: team)
        case .project(let project): PolicyDocument.grammarProblems(project: project)
        case .service(let service): PolicyDocument.grammarProblems(service: service)
        case .model(let model): PolicyDocument.grammarProblems(model: model)
        case .key(let key): PolicyDocument.grammarProblems(key: key)
        case .endUser(let endUser): PolicyDocument.grammarProblems(endUser: endUser)
        }
    }

    static func refusal(_ problems: [AdmissionProblem], status: Int, code: String) -> APIError {
        let shown = problems.prefix(5).map(\.description).joined(separator: "; ")
        let more = problems.count > 5 ? " (and \(problems.count - 5) more)" : ""
        return APIError(status, shown + more, code: code)
    }
}
