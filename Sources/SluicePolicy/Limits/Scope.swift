/// What a set of limits is attached to. Denials and metrics name the scope this way
/// (`team "ml"`), never with anything secret: a key is named by its id.
public struct Scope: Sendable, Hashable, CustomStringConvertible {
    /// What a limit is attached to; the raw value names it in errors and metrics.
    public enum Kind: String, Sendable, CaseIterable {
        case key, project, team, service, user, model
    }
    public var kind: Kind
    public var name: String

    public init(_ kind: Kind, _ name: String) {
        self.kind = kind
        self.name = name
    }

    public var description: String { "\(kind.rawValue) \"\(name.prefix(64))\"" }
}

/// Up to one limiter slot per scope kind: the scopes one call touches. Stored inline so a
/// decision allocates nothing.
public struct ScopeSlots: Sendable, Equatable {
    private var key: Int32 = -1, project: Int32 = -1, team: Int32 = -1, service: Int32 = -1, user: Int32 = -1,
        model: Int32 = -1

    public init() {}

    public subscript(kind: Scope.Kind) -> Int32? {
        get {
            let value: Int32
            switch kind {
            case .key: value = key
            case .project: value = project
            case .team: value = team
            case .service: value = service
            case .user: value = user
            case .model: value = model
            }
            return value < 0 ? nil : value
        }
        set {
            let value = newValue ?? -1
            switch kind {
            case .key: key = value
            case .project: project = value
            case .team: team = value
            case .service: service = value
            case .user: user = value
            case .model: model = value
            }
        }
    }

    /// Calls `body` for each slot present, in a fixed order (key first, model last).
    @inline(__always)
    func forEach(_ body: (Int) -> Void) {
        if key >= 0 { body(Int(key)) }
        if project >= 0 { body(Int(project)) }
        if team >= 0 { body(Int(team)) }
        if service >= 0 { body(Int(service)) }
        if user >= 0 { body(Int(user)) }
        if model >= 0 { body(Int(model)) }
    }
}
