import Synchronization

/// What one call asks of its scopes' limits at admission.
public struct Demand: Sendable, Equatable {
    /// Prompt estimate plus the most the answer may use (`max_tokens`, or the model's cap).
    public var tokens: Int
    /// Cost of `tokens` at the model's prices.
    public var cost: Cost

    public init(tokens: Int, cost: Cost) {
        self.tokens = tokens
        self.cost = cost
    }
}

/// The tightest limits after an admission, for the `x-ratelimit-*` headers.
public struct RateLimitStatus: Sendable, Equatable {
    /// One limit's size, what is left of it, and when it is whole again.
    public struct Window: Sendable, Equatable {
        public var limit: Int
        public var remaining: Int
        /// Nanoseconds until the limit is back to full.
        public var resetNanoseconds: Int64

        public init(limit: Int, remaining: Int, resetNanoseconds: Int64) {
            self.limit = limit
            self.remaining = remaining
            self.resetNanoseconds = resetNanoseconds
        }
    }
    /// The request limit (per minute or per day) with the least left, if any applies.
    public var requests: Window?
    /// The tokens-per-minute limit with the least left, if any applies.
    public var tokens: Window?

    public init(requests: Window? = nil, tokens: Window? = nil) {
        self.requests = requests
        self.tokens = tokens
    }
}

/// What was taken at admission; handed back to ``Limiter/settle(_:tokens:cost:now:)`` or
/// ``Limiter/release(_:now:)`` exactly once.
public struct Reservation: Sendable, Equatable {
    public let slots: ScopeSlots
    public let demand: Demand
    let dayNumber: Int64
    let monthNumber: Int64
    public let status: RateLimitStatus
}

/// The state of every limit the agent enforces, behind one lock.
///
/// Admission reserves from every scope a call touches, all or nothing, so concurrent calls
/// against a limit that fits N of them admit exactly N. After the call the reservation is
/// settled to what was really used (or released when the call failed). Slots are named by
/// ``Scope`` and survive policy reloads, so a reload never refills a bucket.
///
/// Time is always passed in (nanoseconds since the Unix epoch): the limiter reads no clock.
/// A clock that steps back refills nothing; one that jumps ahead refills at most to full.
public final class Limiter: Sendable {
    private let state: Mutex<LimiterState>
    /// The most end users tracked at once; beyond it, idle ones are forgotten first.
    public let maxEndUsers: Int

    public init(maxEndUsers: Int = 100_000) {
        self.maxEndUsers = maxEndUsers
        state = Mutex(LimiterState())
    }

    /// The slot for a named scope, created on first use; its limits are replaced with `limits`.
    ///
    /// `fleet` is the limit as the policy states it when `limits` is this agent's share of
    /// it: a refusal then names both, and a call is too large only for the fleet's limit.
    /// With `keepingLevels`, per-minute buckets whose size shrinks keep what they hold (a
    /// lease share that moved to other agents: the control plane counts what this one still
    /// holds); otherwise they are cut to the new size.
    public func bind(_ scope: Scope, limits: Limits, fleet: Limits? = nil, keepingLevels: Bool = false) -> Int32 {
        state.withLock { state in
            let slot = state.bind(scope, limits: limits, keepingLevels: keepingLevels)
            state.slots[Int(slot)].fleet = fleet == limits ? nil : fleet
            return slot
        }
    }

    /// The slot for an end user, or nil when the table is full of users with calls in flight
    /// or spend to remember.
    public func endUserSlot(_ name: String, limits: Limits, now: Int64) -> Int32? {
        let maxEndUsers = self.maxEndUsers
        return state.withLock { state in
            if let slot = state.userSlots[name] {
                if state.slots[Int(slot)].limits != limits { state.slots[Int(slot)].update(limits) }
                return slot
            }
            if state.userSlots.count >= maxEndUsers, !state.evictIdleUsers(now: now) { return nil }
            let slot = state.bind(Scope(.user, name), limits: limits)
            state.userSlots[name] = slot
            return slot
        }
    }

