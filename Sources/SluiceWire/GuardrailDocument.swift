import SluicePolicy

/// An external guardrail as the policy carries it (`settings.guardrails[]`): where it
/// listens, how long to wait, what to do without a verdict, which callers it checks and how
/// many of their calls. See `docs/guardrails.md`.
public struct GuardrailDocument: Codable, Sendable, Equatable {
    public var name: String
    /// `https://…` or `http://…` (loopback or inside a mesh), the whole path included.
    public var url: String
    public var timeoutMilliseconds: Int
    /// `closed` (the default: no verdict refuses the call) or `open`.
    public var onFailure: String
    public var samplePercent: Int
    /// `off` (the default), `after` or `hold`.
    public var checkCompletion: String
    public var scopes: ScopesDocument?
    /// An environment variable on the agent holding the bearer token sent to the guardrail.
    public var credentialRef: String?

    public init(
        name: String, url: String, timeoutMilliseconds: Int = 1000, onFailure: String = "closed",
        samplePercent: Int = 100, checkCompletion: String = "off", scopes: ScopesDocument? = nil,
        credentialRef: String? = nil
    ) {
        self.checkCompletion = checkCompletion
        self.name = name
        self.url = url
        self.timeoutMilliseconds = timeoutMilliseconds
        self.onFailure = onFailure
        self.samplePercent = samplePercent
        self.scopes = scopes
        self.credentialRef = credentialRef
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, url
        case timeoutMilliseconds = "timeout_ms"
        case onFailure = "on_failure"
        case samplePercent = "sample_percent"
        case checkCompletion = "check_completion"
        case scopes
        case credentialRef = "credential_ref"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name),
            url: try container.decode(String.self, forKey: .url),
            timeoutMilliseconds: try container.decodeIfPresent(Int.self, forKey: .timeoutMilliseconds) ?? 1000,
            onFailure: try container.decodeIfPresent(String.self, forKey: .onFailure) ?? "closed",
            samplePercent: try container.decodeIfPresent(Int.self, forKey: .samplePercent) ?? 100,
            checkCompletion: try container.decodeIfPresent(String.self, forKey: .checkCompletion) ?? "off",
            scopes: try container.decodeIfPresent(ScopesDocument.self, forKey: .scopes),
            credentialRef: try container.decodeIfPresent(String.self, forKey: .credentialRef))
    }

    /// The most guardrails a policy may hold: each one is a round trip on every call it checks.
    public static let maximumCount = 16
}

/// The callers a guardrail checks or a pass-through admits: any listed team, project, key
/// or service (`*`: every service).
public struct ScopesDocument: Codable, Sendable, Equatable {
    public var teams: [String]
    public var projects: [String]
    public var keys: [String]
    /// `namespace/service`, or `*`.
    public var services: [String]

    public init(teams: [String] = [], projects: [String] = [], keys: [String] = [], services: [String] = []) {
        self.teams = teams
        self.projects = projects
        self.keys = keys
        self.services = services
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case teams, projects, keys, services
    }

    var callerScopes: CallerScopes {
        CallerScopes(teams: Set(teams), projects: Set(projects), keys: Set(keys), services: Set(services))
    }

    var isEmpty: Bool { teams.isEmpty && projects.isEmpty && keys.isEmpty && services.isEmpty }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            teams: try container.decodeIfPresent([String].self, forKey: .teams) ?? [],
            projects: try container.decodeIfPresent([String].self, forKey: .projects) ?? [],
            keys: try container.decodeIfPresent([String].self, forKey: .keys) ?? [],
            services: try container.decodeIfPresent([String].self, forKey: .services) ?? [])
    }
}

extension GuardrailDocument {
    /// The guardrail the engine asks, what is wrong with this entry (the document's fault),
    /// and what this agent lacks to ask it (a credential not mounted here).
    ///
    /// A bad entry is never dropped: dropping it would let the calls it checks through
    /// unchecked. It is kept unusable instead, so every call in its scope gets its failure
    /// mode (`closed`, the default, refuses them) until the entry is fixed.
    func compile(at path: String, credential resolve: (String) -> Secret?)
        -> (guardrail: Guardrail, problems: [String], warning: String?)
    {
        let failureMode = Guardrail.FailureMode(rawValue: onFailure) ?? .closed
        let scopes = scopes?.callerScopes ?? CallerScopes()
        var problems: [String] = []
        if Guardrail.FailureMode(rawValue: onFailure) == nil {
            problems.append("\(path).on_failure must be open or closed (treated as closed)")
        }
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(parsing: url, field: "url")
        } catch {
            problems.append("\(path).\(error.message)")
            endpoint = Endpoint(scheme: .http, host: "invalid", port: 80, basePath: "")
        }
        if url.utf8.count > 2048 { problems.append("\(path).url is longer than 2048 bytes") }
        if !(1...60_000).contains(timeoutMilliseconds) {
            problems.append("\(path).timeout_ms must be 1 to 60000")
        }
        if !(0...100).contains(samplePercent) { problems.append("\(path).sample_percent must be 0 to 100") }
        // Unreadable, the answer is held: never checked less than the admin may have meant.
        let completionCheck = Guardrail.CompletionCheck(rawValue: checkCompletion) ?? .hold
        if Guardrail.CompletionCheck(rawValue: checkCompletion) == nil {
            problems.append("\(path).check_completion must be off, after or hold (treated as hold)")
        }
        var credential: Secret?
        var warning: String?
        if let reference = credentialRef {
            if !Deployment.isCredentialReference(reference) {
                problems.append("\(path).credential_ref must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
            } else if let found = resolve(reference) {
                credential = found
            } else {
                warning =
                    "\(path): the credential \(reference) is not set on this agent; the guardrail fails "
                    + "\(failureMode == .closed ? "closed (refusing the calls it checks)" : "open")"
            }
        }
        var guardrail = Guardrail(
            name: name, endpoint: endpoint, timeoutMilliseconds: min(max(timeoutMilliseconds, 1), 60_000),
            failureMode: failureMode, samplePercent: min(max(samplePercent, 0), 100), scopes: scopes,
            credential: credential,
            unusableReason: !problems.isEmpty
                ? "it is misconfigured in the policy"
                : warning != nil ? "its credential is not set on this agent" : nil)
        guardrail.completionCheck = completionCheck
        return (guardrail, problems, warning)
    }
}
