import SluicePolicy

/// An explicit pass-through as the policy carries it (`settings.pass_through[]`): which
/// unmetered provider paths, for which callers, through which alias. See
/// `docs/policy.md#pass-through`.
public struct PassThroughDocument: Codable, Sendable, Equatable {
    public var name: String
    /// Path prefixes such as `/v1/files` or `/v1/images/generations`.
    public var paths: [String]
    /// Upper-case methods; left out, `GET`, `POST` and `DELETE`.
    public var methods: [String]?
    public var alias: String
    /// Required: a pass-through names the callers it is for (`services: ["*"]` for all).
    public var scopes: ScopesDocument

    public init(name: String, paths: [String], methods: [String]? = nil, alias: String, scopes: ScopesDocument) {
        self.name = name
        self.paths = paths
        self.methods = methods
        self.alias = alias
        self.scopes = scopes
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, paths, methods, alias, scopes
    }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name),
            paths: try container.decode([String].self, forKey: .paths),
            methods: try container.decodeIfPresent([String].self, forKey: .methods),
            alias: try container.decode(String.self, forKey: .alias),
            scopes: try container.decode(ScopesDocument.self, forKey: .scopes))
    }

    /// The most pass-throughs a policy may hold.
    public static let maximumCount = 64

    /// The engine's pass-through, or what is wrong with the entry. A bad entry is left out:
    /// without it the paths stay refused, which never widens access.
    func compile(at path: String, catalog: Catalog) -> Result<PassThrough, WireError> {
        var problems: [String] = []
        if scopes.isEmpty {
            problems.append("\(path).scopes must name the callers it is for (services: [\"*\"] for every caller)")
        }
        if paths.isEmpty { problems.append("\(path).paths must list at least one path") }
        var dialects: Set<ProviderDialect> = []
        for (index, prefix) in paths.enumerated() {
            let at = "\(path).paths[\(index)]"
            guard prefix.utf8.count <= 256, prefix.hasPrefix("/"), !prefix.hasSuffix("/"),
                !prefix.contains("//"), !prefix.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }),
                prefix.unicodeScalars.allSatisfy({
                    $0.value > 0x20 && $0.value < 0x7F && !"?#%\\".unicodeScalars.contains($0)
                })
            else {
                problems.append("\(at): \(Identifier.quoted(prefix)) is not a plain path (/v1/files)")
                continue
            }
            guard let family = ProviderEndpointFamily.family(of: prefix) else {
                let known = ProviderEndpointFamily.all.filter { $0.dialect != nil }.map(\.prefix)
                problems.append(
                    "\(at): \(Identifier.quoted(prefix)) is not below a provider endpoint Sluice knows"
                        + "\(Suggestion.hint(for: prefix, among: Set(known))); only unmetered provider"
                        + " endpoints can be passed through")
                continue
            }
            guard let dialect = family.dialect else {
                problems.append("\(at): \(family.name) cannot be passed through (it names deployments itself)")
                continue
            }
            dialects.insert(dialect)
        }
        if dialects.count > 1 {
            problems.append("\(path).paths mix providers' endpoints; give each provider its own pass-through")
        }
        let methods = Set(self.methods ?? Array(PassThrough.defaultMethods))
        if methods.isEmpty || !methods.isSubset(of: PassThrough.allowedMethods) {
            problems.append("\(path).methods must be some of GET, POST, PUT, PATCH, DELETE")
        }
        let dialect = dialects.first ?? .openAI
        if let alias = catalog.alias(named: alias) {
            if !alias.deployments.contains(where: { $0.dialect == dialect }) {
                problems.append(
                    "\(path).alias: \(Identifier.quoted(alias.name)) has no \(dialect.rawValue) deployment to serve"
                        + " these paths")
            }
        } else if catalog.unavailableAliases[alias] == nil {
            problems.append("\(path).alias: \(Identifier.quoted(alias)) is not a model")
        }
        guard problems.isEmpty else {
            return .failure(WireError(problems.joined(separator: "; ")))
        }
        return .success(
            PassThrough(
                name: name, paths: paths, methods: methods, alias: alias, dialect: dialect,
                scopes: scopes.callerScopes))
    }
}
