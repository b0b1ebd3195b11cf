import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceAPI
import SluiceHTTP2
import SluicePolicy
import Testing

@testable import SluiceAgent

/// The one place a call ends, as values: a real runtime and policy, no sockets (nothing is
/// forwarded). A key allowed one call per minute shows where its reservation went.
@Suite("Account: every admitted call is settled exactly once")
struct AccountTests {
    static let pepper = "account-test-pepper-0123456789"
    static let key = "sk-sluice-AccountKey000000000000000000000"

    static func runtime(audit: MemoryAuditSink, group: any EventLoopGroup) throws -> AgentRuntime {
        let hash = KeyHasher(pepper: Secret(pepper)).hash(key).encoded
        let configuration = try ConfigLoader(environment: [:]).load(
            yaml: """
                model_list:
                  - model_name: gpt-test
                    litellm_params: {model: openai/mock, api_base: "https://127.0.0.1:9/v1", api_key: sk-test-0123}
                    model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
                sluice_policy:
                  key_pepper: \(pepper)
                  teams: {ml: {}}
                  keys:
                    - id: one-a-minute
                      hash: \(hash)
                      team: ml
                      limits: {requests_per_minute: 1}
                """)
        return try AgentRuntime(
            configuration: configuration, identity: ServiceIdentity(service: "checkout", namespace: "shop", pod: "p"),
            upstream: UpstreamClient(group: group), audit: audit)
    }

    static func admit(_ runtime: AgentRuntime) -> Result<Authorize.Permit, Authorize.Refusal> {
        var headers = HTTPHeaders()
        headers.add(name: "authorization", value: "Bearer \(key)")
        let body = Array(#"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#.utf8)
        return Authorize.check(endpoint: .chatCompletions, headers: headers, body: body, runtime: runtime)
    }

    static func account(_ runtime: AgentRuntime) -> Account {
        Account(
            runtime: runtime, requestID: "r", method: "POST", path: "/v1/chat/completions", startedAt: .now(),
            startedAtWall: runtime.now())
    }

    static func counter(_ name: String, in runtime: AgentRuntime) -> String? {
        runtime.metrics.registry.emitToString().split(separator: "\n").first { $0.hasPrefix(name) }.map(String.init)
    }

    @Test("an account released with its call unsettled gives the reservation back and is counted")
    func missedSettlement() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let runtime = try Self.runtime(audit: MemoryAuditSink(), group: group)
        do {
            let account = Self.account(runtime)
            account.admit(try Self.admit(runtime).get())
            // The one call a minute is reserved: a second is refused while it is held.
            guard case .failure(let refusal) = Self.admit(runtime) else {
                Issue.record("a second call was admitted under a limit of one")
                return
            }
            #expect(refusal.error.status == 429)
        }
        // The account is gone without a settlement: the reservation came back.
        #expect(Self.counter("sluice_calls_unsettled_total", in: runtime)?.hasSuffix(" 1") == true)
        #expect((try? Self.admit(runtime).get()) != nil)
    }

    @Test("a second settlement is ignored and counted: one audit line, one charge")
    func settledTwice() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let audit = MemoryAuditSink()
        let runtime = try Self.runtime(audit: audit, group: group)
        let account = Self.account(runtime)
        account.admit(try Self.admit(runtime).get())
        let usage = TokenUsage(promptTokens: 10, completionTokens: 5)
        account.settle(CallOutcome(status: 200, usage: usage))
        account.settle(CallOutcome(status: 200, usage: usage))
        #expect(audit.all.count == 1)
        #expect(Self.counter("sluice_calls_settled_twice_total", in: runtime)?.hasSuffix(" 1") == true)
        #expect(Self.counter("sluice_calls_unsettled_total", in: runtime) == nil)
        // Settled, not released: the minute's one call is used.
        guard case .failure(let refusal) = Self.admit(runtime) else {
            Issue.record("the settled call's slot was given back")
            return
        }
        #expect(refusal.error.status == 429)
    }

    @Test("a call refused before admission is audited once and reserves nothing")
    func refusedCall() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let audit = MemoryAuditSink()
        let runtime = try Self.runtime(audit: audit, group: group)
        do {
            let account = Self.account(runtime)
            account.settle(CallOutcome(status: 400, errorCode: "invalid_json"))
        }
        #expect(audit.all.count == 1 && audit.all[0].contains("invalid_json"))
        #expect(Self.counter("sluice_calls_unsettled_total", in: runtime) == nil)
        #expect((try? Self.admit(runtime).get()) != nil)
    }
}
