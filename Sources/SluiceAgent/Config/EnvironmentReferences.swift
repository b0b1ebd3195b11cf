import Yams

/// LiteLLM's `os.environ/NAME`, read from the environment in every value the agent uses, as
/// LiteLLM does. A field the agent does not use is never read: a LiteLLM file naming
/// `REDIS_HOST` or `DATABASE_URL` still loads where those are unset. `api_key` is left for its
/// reader, which holds it by name so a deployment whose variable is unset is left out and
/// reported rather than refusing the whole file.
struct EnvironmentReferences {
    static let prefix = "os.environ/"
    /// The one field whose reference its reader keeps by name.
    static let heldByName = "api_key"
    let environment: [String: String]

    /// `node` with every reference replaced by its variable's value; an unset or empty
    /// variable is an error naming the field's path and the variable, never a value.
    func resolve(_ node: Node, at path: String = "") throws(ConfigError) -> Node {
        switch node {
        case .scalar(let scalar):
            guard scalar.string.hasPrefix(Self.prefix) else { return node }
            let name = String(scalar.string.dropFirst(Self.prefix.count))
            guard let value = environment[name], !value.isEmpty else {
                throw ConfigError("\(path) refers to the environment variable \(name), which is not set")
            }
            return .scalar(Node.Scalar(value, .implicit, scalar.style, scalar.mark, scalar.anchor))
        case .mapping(let mapping):
            var pairs: [(Node, Node)] = []
            for (key, value) in mapping {
                let name = key.string ?? "?"
                if name == Self.heldByName {
                    pairs.append((key, value))
                    continue
                }
                pairs.append((key, try resolve(value, at: path.isEmpty ? name : "\(path).\(name)")))
            }
            return .mapping(Node.Mapping(pairs, mapping.tag, mapping.style, mapping.mark, mapping.anchor))
        case .sequence(let sequence):
            var items: [Node] = []
            for (index, item) in sequence.enumerated() {
                items.append(try resolve(item, at: "\(path)[\(index)]"))
            }
            return .sequence(Node.Sequence(items, sequence.tag, sequence.style, sequence.mark, sequence.anchor))
        case .alias:
            return node
        }
    }

    /// `mapping` with the fields named in `used` resolved and the rest as they are.
    func resolve(_ mapping: Node.Mapping, used: Set<String>, at path: String) throws(ConfigError) -> Node.Mapping {
        var pairs: [(Node, Node)] = []
        for (key, value) in mapping {
            let name = key.string ?? "?"
            let read = used.contains(name) && name != Self.heldByName
            pairs.append((key, read ? try resolve(value, at: "\(path).\(name)") : value))
        }
        return Node.Mapping(pairs, mapping.tag, mapping.style, mapping.mark, mapping.anchor)
    }
}
