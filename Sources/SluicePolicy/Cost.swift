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

/// Per-token prices of one model, as the LiteLLM `model_info` fields give them
/// (`input_cost_per_token`, `output_cost_per_token`, in USD).
public struct Price: Sendable, Hashable {
    public var inputPicoUSDPerToken: Int64
    public var outputPicoUSDPerToken: Int64

    /// The dearest plausible per-token price. Anything above is almost surely a per-1M
    /// price typed into a per-token field, which would overcharge a million-fold.
    public static let maximumUSDPerToken = 0.01

    public init(inputPicoUSDPerToken: Int64, outputPicoUSDPerToken: Int64) {
        self.inputPicoUSDPerToken = inputPicoUSDPerToken
        self.outputPicoUSDPerToken = outputPicoUSDPerToken
    }

    /// Validates and converts USD-per-token prices.
    public init(inputUSDPerToken: Double, outputUSDPerToken: Double) throws(PriceError) {
        for (name, value) in [("input_cost_per_token", inputUSDPerToken), ("output_cost_per_token", outputUSDPerToken)]
        {
            guard value.isFinite, value >= 0 else { throw PriceError(message: "\(name) must be a non-negative number") }
            guard value <= Self.maximumUSDPerToken else {
                throw PriceError(
                    message:
                        "\(name) is \(value) USD per token,"
                            + " above \(Self.maximumUSDPerToken): is it a per-1M-token price?"
                )
            }
        }
        self.inputPicoUSDPerToken = Int64((inputUSDPerToken * 1e12).rounded())
        self.outputPicoUSDPerToken = Int64((outputUSDPerToken * 1e12).rounded())
    }

    /// The cost of a call, saturating on absurd token counts instead of trapping.
    public func cost(promptTokens: Int, completionTokens: Int) -> Cost {
        let (input, overflow1) = Int64(max(0, promptTokens)).multipliedReportingOverflow(by: inputPicoUSDPerToken)
        let (output, overflow2) = Int64(max(0, completionTokens)).multipliedReportingOverflow(by: outputPicoUSDPerToken)
        if overflow1 || overflow2 { return Cost(picoUSD: .max) }
        return Cost(picoUSD: input) + Cost(picoUSD: output)
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
