import SluicePolicy
import SluiceWire
import Yams

/// What a LiteLLM file's `general_settings` and `litellm_settings` say that the agent
/// honours beyond retries and fallbacks: the proxy's master key, which LiteLLM requires of
/// every caller once it is set, and the proxy-wide budget (`max_budget` with
/// `budget_duration`).
struct LiteLLMProxySettings {
    /// `general_settings.master_key` (its `os.environ/NAME` read by the loader, as in every value).
    var masterKey: Secret?
    var maxBudget: Double?
    var budgetDuration: String?

    /// The id the master key's policy key carries in audit lines and errors.
    static let masterKeyID = "master-key"
    /// The team the master key is counted under, created without limits where missing.
    static let masterKeyTeam = "default"

    /// Takes `section.name` when it is a field read here; false leaves it to the caller,
    /// which names it as not supported.
    mutating func read(
        _ name: String, in section: String, _ value: () throws(ConfigError) -> Node, warnings: inout [String]
    ) throws(ConfigError) -> Bool {
        let at = "\(section).\(name)"
        switch (section, name) {
        case ("general_settings", "master_key"):
            let key = try text(try value(), at: at)
            // LiteLLM's own examples use `sk-1234`: honoured, since ignoring it would serve
            // every caller without a key, but named as guessable.
            if key.utf8.count < StaticKeys.shortestToken {
                warnings.append(
                    "\(at) is shorter than \(StaticKeys.shortestToken) characters and could be guessed;"
                        + " use a longer one")
            }
            masterKey = Secret(key)
        case ("litellm_settings", "max_budget"):
            let text = try text(try value(), at: at)
            guard let budget = Double(text), budget.isFinite, budget >= 0 else {
                throw ConfigError("\(at) must be a number of US dollars, 0 or more")
            }
            maxBudget = budget
        case ("litellm_settings", "budget_duration"):
            budgetDuration = try text(try value(), at: at)
        default:
            return false
        }
        return true
    }

    /// The master key as the first static token, a key of team `default`.
    func addMasterKey(to staticKeys: inout StaticKeys) {
        guard let masterKey else { return }
        staticKeys.entries.insert(
            StaticKeys.Entry(
                id: Self.masterKeyID, token: masterKey, team: Self.masterKeyTeam, project: nil,
                origin: "general_settings.master_key"),
            at: 0)
    }

    /// The proxy-wide budget on every service entry the agent may serve under, `*` added
    /// where missing; an entry's own tighter budget stays. The service's slot counts keyed
    /// and keyless calls alike, so this is the budget of everything this agent serves.
    func applyBudget(to document: inout PolicyDocument) throws(ConfigError) {
        guard let budget = try budgetLimits() else { return }
        if !document.services.contains(where: { $0.name == "*" }) {
            document.services.append(ServiceDocument(name: "*", keyless: false))
        }
        for index in document.services.indices {
            var limits = document.services[index].limits ?? LimitsDocument()
            limits.dailySpendUSD = Self.tighter(limits.dailySpendUSD, budget.dailySpendUSD)
            limits.monthlySpendUSD = Self.tighter(limits.monthlySpendUSD, budget.monthlySpendUSD)
            document.services[index].limits = limits
        }
    }

    /// Makes sure the master key's team exists in a file that declares its own teams.
    static func addMasterKeyTeam(to document: inout PolicyDocument) {
        guard !document.teams.contains(where: { $0.name == masterKeyTeam }) else { return }
        document.teams.append(TeamDocument(name: masterKeyTeam))
    }

    private func budgetLimits() throws(ConfigError) -> LimitsDocument? {
        guard let maxBudget else {
            if budgetDuration != nil {
                throw ConfigError("litellm_settings.budget_duration is set without litellm_settings.max_budget")
            }
            return nil
        }
        do throws(WireError) {
            return try LiteLLMBudget.limits(maxBudget, duration: budgetDuration)
        } catch {
            throw ConfigError("litellm_settings.\(error.message)")
        }
    }

    private static func tighter(_ current: Double?, _ added: Double?) -> Double? {
        guard let added else { return current }
        return current.map { min($0, added) } ?? added
    }

    private func text(_ node: Node, at path: String) throws(ConfigError) -> String {
        guard let text = node.scalar?.string, !text.isEmpty else { throw ConfigError("\(path) must be a value") }
        return text
    }
}
