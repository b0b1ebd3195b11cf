import SluicePolicy
import Testing

@Suite("Leases: splitting a fleet-wide limit among agents")
struct LeaseSplitTests {
    func claims(_ demands: [Double]) -> [LeaseSplit.Claim] {
        demands.enumerated().map { LeaseSplit.Claim(agent: "agent-\($0.offset)", demand: $0.element) }
    }

    @Test("shares always add up to exactly the capacity, whatever the demand")
    func sumsToCapacity() async {
        var generator = SystemRandomNumberGenerator()
        for round in 0..<2_000 {
            // Seconds of work in a debug build: let the suite's other tests (agents and
            // control planes sharing this process's two threads) run between rounds.
            if round % 50 == 0 { await Task.yield() }
            let capacity = Int.random(in: 0...100_000, using: &generator)
            let demands = (0..<Int.random(in: 1...60, using: &generator)).map { _ in
                Double.random(in: 0...20_000, using: &generator)
            }
            let minimum = Int.random(in: 0...100, using: &generator)
            let held = demands.map { _ in Bool.random(using: &generator) ? nil : Double.random(in: 0...5_000) }
            let claims = zip(claims(demands), held).map {
                LeaseSplit.Claim(agent: $0.agent, demand: $0.demand, held: $1)
            }
            for shares in [
                LeaseSplit.rate(capacity: capacity, claims: claims, minimumPercent: minimum),
                LeaseSplit.quota(capacity: capacity, claims: claims, minimumPercent: minimum),
            ] {
                #expect(shares.values.reduce(0, +) == capacity)
                #expect(shares.values.allSatisfy { $0 >= 0 })
                #expect(shares.count == demands.count)
            }
        }
    }

    @Test("over-subscribed: an agent wanting less than an even split gets all it wants; the rest is split evenly")
    func maxMinFair() {
        // 1000/min, 4 agents wanting demand plus a quarter: 156.25, 406.25, 656.25, 1406.25.
        // The first wants less than 250 and gets it; 843.75 is left for three, 281.25 each,
        // less than any of them wants.
        let shares = LeaseSplit.rate(capacity: 1000, claims: claims([125, 325, 525, 1125]), minimumPercent: 50)
        #expect(shares == ["agent-0": 157, "agent-1": 281, "agent-2": 281, "agent-3": 281])
        // Water-filling goes on: 125 and 250 fit under the successive even splits (250, then
        // 291.7), and the two that want more share the 625 left.
        let nested = LeaseSplit.rate(capacity: 1000, claims: claims([100, 200, 2000, 5000]), minimumPercent: 50)
        #expect(nested == ["agent-0": 125, "agent-1": 250, "agent-2": 313, "agent-3": 312])
    }