    /// Reserves `demand` from every slot in `slots`, or takes nothing and says which limit
    /// refused. `dayNumber`/`monthNumber` are the calendar windows `now` falls in.
    public func reserve(
        _ slots: ScopeSlots, demand: Demand, now: Int64, dayNumber: Int64, monthNumber: Int64,
        nextDayStart: Int64, nextMonthStart: Int64
    ) -> Result<Reservation, Denial> {
        state.withLock { state in
            var refusal: (slot: Int, kind: LimitKind, retryNanos: Int64?)?
            var status = RateLimitStatus()
            slots.forEach { index in
                state.slots[index].refresh(now: now, dayNumber: dayNumber, monthNumber: monthNumber)
                // Demand counts what was asked, admitted or not: a scope starved of share
                // shows its full want, so the next lease can give it more.
                state.slots[index].demandRequests += 1
                state.slots[index].demandTokens += Int64(demand.tokens)
                state.slots[index].demandCost += demand.cost.picoUSD
                if refusal == nil,
                    let (kind, retry) = state.slots[index].refusal(
                        for: demand, now: now,
                        nextDayStart: nextDayStart, nextMonthStart: nextMonthStart)
                {
                    refusal = (index, kind, retry)
                }
            }
            if let refusal {
                var denial = state.slots[refusal.slot].denial(
                    kind: refusal.kind, demand: demand, retryNanos: refusal.retryNanos)
                slots.forEach { state.slots[$0].report(into: &status, now: now, nextDayStart: nextDayStart) }
                denial.rateLimits = status
                return .failure(denial)
            }
            slots.forEach { index in
                state.slots[index].take(demand)
                state.slots[index].report(into: &status, now: now, nextDayStart: nextDayStart)
            }
            return .success(
                Reservation(
                    slots: slots, demand: demand, dayNumber: dayNumber, monthNumber: monthNumber, status: status))
        }
    }

    /// Replaces the reservation with what the call really used.
    public func settle(
        _ reservation: Reservation, tokens: Int, cost: Cost, now: Int64, dayNumber: Int64, monthNumber: Int64
    ) {
        state.withLock { state in
            reservation.slots.forEach { index in
                state.slots[index].refresh(now: now, dayNumber: dayNumber, monthNumber: monthNumber)
                state.slots[index].settle(reservation, tokens: tokens, cost: cost)
            }
        }
    }

    /// Gives the whole reservation back: the call failed without using anything.
    public func release(_ reservation: Reservation, now: Int64, dayNumber: Int64, monthNumber: Int64) {
        state.withLock { state in
            reservation.slots.forEach { index in
                state.slots[index].refresh(now: now, dayNumber: dayNumber, monthNumber: monthNumber)
                state.slots[index].release(reservation)
            }
        }
    }

    /// What is left in one scope's limits, for metrics and tests.
    public func remaining(_ scope: Scope, now: Int64, dayNumber: Int64, monthNumber: Int64) -> LimitSnapshot? {
        state.withLock { state in
            guard let index = state.index[scope] else { return nil }
            state.slots[Int(index)].refresh(now: now, dayNumber: dayNumber, monthNumber: monthNumber)
            return state.slots[Int(index)].snapshot
        }
    }

    /// Every scope with at least one limit, and what it has left.
    public func snapshots(now: Int64, dayNumber: Int64, monthNumber: Int64) -> [(Scope, LimitSnapshot)] {
        state.withLock { state in
            var result: [(Scope, LimitSnapshot)] = []
            for index in state.slots.indices where !state.slots[index].limits.isEmpty && !state.slots[index].isFree {
                state.slots[index].refresh(now: now, dayNumber: dayNumber, monthNumber: monthNumber)
                result.append((state.slots[index].scope, state.slots[index].snapshot))
            }
            return result
        }
    }

    /// What was asked of one scope since the last ``takeDemand(kinds:)``.
    public struct AskedDemand: Sendable, Equatable {
        public var scope: Scope
        public var requests: Int64
        public var tokens: Int64
        public var cost: Cost
    }

