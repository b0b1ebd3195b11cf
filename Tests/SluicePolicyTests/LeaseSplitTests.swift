import SluicePolicy
import Testing

@Suite("Leases: splitting a fleet-wide limit among agents")
struct LeaseSplitTests {
    func claims(_ demands: [Double]) -> [LeaseSplit.Claim] {
        demands.enumerated().map { LeaseSplit.Claim(agent: "agent-\($0.offset)", demand: $0.element) }
    }

    @Test("shares always add up to exactly the capacity, whatever the demand")
    func sumsToCapacity() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let capacity = Int.random(in: 0...100_000, using: &generator)
            let demands = (0..<Int.random(in: 1...60, using: &generator)).map { _ in
                Double.random(in: 0...20_000, using: &generator)
            }
            let shares = LeaseSplit.split(
                capacity: capacity, claims: claims(demands), minimumPercent: Int.random(in: 0...100, using: &generator))
            #expect(shares.values.reduce(0, +) == capacity)
            #expect(shares.values.allSatisfy { $0 >= 0 })
            #expect(shares.count == demands.count)
        }
    }

    @Test("over-subscribed: a floor for everyone, the rest in proportion to demand beyond it")
    func proportional() {
        // 1000/min, 4 agents, floor 50% of an even split = 125 each; 500 left for the need beyond.
        let shares = LeaseSplit.split(capacity: 1000, claims: claims([125, 325, 525, 1125]), minimumPercent: 50)
        // Needs beyond the floor: 0, 200, 400, 1000 (1600 in all) share the 500 left.
        #expect(shares == ["agent-0": 125, "agent-1": 188, "agent-2": 250, "agent-3": 437])
    }

    @Test("under-subscribed: every agent gets its demand, and the spare is split evenly")
    func spare() {
        let shares = LeaseSplit.split(capacity: 1000, claims: claims([100, 200, 0]), minimumPercent: 50)
        // Floors: 125 (demand plus a quarter), 166.7 (the full floor), 16.7 (a tenth of it,
        // for the idle one); agent-1 needs 33.3 more; the other 658.3 are split evenly.
        #expect(shares == ["agent-0": 345, "agent-1": 419, "agent-2": 236])
    }

    @Test("a quiet agent beside a busy one gets its demand with headroom, not a floor it would leave unused")
    func quietAgentNotStarved() {
        let shares = LeaseSplit.split(capacity: 600, claims: claims([100, 100_000]), minimumPercent: 50)
        #expect(shares["agent-0"]! == 125 && shares["agent-1"]! == 475)
        // Idle, it keeps a tenth of the floor for its next calls.
        let idle = LeaseSplit.split(capacity: 600, claims: claims([0, 100_000]), minimumPercent: 50)
        #expect(idle["agent-0"]! == 15)
        let noFloor = LeaseSplit.split(capacity: 600, claims: claims([10, 100_000]), minimumPercent: 0)
        #expect(noFloor["agent-0"]! == 0 && noFloor["agent-1"]! == 600)
    }

    @Test("fewer units than agents: whole units go to the largest remainders, repeatably")
    func fewerUnitsThanAgents() {
        let first = LeaseSplit.split(capacity: 3, claims: claims(Array(repeating: 10, count: 8)), minimumPercent: 100)
        #expect(first.values.reduce(0, +) == 3 && first.values.allSatisfy { $0 <= 1 })
        #expect(
            LeaseSplit.split(capacity: 3, claims: claims(Array(repeating: 10, count: 8)), minimumPercent: 100) == first)
        #expect(
            LeaseSplit.split(capacity: 0, claims: claims([5, 5]), minimumPercent: 50) == ["agent-0": 0, "agent-1": 0])
        #expect(LeaseSplit.split(capacity: 100, claims: [], minimumPercent: 50).isEmpty)
    }

    @Test("the fallback without a lease: a fraction (at least 1 a minute), zero, or no limit; a held share or cap wins")
    func fallback() {
        let limits = Limits(
            requestsPerMinute: 600, tokensPerMinute: 90_000, requestsPerDay: 5, dailySpend: Cost(picoUSD: 1_000))
        #expect(
            FleetLimits.local(limits, shares: .init(), fallback: .fraction(0.1))
                == Limits(
                    requestsPerMinute: 60, tokensPerMinute: 9_000, requestsPerDay: 5, dailySpend: Cost(picoUSD: 100)))
        #expect(
            FleetLimits.local(
                limits, shares: .init(requestsPerMinute: 200, dailySpendCap: Cost(picoUSD: 700)), fallback: .zero)
                == Limits(requestsPerMinute: 200, tokensPerMinute: 0, requestsPerDay: 5, dailySpend: Cost(picoUSD: 700))
        )
        #expect(FleetLimits.local(limits, shares: .init(), fallback: .unlimited) == Limits(requestsPerDay: 5))
        #expect(LeaseFallback.fraction(0.001).capacity(forLimit: 10) == 1)
    }

    @Test("spend-sized capacities beyond 2^53 still split into shares that never exceed them")
    func hugeCapacities() {
        let capacity = 9_000_000_000_000_000_007
        let shares = LeaseSplit.split(capacity: capacity, claims: claims([3e15, 7e15, 1, 0]), minimumPercent: 50)
        #expect(shares.values.reduce(0, +) == capacity)
    }

    @Test(
        "an agent with a share of 0 refuses without a retry time it cannot keep, and counts the demand it turned away"
    )
    func zeroShare() throws {
        let limiter = Limiter()
        let team = Scope(.team, "ml")
        var slots = ScopeSlots()
        slots[.team] = limiter.bind(team, limits: Limits(requestsPerMinute: 0))
        for _ in 0..<3 {
            let result = limiter.reserve(
                slots, demand: Demand(tokens: 7, cost: .zero), now: 1_000_000_000, dayNumber: 0, monthNumber: 0,
                nextDayStart: 86_400_000_000_000, nextMonthStart: 86_400_000_000_000)
            guard case .failure(let denial) = result else {
                Issue.record("admitted under a share of 0")
                return
            }
            #expect(denial.retryAfterSeconds == nil)
        }
        let demand = limiter.takeDemand(kinds: [.team])
        #expect(demand.count == 1 && demand[0].scope == team && demand[0].requests == 3 && demand[0].tokens == 21)
        #expect(limiter.takeDemand(kinds: [.team]).isEmpty)
    }

    @Test(
        "without a lease, rates fall back to an even share among active agents and this one; budgets keep the fraction"
    )
    func fairShare() {
        #expect(LeaseFallback.fraction(0.1).fairShare(amongActiveAgents: 0) == .fraction(1))
        #expect(LeaseFallback.fraction(0.1).fairShare(amongActiveAgents: 3) == .fraction(0.25))
        #expect(LeaseFallback.fraction(0.1).fairShare(amongActiveAgents: nil) == .fraction(0.1))
        #expect(LeaseFallback.zero.fairShare(amongActiveAgents: 3) == .zero)
        #expect(LeaseFallback.unlimited.fairShare(amongActiveAgents: 0) == .unlimited)
        let limits = Limits(requestsPerMinute: 600, dailySpend: Cost(picoUSD: 1_000))
        let local = FleetLimits.local(
            limits, shares: .init(), fallback: .fraction(0.1),
            rateFallback: LeaseFallback.fraction(0.1).fairShare(amongActiveAgents: 1))
        #expect(local == Limits(requestsPerMinute: 300, dailySpend: Cost(picoUSD: 100)))
    }

    @Test("a refusal under a leased share says it is this agent's share, with the fleet-wide limit")
    func shareInRefusal() throws {
        let limiter = Limiter()
        var slots = ScopeSlots()
        slots[.team] = limiter.bind(
            Scope(.team, "ml"), limits: Limits(requestsPerMinute: 1), fleet: Limits(requestsPerMinute: 600))
        func reserve() -> Result<Reservation, Denial> {
            limiter.reserve(
                slots, demand: Demand(tokens: 1, cost: .zero), now: 1_000_000_000, dayNumber: 0, monthNumber: 0,
                nextDayStart: 86_400_000_000_000, nextMonthStart: 86_400_000_000_000)
        }
        _ = reserve()
        guard case .failure(let denial) = reserve() else {
            Issue.record("admitted beyond the share")
            return
        }
        #expect(denial.message.contains("allows 1 requests per minute (this agent's share of a fleet-wide 600)"))
    }
}
