import SluicePolicy
import Testing

@Suite("Prices, cost and endpoints")
struct CatalogTests {
    @Test("computes cost exactly in pico-dollars")
    func cost() throws {
        let price = try Price(inputUSDPerToken: 0.0000025, outputUSDPerToken: 0.00001)
        #expect(price.inputPicoUSDPerToken == 2_500_000)
        let cost = price.cost(promptTokens: 1000, completionTokens: 500)
        #expect(cost.picoUSD == 2_500_000_000 + 5_000_000_000)
        #expect(abs(cost.usd - 0.0075) < 1e-15)
    }

    @Test("saturates instead of overflowing")
    func saturates() throws {
        let price = try Price(inputUSDPerToken: 0.01, outputUSDPerToken: 0.01)
        #expect(price.cost(promptTokens: Int.max, completionTokens: 1).picoUSD == .max)
        #expect(price.cost(promptTokens: -5, completionTokens: 0) == .zero)
    }

    @Test("refuses impossible prices", arguments: [-1e-6, .nan, .infinity, 2.5])
    func refusesPrices(value: Double) {
        #expect(throws: PriceError.self) { try Price(inputUSDPerToken: value, outputUSDPerToken: 0) }
    }

    @Test("prices cache reads, cache writes and reasoning at their own rates, the rest at the plain ones")
    func partsPricedApart() throws {
        let price = try Price(
            inputUSDPerToken: 0.000003, outputUSDPerToken: 0.000015, cacheReadUSDPerToken: 0.0000003,
            cacheCreationUSDPerToken: 0.00000375, reasoningUSDPerToken: 0.00002)
        // 1,000 in (600 read, 200 written, 200 plain); 50 out (30 reasoning, 20 plain).
        let cost = price.cost(
            promptTokens: 1000, completionTokens: 50, cachedPromptTokens: 600, cacheCreationTokens: 200,
            reasoningTokens: 30)
        #expect(cost.picoUSD == 200 * 3_000_000 + 600 * 300_000 + 200 * 3_750_000 + 20 * 15_000_000 + 30 * 20_000_000)
        #expect(abs(cost.usd - 0.00243) < 1e-12)
    }

    @Test("a rate not given is the plain rate: never cheaper than the invoice")
    func defaultsToPlainRates() throws {
        let price = try Price(inputUSDPerToken: 0.000001, outputUSDPerToken: 0.000002)
        #expect(price.cacheReadPicoUSDPerToken == 1_000_000 && price.cacheCreationPicoUSDPerToken == 1_000_000)
        #expect(price.reasoningPicoUSDPerToken == 2_000_000)
        #expect(
            price.cost(promptTokens: 100, completionTokens: 10, cachedPromptTokens: 60, reasoningTokens: 5)
                == price.cost(promptTokens: 100, completionTokens: 10))
    }

    @Test("parts larger than their whole are clamped, so a garbled report cannot price tokens never used")
    func partsClamped() throws {
        let price = try Price(
            inputUSDPerToken: 0.000001, outputUSDPerToken: 0.000002, cacheReadUSDPerToken: 0.000005,
            cacheCreationUSDPerToken: 0.000007, reasoningUSDPerToken: 0.000009)
        // 10 prompt tokens "with" 50 cached and 50 written: 10 cached, 0 written, 0 plain.
        #expect(
            price.cost(promptTokens: 10, completionTokens: 0, cachedPromptTokens: 50, cacheCreationTokens: 50)
                .picoUSD == 10 * 5_000_000)
        #expect(price.cost(promptTokens: 0, completionTokens: 4, reasoningTokens: 9).picoUSD == 4 * 9_000_000)
        #expect(price.cost(promptTokens: 5, completionTokens: 0, cachedPromptTokens: -3).picoUSD == 5 * 1_000_000)
        #expect(price.cost(promptTokens: Int.max, completionTokens: 0, cachedPromptTokens: 1).picoUSD == .max)
    }

    @Test("a per-1M figure in a per-token field is refused, naming the field and what it would have meant")
    func perMillionRefused() {
        do {
            _ = try Price(inputUSDPerToken: 0.000003, outputUSDPerToken: 0.000015, cacheReadUSDPerToken: 0.3)
            Issue.record("a cache read price of $0.30 per token was accepted")
        } catch {
            #expect(error.message.contains("cache_read_input_token_cost is 0.3 USD per token"))
            #expect(error.message.contains("3e-07 USD per token"))
        }
    }

    @Test("parses api_base URLs")
    func endpoints() throws {
        let openAI = try Endpoint(parsing: "https://api.openai.com/v1/")
        #expect(openAI == Endpoint(scheme: .https, host: "api.openai.com", port: 443, basePath: "/v1"))
        #expect(
            try Endpoint(parsing: "http://127.0.0.1:8000")
                == Endpoint(scheme: .http, host: "127.0.0.1", port: 8000, basePath: ""))
        #expect(
            try Endpoint(parsing: "https://[::1]:8443/v1")
                == Endpoint(scheme: .https, host: "::1", port: 8443, basePath: "/v1"))
        #expect(try Endpoint(parsing: "HTTPS://Example.com:443/openai").description == "https://Example.com/openai")
        for bad in [
            "ftp://x", "https://", "https://user:pw@host", "https://h/?q=1", "https://h:99999", "https://h/a b",
            "api.openai.com",
        ] {
            #expect(throws: CatalogError.self, "\(bad)") { try Endpoint(parsing: bad) }
        }
    }

    @Test("picks deployments by weight")
    func weights() throws {
        let endpoint = try Endpoint(parsing: "https://a")
        let a = Deployment(
            alias: "m", dialect: .openAI, upstreamModel: "a", endpoint: endpoint, credential: Secret(""), weight: 3)
        let b = Deployment(
            alias: "m", dialect: .openAI, upstreamModel: "b", endpoint: endpoint, credential: Secret(""), weight: 1)
        let alias = ModelAlias(name: "m", deployments: [a, b], price: nil)
        #expect(alias.totalWeight == 4)
        #expect((0..<4).map { alias.deployment(forRoll: $0).upstreamModel } == ["a", "a", "a", "b"])
    }

    @Test("never prints a secret")
    func secrets() {
        let secret = Secret("sk-live-123")
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
        #expect(secret.reveal() == "sk-live-123")
    }
}