    /// Requests, tokens and estimated cost asked of each scope of `kinds` since the last
    /// call, then zeroed: what an agent reports as its demand when it renews its leases.
    public func takeDemand(kinds: Set<Scope.Kind>) -> [AskedDemand] {
        state.withLock { state in
            var result: [AskedDemand] = []
            for index in state.slots.indices
            where !state.slots[index].isFree && kinds.contains(state.slots[index].scope.kind) {
                guard state.slots[index].demandRequests > 0 else { continue }
                result.append(
                    AskedDemand(
                        scope: state.slots[index].scope, requests: state.slots[index].demandRequests,
                        tokens: state.slots[index].demandTokens, cost: Cost(picoUSD: state.slots[index].demandCost)))
                state.slots[index].demandRequests = 0
                state.slots[index].demandTokens = 0
                state.slots[index].demandCost = 0
            }
            return result
        }
    }

    /// The scopes of `kinds` asked of since the last ``takeDemand(kinds:)``, without taking
    /// the demand: how an agent notices a scope's first calls and asks for its lease at once.
    public func scopesWithDemand(kinds: Set<Scope.Kind>) -> [Scope] {
        state.withLock { state in
            state.slots.filter { !$0.isFree && $0.demandRequests > 0 && kinds.contains($0.scope.kind) }.map(\.scope)
        }
    }

    /// What one scope has used of its limits, as a lease renewal reports it.
    public struct ScopeUse: Sendable, Equatable {
        /// Requests admitted in the current day window (calls in flight included).
        public var dayRequests: Int
        /// Spend in the current day and month windows (reserved calls included).
        public var daySpend: Cost
        public var monthSpend: Cost
        /// Whole requests and tokens the per-minute buckets hold now (nil without the limit).
        public var requestsHeld: Int?
        public var tokensHeld: Int?
    }

    /// What one scope has used in its current windows and holds in its buckets, or nil when
    /// it has no slot.
    public func use(of scope: Scope, now: Int64, dayNumber: Int64, monthNumber: Int64) -> ScopeUse? {
        state.withLock { state in
            guard let index = state.index[scope] else { return nil }
            state.slots[Int(index)].refresh(now: now, dayNumber: dayNumber, monthNumber: monthNumber)
            let slot = state.slots[Int(index)]
            return ScopeUse(
                dayRequests: slot.dayRequests, daySpend: slot.daySpend, monthSpend: slot.monthSpend,
                requestsHeld: slot.limits.requestsPerMinute.map { _ in Int(max(0, slot.requestLevel / SlotState.scale))
                },
                tokensHeld: slot.limits.tokensPerMinute.map { _ in Int(max(0, slot.tokenLevel / SlotState.scale)) })
        }
    }

    /// End users currently tracked.
    public var endUserCount: Int { state.withLock { $0.userSlots.count } }
}

/// Remaining capacity of one scope (nil where that limit is not set).
public struct LimitSnapshot: Sendable, Equatable {
    public var requestsPerMinute: Double?
    public var tokensPerMinute: Double?
    public var requestsPerDay: Int?
    public var parallel: Int?
    public var dailySpend: Cost?
    public var monthlySpend: Cost?
    public var inFlight: Int
}

private struct LimiterState {
    var slots: [SlotState] = []
    var index: [Scope: Int32] = [:]
    var userSlots: [String: Int32] = [:]
    var freeSlots: [Int32] = []

    mutating func bind(_ scope: Scope, limits: Limits, keepingLevels: Bool = false) -> Int32 {
        if let existing = index[scope] {
            slots[Int(existing)].update(limits, keepingLevels: keepingLevels)
            return existing
        }
        let slot: Int32
        if let reused = freeSlots.popLast() {
            slot = reused
            slots[Int(slot)] = SlotState(scope: scope, limits: limits)
        } else {
            slot = Int32(slots.count)
            slots.append(SlotState(scope: scope, limits: limits))
        }
        index[scope] = slot
        return slot
    }

