/// The wire dialect a deployment speaks.
public enum ProviderDialect: String, Sendable, Hashable {
    /// OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq…).
    case openAI = "openai"
    /// Anthropic's Messages API (`x-api-key`, `anthropic-version`); calls are translated.
    case anthropic = "anthropic"
    /// Azure OpenAI: the OpenAI wire format at a deployment URL, with `api-version` and an
    /// `api-key` header.
    case azure = "azure"
    /// Google's Gemini API (`generateContent`, `x-goog-api-key`); calls are translated.
    case gemini = "gemini"

    /// The API base a deployment of this dialect uses when the configuration names none
    /// (nil: it must be given, as every Azure resource has its own).
    public var defaultAPIBase: String? {
        switch self {
        case .openAI: "https://api.openai.com/v1"
        case .anthropic: "https://api.anthropic.com/v1"
        case .azure: nil
        case .gemini: "https://generativelanguage.googleapis.com/v1beta"
        }
    }

    /// The Azure OpenAI API version used when a deployment names none.
    public static let defaultAzureAPIVersion = "2024-10-21"
    /// The first Azure OpenAI API version with the Responses API.
    public static let firstAzureResponsesAPIVersion = "2025-03-01-preview"
}

/// Where a deployment lives: `https://host:port/base` (HTTP/2 over TLS, HTTP/1.1 by ALPN)
/// or `http://host:port/base` (h2c with prior knowledge, HTTP/1.1 fallback).
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// `https` (TLS) or `http` (cleartext, for upstreams on loopback or inside a mesh).
    public enum Scheme: String, Sendable { case https, http }
    public let scheme: Scheme
    public let host: String
    public let port: Int
    /// Path prefix every call goes below, without a trailing slash (`/v1`).
    public let basePath: String
    /// The URL as text, made once: every audit line names the deployment.
    public let description: String

    public init(scheme: Scheme, host: String, port: Int, basePath: String) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.basePath = basePath
        let defaultPort = scheme == .https ? 443 : 80
        let hostPart = host.contains(":") ? "[\(host)]" : host
        description = "\(scheme.rawValue)://\(hostPart)\(port == defaultPort ? "" : ":\(port)")\(basePath)"
    }

    /// Parses an absolute `http(s)://` URL. No user info, query or fragment is accepted:
    /// nothing else may ride along into the upstream request.
    public init(parsing url: String, field: String = "api_base") throws(CatalogError) {
        let lowered = url.lowercased()
        let scheme: Scheme
        let rest: Substring
        if lowered.hasPrefix("https://") {
            scheme = .https
            rest = url.dropFirst(8)
        } else if lowered.hasPrefix("http://") {
            scheme = .http
            rest = url.dropFirst(7)
        } else {
            throw CatalogError("\(field) \"\(url)\" must start with https:// or http://")
        }
        guard !rest.contains("@"), !rest.contains("?"), !rest.contains("#"),
            !rest.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 } ?? false })
        else {
            throw CatalogError("\(field) \"\(url)\" may not carry user info, a query, a fragment or whitespace")
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[rest.startIndex..<slash]
        var path = String(rest[slash...])
        while path.hasSuffix("/") { path.removeLast() }
        var host: Substring
        var port = scheme == .https ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw CatalogError("\(field) \"\(url)\" has a malformed IPv6 address")
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let parsed = Int(after.dropFirst()), (1...65535).contains(parsed) else {
                    throw CatalogError("\(field) \"\(url)\" has an invalid port")
                }
                port = parsed
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[authority.startIndex..<colon]
            guard let parsed = Int(authority[authority.index(after: colon)...]), (1...65535).contains(parsed) else {
                throw CatalogError("\(field) \"\(url)\" has an invalid port")
            }
            port = parsed
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw CatalogError("\(field) \"\(url)\" has no host") }
        self.init(scheme: scheme, host: String(host), port: port, basePath: path)
    }

}

/// One concrete place an alias can be served from.
public struct Deployment: Sendable, Hashable {
    public var alias: String { didSet { rekey() } }
    public var dialect: ProviderDialect { didSet { rekey() } }
    /// The model name the provider knows.
    public var upstreamModel: String { didSet { rekey() } }
    public var endpoint: Endpoint { didSet { rekey() } }
    /// Names this deployment's routing state; kept in step with the four fields it is made
    /// of, so that a call does not rebuild it.
    public private(set) var key: DeploymentKey
    public var credential: Secret
    /// A PEM CA bundle to trust instead of the system store (LiteLLM's `ssl_verify: <path>`).
    public var caFile: String?
    public var weight: Int
    public var requestsPerMinute: Int?
    public var tokensPerMinute: Int?
    /// Longest wait for the provider's first byte, when set for this deployment.
    public var timeoutSeconds: Double?
    /// Azure OpenAI's `api-version` (letters, digits, `-` and `.` only).
    public var apiVersion: String?

    public init(
        alias: String, dialect: ProviderDialect, upstreamModel: String, endpoint: Endpoint, credential: Secret,
        caFile: String? = nil, weight: Int = 1, requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil,
        timeoutSeconds: Double? = nil, apiVersion: String? = nil
    ) {
        self.apiVersion = apiVersion
        self.alias = alias
        self.dialect = dialect
        self.upstreamModel = upstreamModel
        self.endpoint = endpoint
        self.credential = credential
        self.caFile = caFile
        self.weight = weight
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.timeoutSeconds = timeoutSeconds
        key = DeploymentKey(alias: alias, dialect: dialect, endpoint: endpoint, upstreamModel: upstreamModel)
    }

