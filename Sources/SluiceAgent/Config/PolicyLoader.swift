#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluicePolicy
import Yams

/// Reads the `sluice_policy` section: keys (by keyed hash), teams, projects, services,
/// model rules, prompt filters, limits and budgets. Every error names the path to the
/// field at fault and never repeats a secret.
struct PolicyLoader {
    let environment: [String: String]
    let catalog: Catalog

    static let limitFields: Set<String> = Set(LimitKind.allCases.map(\.rawValue))
    static let sections: Set<String> = ["key_pepper", "time_zone", "unpriced_models", "default_max_output_tokens", "only_allow_models",
                                        "prompt_filters", "default_limits", "end_user_default_limits", "rate_limits", "teams",
                                        "projects", "services", "keys", "end_users", "models"]

    func load(_ node: Node, version: String, warnings: inout [String]) throws(ConfigError) -> Policy {
        guard let top = node.mapping else { throw ConfigError("sluice_policy must be a mapping") }
        var policy = Policy(version: version, catalog: catalog)
        var rateLimits: Node?
        for (keyNode, value) in top {
            let key = keyNode.string ?? ""
            let at = "sluice_policy.\(key)"
            switch key {
            case "key_pepper":
                policy.keyPepper = try secret(value, at: at)
            case "time_zone":
                policy.timeZone = try timeZone(value.string ?? "", at: at)
            case "unpriced_models":
                guard let mode = value.string.flatMap(UnpricedModels.init(rawValue:)) else {
                    throw ConfigError("\(at) must be deny, deny_when_budgeted or flag")
                }
                policy.unpricedModels = mode
            case "default_max_output_tokens":
                guard let tokens = value.int, tokens > 0 else { throw ConfigError("\(at) must be a positive whole number") }
                policy.defaultMaxOutputTokens = tokens
            case "only_allow_models":
                policy.onlyAllowModels = try aliasList(value, at: at, warnings: &warnings)
            case "prompt_filters":
                policy.promptFilters = try promptFilters(value, at: at)
            case "default_limits":
                policy.defaultLimits = try limits(value, at: at)
            case "end_user_default_limits":
                policy.endUserDefaultLimits = try limits(value, at: at)
            case "rate_limits":
                rateLimits = value
            case "teams":
                for (name, entry) in try namedEntries(value, at: at) {
                    let path = "\(at).\(name)"
                    try checkFields(entry, at: path, known: ["allowed_models", "denied_models", "limits", "prompt_filters"], warnings: &warnings)
                    policy.teams[name] = TeamPolicy(name: name, models: try modelRules(entry, at: path, warnings: &warnings),
                                                    limits: try limits(entry["limits"], at: "\(path).limits"),
                                                    promptFilters: try promptFilters(entry["prompt_filters"], at: "\(path).prompt_filters"))
                }
            case "projects":
                for (name, entry) in try namedEntries(value, at: at) {
                    let path = "\(at).\(name)"
                    try checkFields(entry, at: path, known: ["team", "allowed_models", "denied_models", "limits"], warnings: &warnings)
                    guard let team = entry["team"]?.string else { throw ConfigError("\(path).team is missing") }
                    policy.projects[name] = ProjectPolicy(name: name, team: team, models: try modelRules(entry, at: path, warnings: &warnings),
                                                          limits: try limits(entry["limits"], at: "\(path).limits"))
                }
            case "services":
                for (name, entry) in try namedEntries(value, at: at) {
                    let path = "\(at).\(name)"
                    guard name == "*" || name.split(separator: "/").count == 2 else {
                        throw ConfigError("\(path): a service is named namespace/service, or * for any other")
                    }
                    try checkFields(entry, at: path, known: ["keyless", "allowed_models", "denied_models", "limits"], warnings: &warnings)
                    policy.services[name] = ServicePolicy(name: name, keylessAllowed: try keyless(entry["keyless"], at: "\(path).keyless"),
                                                          models: try modelRules(entry, at: path, warnings: &warnings),
                                                          limits: try limits(entry["limits"], at: "\(path).limits"))
                }
            case "keys":
                guard let entries = value.sequence else { throw ConfigError("\(at) must be a list") }
                for (index, entry) in entries.enumerated() {
                    policy.keys.append(try virtualKey(entry, at: "\(at)[\(index)]", warnings: &warnings))
                }
            case "end_users":
                for (name, entry) in try namedEntries(value, at: at) {
                    policy.endUserLimits[name] = try limits(entry, at: "\(at).\(name)")
                }
            case "models":
                for (name, entry) in try namedEntries(value, at: at) {
                    if catalog.alias(named: name) == nil { warnings.append("\(at).\(name) is not an alias in model_list") }
                    try checkFields(entry, at: "\(at).\(name)", known: ["limits"], warnings: &warnings)
                    policy.modelLimits[name] = try limits(entry["limits"], at: "\(at).\(name).limits")
                }
            default:
                throw ConfigError("sluice_policy.\(Identifier.quoted(key)) is unknown" + Suggestion.hint(for: key, among: Self.sections))
            }
        }
        if let rateLimits { try applyRateLimits(rateLimits, to: &policy) }
        do {
            try policy.validate()
        } catch {
            throw ConfigError("sluice_policy: \(error.message)")
        }
        return policy
    }