    /// Forgets end users with nothing in flight and nothing left to remember (full buckets,
    /// no spend or requests in the current windows). Returns whether any room was made.
    mutating func evictIdleUsers(now: Int64) -> Bool {
        var evicted = false
        for (name, slot) in userSlots {
            var candidate = slots[Int(slot)]
            candidate.refillBuckets(now: now)
            guard candidate.isForgettable else { continue }
            userSlots[name] = nil
            index[candidate.scope] = nil
            slots[Int(slot)].isFree = true
            freeSlots.append(slot)
            evicted = true
        }
        return evicted
    }
}

/// One scope's counters. Per-minute limits are token buckets that refill continuously;
/// per-day requests and spend are calendar windows that reset at local midnight (and on the
/// first of the month). Counters may go below zero after a settle that used more than was
/// reserved: the debt is paid back before the next call is admitted.
///
/// Bucket levels are integers in units of 1/60,000,000 of a request or token, so that a
/// bucket of `rate` per minute refills by exactly `rate` units a microsecond: no rounding
/// drift, and equal inputs always give equal answers.
private struct SlotState {
    static let scale: Int64 = 60_000_000
    let scope: Scope
    var limits: Limits
    /// The policy's limits when `limits` is this agent's share of fleet-wide ones.
    var fleet: Limits?
    var isFree = false
    var requestLevel: Int64
    var tokenLevel: Int64
    var lastRefill: Int64 = .min
    var dayNumber: Int64 = .min
    var monthNumber: Int64 = .min
    var dayRequests = 0
    var daySpend = Cost.zero
    var monthSpend = Cost.zero
    var inFlight = 0
    /// Asked since the last ``Limiter/takeDemand(kinds:)``.
    var demandRequests: Int64 = 0
    var demandTokens: Int64 = 0
    var demandCost: Int64 = 0

    init(scope: Scope, limits: Limits) {
        self.scope = scope
        self.limits = limits
        requestLevel = Self.requestCapacity(limits)
        tokenLevel = Self.tokenCapacity(limits)
    }

    /// The most the request bucket holds: its burst when trimmed, else a minute's rate.
    static func requestCapacity(_ limits: Limits) -> Int64 {
        units(min(limits.requestBurst ?? .max, limits.requestsPerMinute ?? 0))
    }

    static func tokenCapacity(_ limits: Limits) -> Int64 {
        units(min(limits.tokenBurst ?? .max, limits.tokensPerMinute ?? 0))
    }

    /// New limits from a reload or a lease: a bucket that did not exist starts full, one that
    /// grew fills at its rate (not at once), one that shrank is cut to its new size unless
    /// `keepingLevels`, and everything already counted stays counted.
    mutating func update(_ newLimits: Limits, keepingLevels: Bool = false) {
        guard newLimits != limits else { return }
        if limits.requestsPerMinute == nil { requestLevel = Self.requestCapacity(newLimits) }
        if limits.tokensPerMinute == nil { tokenLevel = Self.tokenCapacity(newLimits) }
        if !keepingLevels || newLimits.requestsPerMinute == nil {
            requestLevel = min(requestLevel, Self.requestCapacity(newLimits))
        }
        if !keepingLevels || newLimits.tokensPerMinute == nil {
            tokenLevel = min(tokenLevel, Self.tokenCapacity(newLimits))
        }
        limits = newLimits
    }

    static func units(_ count: Int) -> Int64 {
        let (value, overflow) = Int64(count).multipliedReportingOverflow(by: scale)
        return overflow ? .max : value
    }

    mutating func refresh(now: Int64, dayNumber: Int64, monthNumber: Int64) {
        refillBuckets(now: now)
        if dayNumber != self.dayNumber {
            self.dayNumber = dayNumber
            dayRequests = 0
            daySpend = .zero
        }
        if monthNumber != self.monthNumber {
            self.monthNumber = monthNumber
            monthSpend = .zero
        }
    }

    mutating func refillBuckets(now: Int64) {
        if lastRefill == .min {
            lastRefill = now
            return
        }
        // A clock stepping backwards refills nothing, and refilling restarts from its reading.
        guard now > lastRefill else {
            lastRefill = now
            return
        }
        let micros = (now - lastRefill) / 1000
        lastRefill += micros * 1000  // the sub-microsecond rest counts towards the next refill
        requestLevel = Self.refilled(
            requestLevel, micros: micros, perMinute: limits.requestsPerMinute, capacity: Self.requestCapacity(limits))
        tokenLevel = Self.refilled(
            tokenLevel, micros: micros, perMinute: limits.tokensPerMinute, capacity: Self.tokenCapacity(limits))
    }

