import SluicePolicy
import Testing

/// A manual clock: the limiter and engine only ever see the numbers these tests pass.
private let second: Int64 = 1_000_000_000

@Suite("Limits: buckets, windows, reservation")
struct LimiterTests {
    private func admitted(
        _ engine: PolicyEngine, key: String = "k1", model: String = "a", user: String? = nil,
        prompt: Int = 10, maxTokens: Int? = 10, at now: Int64
    ) -> Result<Admission, Denial> {
        guard case .success(let caller) = engine.authenticate(presentedKey: Fixture.plaintext(key), now: now),
            case .success(let alias) = engine.authorize(caller, model: model)
        else {
            return .failure(Denial(.invalidKey, "setup", rule: "setup"))
        }
        return engine.admit(
            caller, alias: alias, endUser: user, promptTokens: prompt, maxOutputTokens: maxTokens, now: now)
    }

    @Test("a blocked end user is refused with 403 before any limit is reserved; others are not")
    func blockedEndUser() throws {
        let policy = Fixture.policy(keys: [Fixture.key("k1", limits: Limits(requestsPerMinute: 1))]) {
            $0.blockedEndUsers = ["mallory"]
        }
        let engine = try Fixture.engine(policy)
        let denial = try #require(admitted(engine, user: "mallory", at: Fixture.noon).failureValue)
        #expect(denial.status == 403 && denial.reason == .endUserBlocked && denial.type == "permission_error")
        #expect(denial.rule == #"user "mallory" blocked"# && denial.message.contains(#"end user "mallory""#))
        // The refusal took nothing from the key's one request a minute.
        #expect(admitted(engine, user: "alice", at: Fixture.noon).successValue != nil)
        #expect(admitted(engine, at: Fixture.noon).failureValue?.reason == .rateLimited)
    }

    @Test("requests per minute refill continuously; Retry-After says when the next fits")
    func requestsPerMinute() throws {
        let engine = try Fixture.engine(Fixture.policy(keys: [Fixture.key("k1", limits: Limits(requestsPerMinute: 6))]))
        var now = Fixture.noon
        for _ in 0..<6 { #expect(admitted(engine, at: now).successValue != nil) }
        let denial = try #require(admitted(engine, at: now).failureValue)
        #expect(
            denial.status == 429 && denial.reason == .rateLimited && denial.rule == "key \"k1\" requests_per_minute")
        #expect(denial.retryAfterSeconds == 10)  // 6/min refills one every 10 s
        now += 9 * second
        #expect(admitted(engine, at: now).failureValue != nil)
        now += 1 * second
        #expect(admitted(engine, at: now).successValue != nil)
        #expect(admitted(engine, at: now).failureValue != nil)
    }

