/// Which callers a policy entry (a guardrail, a pass-through) applies to. Empty everywhere
/// means every caller; otherwise a caller matching any listed team, project, key or
/// service (`*` for every service).
public struct CallerScopes: Sendable, Equatable {
    public var teams: Set<String>
    public var projects: Set<String>
    public var keys: Set<String>
    public var services: Set<String>

    public init(
        teams: Set<String> = [], projects: Set<String> = [], keys: Set<String> = [], services: Set<String> = []
    ) {
        self.teams = teams
        self.projects = projects
        self.keys = keys
        self.services = services
    }

    public var isGlobal: Bool { teams.isEmpty && projects.isEmpty && keys.isEmpty && services.isEmpty }

    public func contains(_ caller: Caller) -> Bool {
        if isGlobal { return true }
        if let team = caller.team, teams.contains(team) { return true }
        if let project = caller.project, projects.contains(project) { return true }
        if let key = caller.keyID, keys.contains(key) { return true }
        return services.contains(caller.service) || services.contains("*")
    }
}