    /// A bucket above its size (it kept what it held when its share shrank) does not refill
    /// until it is spent below it.
    private static func refilled(_ level: Int64, micros: Int64, perMinute: Int?, capacity: Int64) -> Int64 {
        guard let perMinute, level < capacity else { return level }
        let (gain, overflow) = micros.multipliedReportingOverflow(by: Int64(perMinute))
        let (sum, overflow2) = level.addingReportingOverflow(overflow ? .max : gain)
        return min(capacity, overflow2 ? .max : sum)
    }

    /// Whether a bucket admits a call needing `need` units. A full bucket admits any call the
    /// limit allows at all, going into debt: a share trimmed below one call (a large call
    /// under a small token share, or a burst of less than one request) still passes at its
    /// rate, and the fleet goes over by at most one call per agent.
    private static func admits(level: Int64, need: Int64, perMinute: Int, capacity: Int64) -> Bool {
        level >= need || (perMinute > 0 && level >= 0 && level >= capacity)
    }

    /// The first limit `demand` does not fit, and when it would.
    func refusal(for demand: Demand, now: Int64, nextDayStart: Int64, nextMonthStart: Int64) -> (LimitKind, Int64?)? {
        if let max = limits.maxParallelRequests, inFlight + 1 > max {
            return (.maxParallelRequests, nil)
        }
        if let rpm = limits.requestsPerMinute,
            !Self.admits(level: requestLevel, need: Self.scale, perMinute: rpm, capacity: Self.requestCapacity(limits))
        {
            let wanted = min(Self.scale, max(0, Self.requestCapacity(limits)))
            return (.requestsPerMinute, rpm > 0 ? nanosToRefill(wanted - requestLevel, perMinute: rpm) : nil)
        }
        if let rpd = limits.requestsPerDay, dayRequests + 1 > rpd {
            return (.requestsPerDay, nextDayStart - now)
        }
        if let tpm = limits.tokensPerMinute {
            let need = Self.units(demand.tokens)
            // A demand bigger than the whole limit can never fit: say so rather than inviting
            // a retry that cannot succeed. Under a leased share the fleet's limit is the whole.
            if demand.tokens > (fleet?.tokensPerMinute ?? tpm) { return (.tokensPerMinute, nil) }
            if !Self.admits(level: tokenLevel, need: need, perMinute: tpm, capacity: Self.tokenCapacity(limits)) {
                let wanted = min(need, max(0, Self.tokenCapacity(limits)))
                return (.tokensPerMinute, tpm > 0 ? nanosToRefill(wanted - tokenLevel, perMinute: tpm) : nil)
            }
        }
        if let daily = limits.dailySpend, daySpend + demand.cost > daily {
            return (.dailySpend, demand.cost > daily ? nil : nextDayStart - now)
        }
        if let monthly = limits.monthlySpend, monthSpend + demand.cost > monthly {
            return (.monthlySpend, demand.cost > monthly ? nil : nextMonthStart - now)
        }
        return nil
    }

    /// Time for `units` to flow in at `perMinute` (one unit per microsecond per unit of rate).
    private func nanosToRefill(_ units: Int64, perMinute: Int) -> Int64 {
        // A rate of 0 (an agent holding no share of a fleet limit) never refills on its own.
        guard units > 0 else { return 0 }
        guard perMinute > 0 else { return .max }
        let micros = (units + Int64(perMinute) - 1) / Int64(perMinute)
        return micros.multipliedReportingOverflow(by: 1000).overflow ? .max : micros * 1000
    }

    mutating func take(_ demand: Demand) {
        inFlight += 1
        if limits.requestsPerMinute != nil { requestLevel -= Self.scale }
        if limits.tokensPerMinute != nil {
            tokenLevel = tokenLevel.subtractingReportingOverflow(Self.units(demand.tokens)).partialValue
        }
        dayRequests += 1
        daySpend = daySpend + demand.cost
        monthSpend = monthSpend + demand.cost
    }