    private mutating func rekey() {
        key = DeploymentKey(alias: alias, dialect: dialect, endpoint: endpoint, upstreamModel: upstreamModel)
    }
}

/// A name callers use, and the deployments behind it.
public struct ModelAlias: Sendable, Hashable {
    public var name: String
    public var deployments: [Deployment]
    /// Nil when the catalog has no price for it: such calls are flagged, never counted as $0.
    public var price: Price?
    /// The longest answer the model can give (`model_info.max_output_tokens`): what a call
    /// without `max_tokens` reserves.
    public var maxOutputTokens: Int?

    public init(name: String, deployments: [Deployment], price: Price?, maxOutputTokens: Int? = nil) {
        self.name = name
        self.deployments = deployments
        self.price = price
        self.maxOutputTokens = maxOutputTokens
    }

    /// Picks a deployment by weight from a caller-supplied number in `0..<totalWeight`,
    /// so the choice is testable without a random source.
    public func deployment(forRoll roll: Int) -> Deployment {
        var remaining = roll
        for deployment in deployments {
            if remaining < deployment.weight { return deployment }
            remaining -= deployment.weight
        }
        return deployments[deployments.count - 1]
    }

    public var totalWeight: Int { deployments.reduce(0) { $0 + $1.weight } }
}

/// Why a catalog could not be built.
public struct CatalogError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Every alias callers may name, in configuration order.
public struct Catalog: Sendable {
    public private(set) var aliases: [String: ModelAlias] = [:]
    public private(set) var names: [String] = []
    /// Strategy, retries, fallbacks and cooldowns for every alias.
    public var router: RouterSettings
    /// Other names callers may use for an alias (LiteLLM's `model_group_alias`): a call for
    /// the name is served, checked and counted as the alias.
    public var groupAliases: [String: String] = [:]
    /// Group alias names `/v1/models` leaves out (LiteLLM's `hidden: true`); calls still work.
    public var hiddenGroupAliases: Set<String> = []
    /// Aliases this agent cannot serve at all because every deployment's credential is
    /// missing here, with the first missing credential reference: calls to them are refused
    /// with 503 `credential_unavailable` rather than 404, and the rest of the policy holds.
    public var unavailableAliases: [String: String] = [:]
    /// Credential references the catalog names that are not set on this agent, sorted: the
    /// deployments using them are left out of routing; `/readyz` and a metric show them.
    public var missingCredentials: [String] = []

    /// Wildcard aliases (`openai/*`), longest first: each serves every name below it that
    /// no exact alias takes.
    public private(set) var wildcards: [ModelAlias] = []

    public init(_ aliases: [ModelAlias], router: RouterSettings = RouterSettings()) {
        self.router = router
        for alias in aliases {
            if Identifier.isWildcardAlias(alias.name) {
                wildcards.append(alias)
                continue
            }
            if self.aliases[alias.name] == nil { names.append(alias.name) }
            self.aliases[alias.name] = alias
        }
        wildcards.sort { $0.name.utf8.count > $1.name.utf8.count }
    }

    /// Exact match first (no case folding, no path games); otherwise the longest wildcard
    /// alias whose prefix the name extends, its deployments serving the rest of the name
    /// (`openai/gpt-4o` under `openai/*` with `model: openai/*` asks the provider for
    /// `gpt-4o`). A name a wildcard deployment cannot put in its URL is not served.
    public func alias(named name: String) -> ModelAlias? {
        if let exact = aliases[name] { return exact }
        guard !wildcards.isEmpty, let template = wildcard(for: name) else { return nil }
        let rest = name.dropFirst(template.name.count - 1)
        guard rest.utf8.count <= 200,
            rest.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "?" && $0 != "#" })
        else { return nil }
        let deployments = template.deployments.compactMap { deployment -> Deployment? in
            var served = deployment
            served.alias = name
            if served.upstreamModel.hasSuffix("*") {
                served.upstreamModel = String(served.upstreamModel.dropLast()) + rest
            }
            // Azure and Gemini put the model in the URL's path: only plain names go there.
            if served.dialect == .azure || served.dialect == .gemini,
                !Deployment.isURLSafeName(served.upstreamModel)
            {
                return nil
            }
            return served
        }
        guard !deployments.isEmpty else { return nil }
        return ModelAlias(
            name: name, deployments: deployments, price: template.price, maxOutputTokens: template.maxOutputTokens)
    }

    /// The wildcard alias that stands for `name`, if one does and no exact alias takes it.
    public func wildcard(for name: String) -> ModelAlias? {
        guard aliases[name] == nil else { return nil }
        return wildcards.first { Identifier.wildcard($0.name, covers: name) }
    }

    /// The alias a requested name stands for: itself, or what `model_group_alias` maps it to.
    public func canonicalName(_ name: String) -> String { groupAliases[name] ?? name }
}

extension Deployment {
    /// Whether a name (an Azure deployment, a Gemini model) may go into a URL's path as it is.
    public static func isURLSafeName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 200
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-._+=".contains($0)) }
    }

    /// Whether `name` can be an environment variable holding a credential: it is looked up on
    /// every agent, so it must be a plain name, never a path or an expression.
    public static func isCredentialReference(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 128, first == UInt8(ascii: "_") || isASCIILetter(first)
        else { return false }
        return name.utf8.allSatisfy {
            $0 == UInt8(ascii: "_") || isASCIILetter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
        }
    }

    private static func isASCIILetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    /// Whether `version` may go into a URL's query as it is.
    public static func isValidAPIVersion(_ version: String) -> Bool {
        !version.isEmpty && version.count <= 40
            && version.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }
    }
}