    // MARK: - Pieces

    private func virtualKey(_ entry: Node, at path: String, warnings: inout [String]) throws(ConfigError) -> KeyPolicy {
        try checkFields(entry, at: path, known: ["id", "hash", "team", "project", "metadata", "expires_at", "revoked",
                                                 "allowed_models", "denied_models", "limits"], warnings: &warnings)
        guard let id = entry["id"]?.string, !id.isEmpty else { throw ConfigError("\(path).id is missing") }
        guard let hashText = entry["hash"]?.string else {
            throw ConfigError("\(path).hash is missing: store `sluice-agent hash-key` output, never the key itself")
        }
        guard let hash = KeyHash(encoded: hashText) else { throw ConfigError("\(path).hash must be hmac-sha256: and 64 hex digits") }
        guard let team = entry["team"]?.string, !team.isEmpty else { throw ConfigError("\(path).team is missing") }
        var metadata: [String: String] = [:]
        if let node = entry["metadata"] {
            guard let mapping = node.mapping else { throw ConfigError("\(path).metadata must be a mapping") }
            for (name, value) in mapping {
                metadata[name.string ?? ""] = value.string ?? ""
            }
        }
        var expiresAt: Int64?
        if let text = entry["expires_at"]?.string {
            guard let seconds = parseTimestamp(text) else {
                throw ConfigError("\(path).expires_at must be a date (2027-01-31) or an RFC 3339 time (2027-01-31T12:00:00Z)")
            }
            expiresAt = seconds
        }
        var revoked = false
        if let node = entry["revoked"] {
            guard let flag = node.bool else { throw ConfigError("\(path).revoked must be true or false") }
            revoked = flag
        }
        return KeyPolicy(id: id, hash: hash, team: team, project: entry["project"]?.string, metadata: metadata,
                         expiresAt: expiresAt, revoked: revoked, models: try modelRules(entry, at: path, warnings: &warnings),
                         limits: try limits(entry["limits"], at: "\(path).limits"))
    }