    mutating func settle(_ reservation: Reservation, tokens: Int, cost: Cost) {
        inFlight = max(0, inFlight - 1)
        if limits.tokensPerMinute != nil {
            let adjusted = tokenLevel.addingReportingOverflow(
                Self.units(reservation.demand.tokens) &- Self.units(tokens)
            ).partialValue
            tokenLevel = min(max(Self.tokenCapacity(limits), tokenLevel), adjusted)
        }
        // In the window it was reserved in, the estimate is swapped for the actual; if the
        // window rolled meanwhile the estimate went with it, and the actual lands in the new one.
        daySpend = dayNumber == reservation.dayNumber ? daySpend - reservation.demand.cost + cost : daySpend + cost
        monthSpend =
            monthNumber == reservation.monthNumber ? monthSpend - reservation.demand.cost + cost : monthSpend + cost
    }

    mutating func release(_ reservation: Reservation) {
        inFlight = max(0, inFlight - 1)
        if limits.requestsPerMinute != nil {
            requestLevel = min(max(Self.requestCapacity(limits), requestLevel), requestLevel + Self.scale)
        }
        if limits.tokensPerMinute != nil {
            tokenLevel = min(
                max(Self.tokenCapacity(limits), tokenLevel), tokenLevel &+ Self.units(reservation.demand.tokens))
        }
        if dayNumber == reservation.dayNumber {
            dayRequests = max(0, dayRequests - 1)
            daySpend = daySpend - reservation.demand.cost
        }
        if monthNumber == reservation.monthNumber { monthSpend = monthSpend - reservation.demand.cost }
    }

    /// Folds this slot's request and token limits into the tightest seen so far.
    func report(into status: inout RateLimitStatus, now: Int64, nextDayStart: Int64) {
        func tighter(_ candidate: RateLimitStatus.Window, than current: RateLimitStatus.Window?) -> Bool {
            guard let current else { return true }
            return candidate.remaining < current.remaining
                || (candidate.remaining == current.remaining && candidate.limit < current.limit)
        }
        if let rpm = limits.requestsPerMinute {
            let window = RateLimitStatus.Window(
                limit: rpm, remaining: max(0, Int(requestLevel / Self.scale)),
                resetNanoseconds: nanosToRefill(Self.requestCapacity(limits) - requestLevel, perMinute: rpm))
            if tighter(window, than: status.requests) { status.requests = window }
        }
        if let rpd = limits.requestsPerDay {
            let window = RateLimitStatus.Window(
                limit: rpd, remaining: max(0, rpd - dayRequests), resetNanoseconds: nextDayStart - now)
            if tighter(window, than: status.requests) { status.requests = window }
        }
        if let tpm = limits.tokensPerMinute {
            let window = RateLimitStatus.Window(
                limit: tpm, remaining: max(0, Int(tokenLevel / Self.scale)),
                resetNanoseconds: nanosToRefill(Self.tokenCapacity(limits) - tokenLevel, perMinute: tpm))
            if tighter(window, than: status.tokens) { status.tokens = window }
        }
    }