    @Test("tokens per minute reserve the estimate and settle to the actual")
    func tokensPerMinute() throws {
        let engine = try Fixture.engine(
            Fixture.policy(keys: [Fixture.key("k1", limits: Limits(tokensPerMinute: 1000))]))
        let now = Fixture.noon
        // Reserves prompt + max_tokens = 600; a second such call does not fit.
        let first = try #require(admitted(engine, prompt: 100, maxTokens: 500, at: now).successValue)
        #expect(
            first.reservation.status.tokens
                == RateLimitStatus.Window(limit: 1000, remaining: 400, resetNanoseconds: 36 * second))
        #expect(
            admitted(engine, prompt: 100, maxTokens: 500, at: now).failureValue?.rule == "key \"k1\" tokens_per_minute")
        // It used 150 in fact: 450 go back, and the second call fits.
        engine.settle(first, promptTokens: 100, completionTokens: 50, now: now)
        #expect(admitted(engine, prompt: 100, maxTokens: 500, at: now).successValue != nil)
        // With no max_tokens the model's cap (1000 in the fixture) is reserved: more than the
        // whole bucket, so it is refused without a Retry-After that could not come true.
        let tooBig = try #require(admitted(engine, prompt: 100, maxTokens: nil, at: now + 60 * second).failureValue)
        #expect(
            tooBig.reason == .requestTooLarge && tooBig.retryAfterSeconds == nil
                && tooBig.message.contains("max_tokens"))
    }

    @Test("using more than reserved leaves a debt that is paid before the next admission")
    func debt() throws {
        let engine = try Fixture.engine(
            Fixture.policy(keys: [Fixture.key("k1", limits: Limits(tokensPerMinute: 1000))]))
        let call = try #require(admitted(engine, prompt: 10, maxTokens: 90, at: Fixture.noon).successValue)
        engine.settle(call, promptTokens: 10, completionTokens: 1490, now: Fixture.noon)  // 1500: 500 in debt
        let snapshot = try #require(
            engine.limiter.remaining(Scope(.key, "k1"), now: Fixture.noon, dayNumber: 0, monthNumber: 0))
        #expect(snapshot.tokensPerMinute == -500)
        // At 0 after 30 s.
        #expect(admitted(engine, prompt: 10, maxTokens: 90, at: Fixture.noon + 30 * second).failureValue != nil)
        #expect(admitted(engine, prompt: 10, maxTokens: 90, at: Fixture.noon + 36 * second).successValue != nil)
    }

    @Test("a failed call releases everything it reserved")
    func release() throws {
        let engine = try Fixture.engine(
            Fixture.policy(keys: [
                Fixture.key(
                    "k1",
                    limits: Limits(
                        requestsPerMinute: 1, requestsPerDay: 1, maxParallelRequests: 1, dailySpend: Cost(usd: 0.01)))
            ]))
        let call = try #require(admitted(engine, at: Fixture.noon).successValue)
        #expect(admitted(engine, at: Fixture.noon).failureValue?.reason == .parallelLimit)
        engine.release(call, now: Fixture.noon)
        #expect(admitted(engine, at: Fixture.noon).successValue != nil)
    }

    @Test("max_parallel_requests counts calls in flight")
    func parallel() throws {
        let engine = try Fixture.engine(
            Fixture.policy(teams: [TeamPolicy(name: "ml", limits: Limits(maxParallelRequests: 2))]))
        let first = try #require(admitted(engine, at: Fixture.noon).successValue)
        _ = try #require(admitted(engine, at: Fixture.noon).successValue)
        let denial = try #require(admitted(engine, at: Fixture.noon).failureValue)
        #expect(
            denial.reason == .parallelLimit && denial.rule == "team \"ml\" max_parallel_requests"
                && denial.retryAfterSeconds == 1)
        engine.settle(first, promptTokens: 1, completionTokens: 1, now: Fixture.noon)
        #expect(admitted(engine, at: Fixture.noon).successValue != nil)
    }

    @Test("daily spend rolls over at local midnight in the configured zone")
    func dailySpendInZone() throws {
        // $0.03 a day; each call reserves 10 + 10 tokens = $0.00003 at the fixture's prices,
        // and is settled to 1000 + 1000 tokens = $0.003. So ten calls fill a day.
        let zone = try #require(TimeZoneRules(fixedOffset: "+05:30"))
        let engine = try Fixture.engine(
            Fixture.policy(keys: [Fixture.key("k1", limits: Limits(dailySpend: Cost(usd: 0.03)))]) {
                $0.timeZone = zone
            })
        // 2026-11-23T18:29:00Z is 23:59 in +05:30.
        let beforeMidnight: Int64 = (1_795_435_200 + 6 * 3600 + 29 * 60) * second
        for _ in 0..<10 {
            let call = try #require(admitted(engine, at: beforeMidnight).successValue)
            engine.settle(call, promptTokens: 1000, completionTokens: 1000, now: beforeMidnight)
        }
        let denial = try #require(admitted(engine, at: beforeMidnight).failureValue)
        #expect(denial.reason == .budgetExceeded && denial.status == 429 && denial.rule == "key \"k1\" daily_spend_usd")
        #expect(denial.retryAfterSeconds == 60)
        #expect(denial.message.contains("$0.03"))
        #expect(admitted(engine, at: beforeMidnight + 60 * second).successValue != nil)
    }

    @Test("monthly spend rolls over at the month's end, leap years included")
    func monthEnd() throws {
        let engine = try Fixture.engine(
            Fixture.policy(keys: [Fixture.key("k1", limits: Limits(monthlySpend: Cost(usd: 0.003)))]))
        // 2028-02-29T23:59:59Z, then 2028-03-01T00:00:00Z.
        let lastSecond = (CivilDate(year: 2028, month: 2, day: 29).dayNumber * 86_400 + 86_399) * second
        let call = try #require(admitted(engine, at: lastSecond).successValue)
        engine.settle(call, promptTokens: 1000, completionTokens: 1000, now: lastSecond)
        let denial = try #require(admitted(engine, at: lastSecond).failureValue)
        #expect(denial.rule == "key \"k1\" monthly_spend_usd" && denial.retryAfterSeconds == 1)
        #expect(admitted(engine, at: lastSecond + second).successValue != nil)
        // Calendar arithmetic at the edges.
        #expect(
            CivilDate(dayNumber: CivilDate(year: 2027, month: 12, day: 31).dayNumber + 1)
                == CivilDate(year: 2028, month: 1, day: 1))
        #expect(
            TimeZoneRules.utc.startOfNextMonth(after: lastSecond / second) == CivilDate(year: 2028, month: 3, day: 1)
                .dayNumber * 86_400)
    }

    @Test("requests per day reset at midnight; the tightest request limit is reported")
    func requestsPerDay() throws {
        let engine = try Fixture.engine(
            Fixture.policy(keys: [Fixture.key("k1", limits: Limits(requestsPerMinute: 100, requestsPerDay: 3))]))
        let first = try #require(admitted(engine, at: Fixture.noon).successValue)
        // 2 left of 3 per day is tighter than 99 of 100 per minute; the day resets at midnight (12 h).
        #expect(
            first.reservation.status.requests
                == RateLimitStatus.Window(limit: 3, remaining: 2, resetNanoseconds: 12 * 3600 * second))
        _ = admitted(engine, at: Fixture.noon)
        _ = admitted(engine, at: Fixture.noon)
        #expect(admitted(engine, at: Fixture.noon).failureValue?.retryAfterSeconds == 12 * 3600)
        #expect(admitted(engine, at: Fixture.noon + 12 * 3600 * second).successValue != nil)
    }

    @Test("a clock that steps back refills nothing; one that leaps ahead refills only to full")
    func jumpingClock() throws {
        let engine = try Fixture.engine(Fixture.policy(keys: [Fixture.key("k1", limits: Limits(requestsPerMinute: 2))]))
        _ = admitted(engine, at: Fixture.noon)
        _ = admitted(engine, at: Fixture.noon)
        #expect(admitted(engine, at: Fixture.noon - 3600 * second).failureValue != nil)  // back an hour
        #expect(admitted(engine, at: Fixture.noon - 3600 * second + 29 * second).failureValue != nil)
        #expect(admitted(engine, at: Fixture.noon - 3600 * second + 30 * second).successValue != nil)
        let later = Fixture.noon + 365 * 86_400 * second  // a year ahead: two requests, not millions
        #expect(admitted(engine, at: later).successValue != nil)
        #expect(admitted(engine, at: later).successValue != nil)
        #expect(admitted(engine, at: later).failureValue != nil)
    }

    @Test("every scope on the path is checked: project, team, service, model, end user, default")
    func scopes() throws {
        let policy = Fixture.policy(
            keys: [Fixture.key("k1", project: "p"), Fixture.key("k2")],
            teams: [TeamPolicy(name: "ml", limits: Limits(requestsPerMinute: 50))],
            projects: [ProjectPolicy(name: "p", team: "ml", limits: Limits(requestsPerMinute: 3))],
            service: ServicePolicy(name: Fixture.service, limits: Limits(requestsPerMinute: 40))
        ) {
            $0.modelLimits = ["b": Limits(requestsPerMinute: 1)]
            $0.endUserDefaultLimits = Limits(requestsPerMinute: 2)
        }
        let engine = try Fixture.engine(policy)
        let now = Fixture.noon
        #expect(admitted(engine, model: "b", at: now).successValue != nil)
        #expect(
            admitted(engine, key: "k2", model: "b", at: now).failureValue?.rule == "model \"b\" requests_per_minute")
        #expect(admitted(engine, user: "alice", at: now).successValue != nil)  // project: 2 of 3 used
        #expect(admitted(engine, user: "alice", at: now).successValue != nil)
        #expect(
            admitted(engine, key: "k2", user: "alice", at: now).failureValue?.rule
                == "user \"alice\" requests_per_minute")
        #expect(admitted(engine, user: "bob", at: now).failureValue?.rule == "project \"p\" requests_per_minute")
        #expect(admitted(engine, key: "k2", user: "bob", at: now).successValue != nil)
        #expect(engine.limiter.endUserCount == 2)
    }

    @Test("the default limit applies to a caller whose key, project and team name none")
    func defaultLimits() throws {
        let policy = Fixture.policy(
            keys: [Fixture.key("plain"), Fixture.key("own", limits: Limits(requestsPerMinute: 5))],
            service: ServicePolicy(name: Fixture.service, keylessAllowed: true)
        ) {
            $0.defaultLimits = Limits(requestsPerMinute: 1)
        }
        let engine = try Fixture.engine(policy)
        #expect(admitted(engine, key: "plain", at: Fixture.noon).successValue != nil)
        #expect(
            admitted(engine, key: "plain", at: Fixture.noon).failureValue?.rule == "key \"plain\" requests_per_minute")
        for _ in 0..<5 { #expect(admitted(engine, key: "own", at: Fixture.noon).successValue != nil) }
        let keyless = try #require(engine.authenticate(presentedKey: nil, now: Fixture.noon).successValue)
        let alias = try #require(engine.authorize(keyless, model: "a").successValue)
        #expect(
            engine.admit(keyless, alias: alias, endUser: nil, promptTokens: 1, maxOutputTokens: 1, now: Fixture.noon)
                .successValue != nil)
        #expect(
            engine.admit(keyless, alias: alias, endUser: nil, promptTokens: 1, maxOutputTokens: 1, now: Fixture.noon)
                .failureValue?.rule
                == "service \"\(Fixture.service)\" requests_per_minute")
    }

    @Test("1,000 concurrent calls against a budget that fits exactly 137 admit exactly 137")
    func concurrentAdmission() async throws {
        // Each call reserves 10 + 10 tokens at 1e-6 / 2e-6 USD = $0.00003.
        let fits = 137
        let budget = Cost(picoUSD: Int64(fits) * 30_000_000)
        let engine = try Fixture.engine(Fixture.policy(keys: [Fixture.key("k1", limits: Limits(dailySpend: budget))]))
        let caller = try #require(
            engine.authenticate(presentedKey: Fixture.plaintext("k1"), now: Fixture.noon).successValue)
        let alias = try #require(engine.authorize(caller, model: "a").successValue)
        let admittedCount = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<1000 {
                group.addTask {
                    engine.admit(
                        caller, alias: alias, endUser: nil, promptTokens: 10, maxOutputTokens: 10, now: Fixture.noon
                    ).successValue != nil
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admittedCount == fits)
    }

    @Test("reloading a policy keeps what the buckets hold")
    func reloadKeepsState() throws {
        let limiter = Limiter()
        let policy = Fixture.policy(keys: [Fixture.key("k1", limits: Limits(requestsPerMinute: 2))])
        let first = try Fixture.engine(policy, limiter: limiter)
        _ = admitted(first, at: Fixture.noon)
        _ = admitted(first, at: Fixture.noon)
        let reloaded = try Fixture.engine(policy, limiter: limiter)
        #expect(admitted(reloaded, at: Fixture.noon).failureValue?.reason == .rateLimited)
    }

    @Test("end users are forgotten only when nothing about them still matters")
    func endUserTable() throws {
        let limiter = Limiter(maxEndUsers: 2)
        let engine = try Fixture.engine(
            Fixture.policy { $0.endUserDefaultLimits = Limits(requestsPerMinute: 1) }, limiter: limiter)
        let first = try #require(admitted(engine, user: "u1", at: Fixture.noon).successValue)
        let other = try #require(admitted(engine, user: "u2", at: Fixture.noon).successValue)
        // Both are in flight: neither can be forgotten, so u3 waits.
        #expect(admitted(engine, user: "u3", at: Fixture.noon).failureValue?.reason == .tooManyEndUsers)
        engine.settle(first, promptTokens: 1, completionTokens: 1, now: Fixture.noon)
        engine.settle(other, promptTokens: 1, completionTokens: 1, now: Fixture.noon)
        // Done, but their minute is spent: forgetting them would hand them a fresh bucket.
        #expect(admitted(engine, user: "u3", at: Fixture.noon).failureValue?.reason == .tooManyEndUsers)
        // A minute later their buckets are full again, so they are forgotten and u3 fits.
        #expect(admitted(engine, user: "u3", at: Fixture.noon + 60 * second).successValue != nil)
        #expect(limiter.endUserCount <= 2)
    }
}