    private func limits(_ node: Node?, at path: String) throws(ConfigError) -> Limits {
        guard let node else { return .none }
        guard let mapping = node.mapping else { throw ConfigError("\(path) must be a mapping of limits") }
        var limits = Limits()
        for (keyNode, value) in mapping {
            let name = keyNode.string ?? ""
            guard let kind = LimitKind(rawValue: name) else {
                throw ConfigError("\(path).\(name) is not a limit; use one of \(LimitKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            func count() throws(ConfigError) -> Int {
                guard let number = value.int, number > 0, number <= 1_000_000_000 else {
                    throw ConfigError("\(path).\(name) must be a whole number from 1 to 1e9")
                }
                return number
            }
            func usd() throws(ConfigError) -> Cost {
                guard let number = value.float, let cost = Cost(usd: number) else {
                    throw ConfigError("\(path).\(name) must be a non-negative amount of US dollars")
                }
                return cost
            }
            switch kind {
            case .requestsPerMinute: limits.requestsPerMinute = try count()
            case .tokensPerMinute: limits.tokensPerMinute = try count()
            case .requestsPerDay: limits.requestsPerDay = try count()
            case .maxParallelRequests: limits.maxParallelRequests = try count()
            case .dailySpend: limits.dailySpend = try usd()
            case .monthlySpend: limits.monthlySpend = try usd()
            }
        }
        return limits
    }

    private func modelRules(_ entry: Node, at path: String, warnings: inout [String]) throws(ConfigError) -> ModelRules {
        var rules = ModelRules()
        if let allowed = entry["allowed_models"] { rules.allowed = try aliasList(allowed, at: "\(path).allowed_models", warnings: &warnings) }
        if let denied = entry["denied_models"] { rules.denied = try aliasList(denied, at: "\(path).denied_models", warnings: &warnings) }
        return rules
    }

    private func aliasList(_ node: Node, at path: String, warnings: inout [String]) throws(ConfigError) -> Set<String> {
        guard let items = node.sequence else { throw ConfigError("\(path) must be a list of model aliases") }
        var names: Set<String> = []
        for item in items {
            guard let name = item.string, !name.isEmpty else { throw ConfigError("\(path) must hold alias names") }
            if catalog.alias(named: name) == nil { warnings.append("\(path) names \(name), which is not in model_list") }
            names.insert(name)
        }
        return names
    }

    private func promptFilters(_ node: Node?, at path: String) throws(ConfigError) -> [PromptFilter] {
        guard let node else { return [] }
        guard let items = node.sequence else { throw ConfigError("\(path) must be a list of {name, pattern}") }
        var filters: [PromptFilter] = []
        for (index, item) in items.enumerated() {
            guard let name = item["name"]?.string, !name.isEmpty, let pattern = item["pattern"]?.string, !pattern.isEmpty else {
                throw ConfigError("\(path)[\(index)] needs a name and a pattern")
            }
            do {
                filters.append(try PromptFilter(name: name, pattern: pattern))
            } catch {
                throw ConfigError("\(path)[\(index)]: \(error.message)")
            }
        }
        return filters
    }

    private func keyless(_ node: Node?, at path: String) throws(ConfigError) -> Bool {
        guard let node else { return false }
        if let flag = node.bool { return flag }
        switch node.string {
        case "allowed": return true
        case "denied": return false
        default: throw ConfigError("\(path) must be allowed or denied")
        }
    }

    private func namedEntries(_ node: Node, at path: String) throws(ConfigError) -> [(String, Node)] {
        guard let mapping = node.mapping else { throw ConfigError("\(path) must be a mapping of names to settings") }
        var entries: [(String, Node)] = []
        for (keyNode, value) in mapping {
            guard let name = keyNode.string, !name.isEmpty else { throw ConfigError("\(path) has an empty name") }
            entries.append((name, value))
        }
        return entries
    }

    private func checkFields(_ node: Node, at path: String, known: Set<String>, warnings: inout [String]) throws(ConfigError) {
        guard let mapping = node.mapping else { throw ConfigError("\(path) must be a mapping") }
        for (keyNode, _) in mapping where !known.contains(keyNode.string ?? "") {
            let key = keyNode.string ?? "?"
            throw ConfigError("\(path).\(Identifier.quoted(key)) is unknown" + Suggestion.hint(for: key, among: known))
        }
    }

    private func secret(_ node: Node, at path: String) throws(ConfigError) -> Secret {
        guard let raw = node.string, !raw.isEmpty else { throw ConfigError("\(path) must be a string") }
        guard raw.hasPrefix("os.environ/") else { return Secret(raw) }
        let name = String(raw.dropFirst("os.environ/".count))
        guard let value = environment[name], !value.isEmpty else {
            throw ConfigError("\(path) refers to the environment variable \(name), which is not set")
        }
        return Secret(value)
    }

    /// `UTC`, a fixed offset (`+05:30`), or an IANA name read from the system's zoneinfo.
    func timeZone(_ name: String, at path: String) throws(ConfigError) -> TimeZoneRules {
        do {
            return try TimeZoneRules.resolve(name, directory: environment["TZDIR"] ?? "/usr/share/zoneinfo", readFile: readWholeFile)
        } catch {
            throw ConfigError("\(path): \(error.message)")
        }
    }

    /// `rate_limits: {default: 1000/day, org_1: 200, user_abc: 10}`: LiteLLM-style seed
    /// shorthand. A name may carry its kind (`team:org_1`, `user:abc`, `key:ci`); a bare
    /// name is looked up among teams, projects, key ids, services and models, and is an end
    /// user when it is none of them. A name that matches two kinds is refused.
    private func applyRateLimits(_ node: Node, to policy: inout Policy) throws(ConfigError) {
        for (name, value) in try namedEntries(node, at: "sluice_policy.rate_limits") {
            let path = "sluice_policy.rate_limits.\(name)"
            let rate: Limits
            do {
                rate = try Limits.parseRate(value.string ?? "")
            } catch {
                throw ConfigError("\(path): \(error.message)")
            }
            var kind: Scope.Kind?
            var target = name
            if name == "default" {
                policy.defaultLimits = rate.overlaid(on: policy.defaultLimits)
                continue
            }
            if let colon = name.firstIndex(of: ":"), let explicit = Scope.Kind(rawValue: String(name[..<colon])) {
                kind = explicit
                target = String(name[name.index(after: colon)...])
            } else {
                var matches: [Scope.Kind] = []
                if policy.teams[name] != nil { matches.append(.team) }
                if policy.projects[name] != nil { matches.append(.project) }
                if policy.keys.contains(where: { $0.id == name }) { matches.append(.key) }
                if policy.services[name] != nil { matches.append(.service) }
                if policy.catalog.alias(named: name) != nil { matches.append(.model) }
                guard matches.count <= 1 else {
                    throw ConfigError("\(path): \(name) is both a \(matches.map(\.rawValue).joined(separator: " and a ")); write kind:\(name)")
                }
                kind = matches.first ?? .user
            }
            switch kind! {
            case .team:
                guard policy.teams[target] != nil else { throw ConfigError("\(path): no team \(target)") }
                policy.teams[target]!.limits = rate.overlaid(on: policy.teams[target]!.limits)
            case .project:
                guard policy.projects[target] != nil else { throw ConfigError("\(path): no project \(target)") }
                policy.projects[target]!.limits = rate.overlaid(on: policy.projects[target]!.limits)
            case .key:
                guard let index = policy.keys.firstIndex(where: { $0.id == target }) else { throw ConfigError("\(path): no key \(target)") }
                policy.keys[index].limits = rate.overlaid(on: policy.keys[index].limits)
            case .service:
                guard policy.services[target] != nil else { throw ConfigError("\(path): no service \(target)") }
                policy.services[target]!.limits = rate.overlaid(on: policy.services[target]!.limits)
            case .model:
                policy.modelLimits[target] = rate.overlaid(on: policy.modelLimits[target] ?? .none)
            case .user:
                policy.endUserLimits[target] = rate.overlaid(on: policy.endUserLimits[target] ?? .none)
            }
        }
    }
}

/// `2027-01-31` (midnight UTC) or `2027-01-31T12:00:00Z` / `…+02:00`, as Unix seconds.
func parseTimestamp(_ text: String) -> Int64? {
    let bytes = Array(text.utf8)
    func number(_ range: Range<Int>) -> Int64? {
        guard range.upperBound <= bytes.count else { return nil }
        var value: Int64 = 0
        for byte in bytes[range] {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            value = value * 10 + Int64(byte - 0x30)
        }
        return value
    }
    guard bytes.count >= 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
          let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
          (1...12).contains(month), (1...31).contains(day) else { return nil }
    let date = CivilDate(year: year, month: month, day: day)
    guard CivilDate(dayNumber: date.dayNumber) == date else { return nil }  // 2027-02-30
    var seconds = date.dayNumber * 86_400
    if bytes.count == 10 { return seconds }
    guard bytes.count >= 20, bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: " "),
          bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
          let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
          hour < 24, minute < 60, second < 61 else { return nil }
    seconds += hour * 3600 + minute * 60 + second
    var rest = bytes[19...]
    if rest.first == UInt8(ascii: ".") {
        rest = rest.dropFirst()
        while let byte = rest.first, byte >= 0x30, byte <= 0x39 { rest = rest.dropFirst() }
    }
    let zone = String(decoding: rest, as: UTF8.self)
    guard let rules = TimeZoneRules(fixedOffset: zone) else { return nil }
    return seconds - rules.offset(at: 0)
}

/// The whole file, or nil if it cannot be read (at most 16 MiB).
func readWholeFile(_ path: String) -> [UInt8]? {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while bytes.count < 16 << 20 {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0, errno == EINTR { continue }
        guard count >= 0 else { return nil }
        if count == 0 { return bytes }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return nil
}
