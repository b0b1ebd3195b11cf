/// Money in integer pico-dollars (1e-12 USD): exact for per-token prices, and a billion
/// tokens at $100 per million still fits comfortably in 64 bits.
public struct Cost: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var picoUSD: Int64

    public init(picoUSD: Int64) { self.picoUSD = picoUSD }

    public static let zero = Cost(picoUSD: 0)

    /// US dollars, for display and audit lines.
    public var usd: Double { Double(picoUSD) / 1e12 }

    public static func < (lhs: Cost, rhs: Cost) -> Bool { lhs.picoUSD < rhs.picoUSD }

    /// Adds, saturating rather than trapping on overflow.
    public static func + (lhs: Cost, rhs: Cost) -> Cost {
        let (sum, overflow) = lhs.picoUSD.addingReportingOverflow(rhs.picoUSD)
        return Cost(picoUSD: overflow ? .max : sum)
    }

    public var description: String { "$\(usd)" }
}

/// A price that cannot be right, caught when the catalog is loaded.
public struct PriceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Per-token prices of one model, as the LiteLLM `model_info` fields give them (USD):
/// `input_cost_per_token`, `output_cost_per_token`, and the rates providers bill apart,
/// `cache_read_input_token_cost` (prompt-cache reads), `cache_creation_input_token_cost`
/// (Anthropic's cache writes) and `output_cost_per_reasoning_token`. A rate not given is
/// the plain input or output rate: never cheaper than the invoice, so budgets hold.
public struct Price: Sendable, Hashable {
    public var inputPicoUSDPerToken: Int64
    public var outputPicoUSDPerToken: Int64
    public var cacheReadPicoUSDPerToken: Int64
    public var cacheCreationPicoUSDPerToken: Int64
    public var reasoningPicoUSDPerToken: Int64

    /// The dearest plausible per-token price. Anything above is almost surely a per-1M
    /// price typed into a per-token field, which would overcharge a million-fold.
    public static let maximumUSDPerToken = 0.01

    public init(
        inputPicoUSDPerToken: Int64, outputPicoUSDPerToken: Int64, cacheReadPicoUSDPerToken: Int64? = nil,
        cacheCreationPicoUSDPerToken: Int64? = nil, reasoningPicoUSDPerToken: Int64? = nil
    ) {
        self.inputPicoUSDPerToken = inputPicoUSDPerToken
        self.outputPicoUSDPerToken = outputPicoUSDPerToken
        self.cacheReadPicoUSDPerToken = cacheReadPicoUSDPerToken ?? inputPicoUSDPerToken
        self.cacheCreationPicoUSDPerToken = cacheCreationPicoUSDPerToken ?? inputPicoUSDPerToken
        self.reasoningPicoUSDPerToken = reasoningPicoUSDPerToken ?? outputPicoUSDPerToken
    }

    /// Validates and converts USD-per-token prices; the optional rates default as above.
    public init(
        inputUSDPerToken: Double, outputUSDPerToken: Double, cacheReadUSDPerToken: Double? = nil,
        cacheCreationUSDPerToken: Double? = nil, reasoningUSDPerToken: Double? = nil
    ) throws(PriceError) {
        func picos(_ name: String, _ value: Double?) throws(PriceError) -> Int64? {
            guard let value else { return nil }
            guard value.isFinite, value >= 0 else { throw PriceError(message: "\(name) must be a non-negative number") }
            guard value <= Self.maximumUSDPerToken else {
                throw PriceError(
                    message:
                        "\(name) is \(value) USD per token, above \(Self.maximumUSDPerToken): is it a per-1M-token"
                        + " price? As one it would be \(value / 1_000_000) USD per token"
                )
            }
            return Int64((value * 1e12).rounded())
        }
        self.init(
            inputPicoUSDPerToken: try picos("input_cost_per_token", inputUSDPerToken) ?? 0,
            outputPicoUSDPerToken: try picos("output_cost_per_token", outputUSDPerToken) ?? 0,
            cacheReadPicoUSDPerToken: try picos("cache_read_input_token_cost", cacheReadUSDPerToken),
            cacheCreationPicoUSDPerToken: try picos("cache_creation_input_token_cost", cacheCreationUSDPerToken),
            reasoningPicoUSDPerToken: try picos("output_cost_per_reasoning_token", reasoningUSDPerToken))
    }

    /// The cost of a call, saturating on absurd token counts instead of trapping.
    /// `cachedPromptTokens` and `cacheCreationTokens` are parts of `promptTokens`, and
    /// `reasoningTokens` part of `completionTokens`; each part is priced at its own rate
    /// and the rest at the plain rate. Parts larger than their whole are clamped to it.
    public func cost(
        promptTokens: Int, completionTokens: Int, cachedPromptTokens: Int = 0, cacheCreationTokens: Int = 0,
        reasoningTokens: Int = 0
    ) -> Cost {
        let prompt = max(0, promptTokens)
        let cached = min(max(0, cachedPromptTokens), prompt)
        let creation = min(max(0, cacheCreationTokens), prompt - cached)
        let completion = max(0, completionTokens)
        let reasoning = min(max(0, reasoningTokens), completion)
        // Written out rather than looped over an array: this runs twice per call.
        var total: Int64 = 0
        var overflow = false
        func add(_ tokens: Int, _ rate: Int64) {
            let (part, partOverflow) = Int64(tokens).multipliedReportingOverflow(by: rate)
            let (sum, sumOverflow) = total.addingReportingOverflow(part)
            overflow = overflow || partOverflow || sumOverflow
            total = sum
        }
        add(prompt - cached - creation, inputPicoUSDPerToken)
        add(cached, cacheReadPicoUSDPerToken)
        add(creation, cacheCreationPicoUSDPerToken)
        add(completion - reasoning, outputPicoUSDPerToken)
        add(reasoning, reasoningPicoUSDPerToken)
        return Cost(picoUSD: overflow ? .max : total)
    }
}

extension Cost {
    /// Converts a configured USD amount; nil for negative, non-finite or absurd (≥ $9M) values.
    public init?(usd: Double) {
        guard usd.isFinite, usd >= 0, usd < 9_000_000 else { return nil }
        self.init(picoUSD: Int64((usd * 1e12).rounded()))
    }

    /// Subtracts, saturating rather than trapping.
    public static func - (lhs: Cost, rhs: Cost) -> Cost {
        let (difference, overflow) = lhs.picoUSD.subtractingReportingOverflow(rhs.picoUSD)
        return Cost(picoUSD: overflow ? (rhs.picoUSD > 0 ? .min : .max) : difference)
    }
}
