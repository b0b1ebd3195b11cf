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
