import SluicePolicy
import SluiceWire

/// Static token mappings: tokens an operator hands out without a control plane, each mapped
/// to a team (and project), from `sluice_policy.static_keys` entries, the environment
/// variable `SLUICE_STATIC_KEYS`, or the file `SLUICE_STATIC_KEYS_FILE` names. Each token is
/// hashed at load into an ordinary key of the policy, so it is checked, limited and audited
/// (by id) like any key; the token itself is kept nowhere and named in no error.
///
/// The variable holds `token=team` or `token=team/project` entries separated by commas or
/// newlines; the file holds one per line (blank lines and `#` comments skipped). Their keys'
/// ids are `env-N` and `file-N` (N counting entries from 1).
struct StaticKeys {
    struct Entry {
        var id: String
        var token: Secret
        var team: String
        var project: String?
        /// Where the entry was given, for errors: never the token.
        var origin: String
    }

    var entries: [Entry] = []

    /// The shortest token accepted: anything shorter could be guessed.
    static let shortestToken = 16

    /// Reads the environment's two sources; the config file's entries are added by
    /// `PolicySection`.
    init(environment: [String: String], readFile: (String) -> [UInt8]?) throws(ConfigError) {
        if let value = environment["SLUICE_STATIC_KEYS"], !value.isEmpty {
            let items = value.split(whereSeparator: { $0 == "," || $0 == "\n" })
                .map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
            for (index, item) in items.enumerated() {
                entries.append(
                    try Self.entry(item, id: "env-\(index + 1)", origin: "SLUICE_STATIC_KEYS entry \(index + 1)"))
            }
        }
        if let path = environment["SLUICE_STATIC_KEYS_FILE"], !path.isEmpty {
            guard let bytes = readFile(path) else {
                throw ConfigError("SLUICE_STATIC_KEYS_FILE names \(path), which cannot be read")
            }
            var count = 0
            for (number, line) in String(decoding: bytes, as: UTF8.self).split(
                separator: "\n", omittingEmptySubsequences: false
            ).enumerated() {
                let item = line.trimmingSpaces()
                guard !item.isEmpty, !item.hasPrefix("#") else { continue }
                count += 1
                entries.append(try Self.entry(item, id: "file-\(count)", origin: "\(path) line \(number + 1)"))
            }
        }
    }

    /// One `token=team[/project]` entry.
    static func entry(_ item: String, id: String, origin: String) throws(ConfigError) -> Entry {
        // The last `=` splits: a token may hold one, a team name cannot.
        guard let equals = item.lastIndex(of: "=") else {
            throw ConfigError("\(origin) must be token=team or token=team/project")
        }
        let token = String(item[..<equals])
        let scope = item[item.index(after: equals)...].split(separator: "/", omittingEmptySubsequences: false)
        try checkLength(token, origin: origin)
        guard (1...2).contains(scope.count), scope.allSatisfy({ !$0.isEmpty }) else {
            throw ConfigError("\(origin) must be token=team or token=team/project")
        }
        return Entry(
            id: id, token: Secret(token), team: String(scope[0]), project: scope.count == 2 ? String(scope[1]) : nil,
            origin: origin)
    }

    /// Refuses a token shorter than ``shortestToken``, naming where it was given, not it.
    static func checkLength(_ token: String, origin: String) throws(ConfigError) {
        guard token.utf8.count >= shortestToken else {
            throw ConfigError("\(origin): the token is shorter than \(shortestToken) characters")
        }
    }

    /// The entries as keys of the policy, hashed with `hasher`.
    func keys(hasher: KeyHasher) -> [KeyDocument] {
        entries.map { entry in
            KeyDocument(
                id: entry.id, hash: hasher.hash(entry.token.reveal()).encoded, team: entry.team, project: entry.project)
        }
    }

    /// Stands for the entries in the policy's version, so a reload sees a change to them:
    /// the keys as the policy holds them (ids, scopes, keyed hashes), never a token.
    static func fingerprint(_ keys: [KeyDocument]) -> String {
        keys.map { "\($0.id)=\($0.team)/\($0.project ?? "")#\($0.hash)" }.joined(separator: "\n")
    }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" || first == "\r" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" || last == "\r" { text.removeLast() }
        return String(text)
    }
}

/// 32 random bytes as hex: a key pepper for one process.
func randomPepper() -> String {
    var generator = SystemRandomNumberGenerator()
    let hex = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for _ in 0..<32 {
        let byte = UInt8.random(in: 0...255, using: &generator)
        out.append(hex[Int(byte >> 4)])
        out.append(hex[Int(byte & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}