    func denial(kind: LimitKind, demand: Demand, retryNanos: Int64?) -> Denial {
        let rule = "\(scope) \(kind.rawValue)"
        let retry = retryNanos.map { Int(max(1, ($0 + 999_999_999) / 1_000_000_000)) }
        let retryText = retry.map { "; retry in \($0)s" } ?? ""
        /// `(this agent's share of a fleet-wide N)` where the local limit is a lease share.
        func share(_ fleetValue: Int?, _ local: Int?) -> String {
            guard let fleetValue, fleetValue != local else { return "" }
            return " (this agent's share of a fleet-wide \(fleetValue))"
        }
        switch kind {
        case .maxParallelRequests:
            return Denial(
                .parallelLimit,
                "\(scope) allows \(limits.maxParallelRequests ?? 0) parallel requests, and that many are in flight",
                rule: rule, retryAfterSeconds: 1)
        case .requestsPerMinute:
            let rpm = limits.requestsPerMinute ?? 0
            return Denial(
                .rateLimited,
                "rate limit reached: \(scope) allows \(rpm) requests per "
                    + "minute\(share(fleet?.requestsPerMinute, rpm))\(retryText)",
                rule: rule, retryAfterSeconds: retry)
        case .requestsPerDay:
            let perDay = limits.requestsPerDay ?? 0
            return Denial(
                .rateLimited,
                "rate limit reached: \(scope) allows \(perDay) requests per "
                    + "day\(share(fleet?.requestsPerDay, perDay))\(retryText)",
                rule: rule, retryAfterSeconds: retry)
        case .tokensPerMinute:
            let limit = limits.tokensPerMinute ?? 0
            let whole = fleet?.tokensPerMinute ?? limit
            if demand.tokens > whole {
                return Denial(
                    .requestTooLarge,
                    "this request may use up to \(demand.tokens) tokens (prompt estimate + max_tokens),"
                        + " more than the \(whole) tokens per minute \(scope) allows; lower max_tokens",
                    rule: rule)
            }
            return Denial(
                .rateLimited,
                "token rate limit reached: \(scope) allows \(limit) tokens per "
                    + "minute\(share(fleet?.tokensPerMinute, limit))\(retryText)",
                rule: rule, retryAfterSeconds: retry)
        case .dailySpend, .monthlySpend:
            let period = kind == .dailySpend ? "daily" : "monthly"
            let limit = (kind == .dailySpend ? limits.dailySpend : limits.monthlySpend) ?? .zero
            let spent = kind == .dailySpend ? daySpend : monthSpend
            if demand.cost > limit {
                return Denial(
                    .requestTooLarge,
                    "this request may cost up to \(usdText(demand.cost)),"
                        + " more than the \(period) budget of \(usdText(limit)) for \(scope); lower max_tokens",
                    rule: rule)
            }
            let fleetBudget = kind == .dailySpend ? fleet?.dailySpend : fleet?.monthlySpend
            let shareText =
                fleetBudget.map {
                    $0 != limit ? " (this agent's cap under a fleet-wide \(period) budget of \(usdText($0)))" : ""
                } ?? ""
            return Denial(
                .budgetExceeded,
                "\(period) budget exhausted: \(scope) has spent or reserved \(usdText(spent)) of "
                    + "\(usdText(limit))\(shareText)\(retryText)",
                rule: rule, retryAfterSeconds: retry)
        }
    }

    var snapshot: LimitSnapshot {
        LimitSnapshot(
            requestsPerMinute: limits.requestsPerMinute.map { _ in Double(requestLevel) / Double(Self.scale) },
            tokensPerMinute: limits.tokensPerMinute.map { _ in Double(tokenLevel) / Double(Self.scale) },
            requestsPerDay: limits.requestsPerDay.map { $0 - dayRequests },
            parallel: limits.maxParallelRequests.map { $0 - inFlight },
            dailySpend: limits.dailySpend.map { $0 - daySpend },
            monthlySpend: limits.monthlySpend.map { $0 - monthSpend },
            inFlight: inFlight)
    }

    /// Nothing here that a limit still needs: forgetting it cannot let a caller past one.
    var isForgettable: Bool {
        inFlight == 0
            && (limits.requestsPerDay == nil || dayRequests == 0)
            && (limits.dailySpend == nil || daySpend <= .zero)
            && (limits.monthlySpend == nil || monthSpend <= .zero)
            && requestLevel >= Self.requestCapacity(limits)
            && tokenLevel >= Self.tokenCapacity(limits)
    }
}

/// `$1.25`, `$0.000123`: dollars with up to six decimals, for messages.
func usdText(_ cost: Cost) -> String {
    let micros = (cost.picoUSD + 500_000) / 1_000_000
    let whole = micros / 1_000_000
    var fraction = String(micros % 1_000_000)
    fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
    while fraction.count > 2, fraction.hasSuffix("0") { fraction.removeLast() }
    return "$\(whole).\(fraction)"
}