    @Test("max-min fair: nobody below an even split is cut while another gets more, and no one gets more than it wants")
    func maxMinProperties() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let capacity = Int.random(in: 100...100_000, using: &generator)
            let demands = (0..<Int.random(in: 2...50, using: &generator)).map { _ in
                Double.random(in: 1...Double(capacity) / 4, using: &generator)
            }
            let shares = LeaseSplit.rate(capacity: capacity, claims: claims(demands), minimumPercent: 0)
            let wants = demands.map { $0 * LeaseSplit.headroom }
            guard wants.reduce(0, +) > Double(capacity) else { continue }
            let granted = demands.indices.map { Double(shares["agent-\($0)"]!) }
            let most = granted.max()!
            for index in demands.indices {
                // Over-subscribed: never more than wanted (whole units round up by at most 1),
                // and anyone short of its want has at least as much as anyone else, less 1.
                #expect(granted[index] <= wants[index] + 1)
                if granted[index] + 1 < wants[index] { #expect(granted[index] >= most - 1) }
            }
        }
    }

    @Test("a rate's want is steered by the bucket: demand at its reserve, more below it, less above it")
    func steering() {
        let floor = 1.0
        // A quarter minute of 120/min is 30 held: exactly the demand.
        #expect(LeaseSplit.want(.init(agent: "a", demand: 120, held: 30), idleFloor: floor) == 120)
        // Empty: the gap of 30 is closed over a quarter minute, 120/min more.
        #expect(LeaseSplit.want(.init(agent: "a", demand: 120, held: 0), idleFloor: floor) == 240)
        // Full beyond the reserve: less than the demand, never below the idle floor.
        #expect(LeaseSplit.want(.init(agent: "a", demand: 120, held: 45), idleFloor: floor) == 60)
        #expect(LeaseSplit.want(.init(agent: "a", demand: 120, held: 600), idleFloor: floor) == floor)
        // An agent that does not say what it holds gets a fixed headroom.
        #expect(LeaseSplit.want(.init(agent: "a", demand: 120), idleFloor: floor) == 150)
    }

    @Test("quiet agents at their reserve get their demand; busy ones share all the rest, nothing held back as headroom")
    func steeredSplitUsesTheLimit() {
        // The issue's fleet: 240/min, 6 quiet agents at 18/min holding a quarter minute of it,
        // 2 busy ones asking 180/min with empty buckets.
        var claims = (0..<6).map { LeaseSplit.Claim(agent: "quiet-\($0)", demand: 18, held: 4.5) }
        claims += (0..<2).map { LeaseSplit.Claim(agent: "busy-\($0)", demand: 180, held: 0) }
        let shares = LeaseSplit.rate(capacity: 240, claims: claims, minimumPercent: 50)
        for index in 0..<6 { #expect(shares["quiet-\(index)"] == 18) }
        #expect(shares["busy-0"] == 66 && shares["busy-1"] == 66)
    }

    @Test("a quota: a floor for everyone, the rest in proportion to demand beyond it")
    func quotaProportional() {
        // 1000, 4 agents, floor 50% of an even split = 125 each; 500 left for the need beyond.
        let shares = LeaseSplit.quota(capacity: 1000, claims: claims([125, 325, 525, 1125]), minimumPercent: 50)
        // Needs beyond the floor: 0, 200, 400, 1000 (1600 in all) share the 500 left.
        #expect(shares == ["agent-0": 125, "agent-1": 188, "agent-2": 250, "agent-3": 437])
        let spare = LeaseSplit.quota(capacity: 1000, claims: claims([100, 200, 0]), minimumPercent: 50)
        // Floors: 125 (demand plus a quarter), 166.7 (the full floor), 16.7 (a tenth of it);
        // agent-1 needs 33.3 more; the other 658.3 are split evenly.
        #expect(spare == ["agent-0": 345, "agent-1": 419, "agent-2": 236])
    }

    @Test("under-subscribed: every agent gets its demand, and the spare is split evenly")
    func spare() {
        let shares = LeaseSplit.rate(capacity: 1000, claims: claims([100, 200, 0]), minimumPercent: 50)
        // Wants: 125 and 250 (demand plus a quarter), 16.7 for the idle one (a tenth of 50 %
        // of an even split); the other 608.3 are split evenly.
        #expect(shares == ["agent-0": 328, "agent-1": 453, "agent-2": 219])
    }

    @Test("a quiet agent beside a busy one gets its demand with headroom, not a floor it would leave unused")
    func quietAgentNotStarved() {
        let shares = LeaseSplit.rate(capacity: 600, claims: claims([100, 100_000]), minimumPercent: 50)
        #expect(shares["agent-0"]! == 125 && shares["agent-1"]! == 475)
        // Idle, it keeps a tenth of the floor for its next calls.
        let idle = LeaseSplit.rate(capacity: 600, claims: claims([0, 100_000]), minimumPercent: 50)
        #expect(idle["agent-0"]! == 15)
        let noFloor = LeaseSplit.rate(capacity: 600, claims: claims([10, 100_000]), minimumPercent: 0)
        #expect(noFloor["agent-0"]! == 13 && noFloor["agent-1"]! == 587)
        let idleNoFloor = LeaseSplit.rate(capacity: 600, claims: claims([0, 100_000]), minimumPercent: 0)
        #expect(idleNoFloor["agent-0"]! == 0 && idleNoFloor["agent-1"]! == 600)
    }

    @Test("one agent's rate share, found alone, is its share in the whole split: ties, few units, big capacities")
    func oneShareMatchesTheWholeSplit() async {
        var generator = SystemRandomNumberGenerator()
        for round in 0..<3_000 {
            // As above: yield the process's threads now and then.
            if round % 50 == 0 { await Task.yield() }
            // Small capacities and equal demands make ties in the remainders; huge ones
            // round past the capacity as doubles.
            let capacity =
                round % 10 == 0
                ? Int.random(in: 1 << 54...1 << 60, using: &generator) : Int.random(in: 0...50, using: &generator)
            let count = Int.random(in: 1...40, using: &generator)
            let claims = (0..<count).map { index in
                LeaseSplit.Claim(
                    agent: "agent-\(Int.random(in: 0...count * 2, using: &generator))",
                    demand: round % 3 == 0 ? 10 : Double.random(in: 0...200, using: &generator),
                    held: Bool.random(using: &generator) ? nil : Double(Int.random(in: 0...40, using: &generator)))
            }
            let minimum = Int.random(in: 0...100, using: &generator)
            // A name claimed twice is summed, as the whole split does.
            let split = round % 2 == 0 ? claims : claims.uniqued()
            let whole = LeaseSplit.rate(capacity: capacity, claims: split, minimumPercent: minimum)
            for agent in Set(claims.map(\.agent)) {
                let alone = LeaseSplit.rate(of: agent, capacity: capacity, claims: split, minimumPercent: minimum)
                #expect(alone == whole[agent], "\(agent) of \(claims.count) claims, capacity \(capacity)")
            }
        }
    }

    @Test("fewer units than agents: whole units go to the largest remainders, repeatably")
    func fewerUnitsThanAgents() {
        let first = LeaseSplit.rate(capacity: 3, claims: claims(Array(repeating: 10, count: 8)), minimumPercent: 100)
        #expect(first.values.reduce(0, +) == 3 && first.values.allSatisfy { $0 <= 1 })
        #expect(
            LeaseSplit.rate(capacity: 3, claims: claims(Array(repeating: 10, count: 8)), minimumPercent: 100) == first)
        #expect(
            LeaseSplit.rate(capacity: 0, claims: claims([5, 5]), minimumPercent: 50) == ["agent-0": 0, "agent-1": 0])
        #expect(LeaseSplit.rate(capacity: 100, claims: [], minimumPercent: 50).isEmpty)
    }

    @Test("the fallback without a lease: a fraction (a rate at least 1/min, a quota rounded down), zero, none")
    func fallback() {
        let limits = Limits(
            requestsPerMinute: 600, tokensPerMinute: 90_000, requestsPerDay: 50, maxParallelRequests: 3,
            dailySpend: Cost(picoUSD: 1_000))
        #expect(
            FleetLimits.local(limits, shares: .init(), fallback: .fraction(0.1))
                == Limits(
                    requestsPerMinute: 60, tokensPerMinute: 9_000, requestsPerDay: 5, maxParallelRequests: 3,
                    dailySpend: Cost(picoUSD: 100)))
        var trimmed = Limits(
            requestsPerMinute: 200, tokensPerMinute: 0, requestsPerDay: 7, maxParallelRequests: 3,
            dailySpend: Cost(picoUSD: 700))
        trimmed.requestBurst = 40
        #expect(
            FleetLimits.local(
                limits,
                shares: .init(
                    requestsPerMinute: 200, requestBurst: 40, tokenBurst: 5, dailyRequestCap: 7,
                    dailySpendCap: Cost(picoUSD: 700)),
                fallback: .zero) == trimmed)
        #expect(FleetLimits.local(limits, shares: .init(), fallback: .unlimited) == Limits(maxParallelRequests: 3))
        #expect(LeaseFallback.fraction(0.001).capacity(forLimit: 10) == 1)
        #expect(LeaseFallback.fraction(0.1).countCap(forQuota: 6) == 0)
    }

    @Test("spend-sized capacities beyond 2^53 still split into shares that never exceed them")
    func hugeCapacities() {
        let capacity = 9_000_000_000_000_000_007
        let shares = LeaseSplit.rate(capacity: capacity, claims: claims([3e15, 7e15, 1, 0]), minimumPercent: 50)
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

    /// Reserves one call of `tokens` from `slots` at `now` seconds.
    private func reserve(
        _ limiter: Limiter, _ slots: ScopeSlots, tokens: Int = 1, at seconds: Int64
    ) -> Result<Reservation, Denial> {
        limiter.reserve(
            slots, demand: Demand(tokens: tokens, cost: .zero), now: seconds * 1_000_000_000, dayNumber: 0,
            monthNumber: 0, nextDayStart: 86_400_000_000_000, nextMonthStart: 86_400_000_000_000)
    }

    @Test("a leased share that shrinks keeps what the bucket holds, and it does not refill above its new size")
    func shrinkKeepsLevel() throws {
        let limiter = Limiter()
        let team = Scope(.team, "ml")
        let fleet = Limits(requestsPerMinute: 600)
        var slots = ScopeSlots()
        slots[.team] = limiter.bind(team, limits: Limits(requestsPerMinute: 60), fleet: fleet)
        _ = reserve(limiter, slots, at: 1)  // starts the clock: 59 left
        // The share drops to 6 a minute: the 59 held are kept, not cut to 6.
        _ = limiter.bind(team, limits: Limits(requestsPerMinute: 6), fleet: fleet, keepingLevels: true)
        for _ in 0..<59 { #expect(reserve(limiter, slots, at: 1).successValue != nil) }
        #expect(reserve(limiter, slots, at: 1).failureValue?.rule == "team \"ml\" requests_per_minute")
        // Now it refills at 6 a minute, one every 10 s, to at most 6.
        #expect(reserve(limiter, slots, at: 11).successValue != nil)
        #expect(
            limiter.remaining(team, now: 1_000 * 1_000_000_000, dayNumber: 0, monthNumber: 0)?.requestsPerMinute == 6)

        // Without keepingLevels (a lease that expired to its fallback) the bucket is cut.
        let other = Scope(.team, "web")
        var otherSlots = ScopeSlots()
        otherSlots[.team] = limiter.bind(other, limits: Limits(requestsPerMinute: 60), fleet: fleet)
        _ = limiter.bind(other, limits: Limits(requestsPerMinute: 6), fleet: fleet)
        #expect(limiter.remaining(other, now: 0, dayNumber: 0, monthNumber: 0)?.requestsPerMinute == 6)
        _ = otherSlots
    }

    @Test("a bucket trimmed below one call still admits at its rate, one call of debt at a time")
    func trimmedBurst() throws {
        let limiter = Limiter()
        let team = Scope(.team, "ml")
        var local = Limits(requestsPerMinute: 6, tokensPerMinute: 1_000)
        local.requestBurst = 0
        local.tokenBurst = 100
        var slots = ScopeSlots()
        slots[.team] = limiter.bind(
            team, limits: local, fleet: Limits(requestsPerMinute: 600, tokensPerMinute: 100_000))
        // Empty and full at once (a burst of 0): one call passes, into debt.
        #expect(reserve(limiter, slots, tokens: 10, at: 1).successValue != nil)
        let refused = try #require(reserve(limiter, slots, tokens: 10, at: 1).failureValue)
        #expect(refused.rule == "team \"ml\" requests_per_minute" && refused.retryAfterSeconds == 10)
        #expect(reserve(limiter, slots, tokens: 10, at: 11).successValue != nil)
        // A call bigger than the token share (500 of a 100-token burst) but within the fleet's
        // limit is not "too large": a full bucket admits it and pays the debt back at 1000/min.
        var tokens = Limits(tokensPerMinute: 1_000)
        tokens.tokenBurst = 100
        let scope = Scope(.project, "p")
        var tokenSlots = ScopeSlots()
        tokenSlots[.project] = limiter.bind(scope, limits: tokens, fleet: Limits(tokensPerMinute: 100_000))
        #expect(reserve(limiter, tokenSlots, tokens: 500, at: 1).successValue != nil)
        let owed = try #require(reserve(limiter, tokenSlots, tokens: 50, at: 1).failureValue)
        #expect(owed.reason == .rateLimited && owed.retryAfterSeconds == 27)  // 450 owed + 50 needed at 1000/min
        // Beyond the fleet's whole limit it is too large, and says so with the fleet's figure.
        let huge = try #require(reserve(limiter, tokenSlots, tokens: 200_000, at: 100).failureValue)
        #expect(huge.reason == .requestTooLarge && huge.message.contains("more than the 100000 tokens per minute"))
    }

    @Test("a share of 0 with a burst of 0 admits nothing")
    func zeroRateZeroBurst() {
        let limiter = Limiter()
        var local = Limits(requestsPerMinute: 0)
        local.requestBurst = 0
        var slots = ScopeSlots()
        slots[.team] = limiter.bind(Scope(.team, "ml"), limits: local, fleet: Limits(requestsPerMinute: 600))
        #expect(reserve(limiter, slots, at: 1).failureValue != nil)
        #expect(reserve(limiter, slots, at: 100).failureValue != nil)
    }
}

extension [LeaseSplit.Claim] {
    /// One claim per agent (the first), as the lease book holds them.
    fileprivate func uniqued() -> [LeaseSplit.Claim] {
        var seen: Set<String> = []
        return filter { seen.insert($0.agent).inserted }
    }
}
