@testable import SluicePolicy
import Testing

@Suite("Leases: one replica allocating every agent's share at once")
struct LeaseAllocationTests {
    @Test("rates: max-min fair shares; bursts grow only into room no bucket occupies")
    func rates() {
        // a went quiet holding 200 of the 240; b is busy and new.
        let holders = [
            LeaseAllocation.Holder(agent: "a", demand: 10, held: 200, delivered: 240),
            LeaseAllocation.Holder(agent: "b", demand: 1_000, held: 0, delivered: nil),
        ]
        let grants = LeaseAllocation.rates(limit: 240, holders: holders, minimumPercent: 50)
        let a = grants["a"]!
        let b = grants["b"]!
        #expect(a.perMinute + b.perMinute == 240)
        // a still enforces its 240 until it renews: b's bucket may not fill at all yet.
        #expect(b.burst == 0)
        // Once a has taken its smaller size and spent down, b may fill to its whole share.
        let later = LeaseAllocation.rates(
            limit: 240,
            holders: [
                .init(agent: "a", demand: 10, held: 2, delivered: a.burst ?? a.perMinute),
                .init(agent: "b", demand: 1_000, held: 0, delivered: b.burst ?? b.perMinute),
            ], minimumPercent: 50)
        #expect(later["b"]!.burst == nil)
    }

    @Test("rates: whatever was held and delivered, the buckets together never pass the limit")
    func ratesNeverOverfill() {
        // Found by the random rounds below: the fleet already over its limit (no room) while
        // no agent is short of its target.
        #expect(LeaseAllocation.grow(occupied: [5, 3], targets: [4, 3], room: -2) == [5, 3])
        #expect(LeaseAllocation.grow(occupied: [1, 1], targets: [3, 1], room: -2) == [1, 1])
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<1_000 {
            let limit = Int.random(in: 10...10_000, using: &generator)
            let holders = (0..<Int.random(in: 1...30, using: &generator)).map { index in
                LeaseAllocation.Holder(
                    agent: "agent-\(index)", demand: Double.random(in: 0...Double(limit), using: &generator),
                    held: Int.random(in: 0...(limit / 10), using: &generator),
                    delivered: Bool.random(using: &generator)
                        ? nil : Int.random(in: 0...(limit / 10), using: &generator))
            }
            let grants = LeaseAllocation.rates(limit: limit, holders: holders, minimumPercent: 50)
            #expect(grants.values.map(\.perMinute).reduce(0, +) == limit)
            let occupiedBefore = holders.map { max($0.held ?? 0, $0.delivered ?? 0) }.reduce(0, +)
            // Until each answer arrives, an agent may fill to its old size or its new one.
            let occupiedAfter = holders.map { holder in
                let grant = grants[holder.agent]!
                return max(holder.held ?? 0, holder.delivered ?? 0, grant.burst ?? grant.perMinute)
            }.reduce(0, +)
            #expect(occupiedAfter <= max(limit, occupiedBefore))
        }
    }

    @Test("quotas: caps never add up to more than the quota less what gone agents used; give-backs wait")
    func quotas() {
        // 1000 a day; the rollups show 300 used, 100 of it by agents no longer active.
        let holders = [
            LeaseAllocation.Holder(agent: "a", demand: 1_000, own: 150, delivered: 600),
            LeaseAllocation.Holder(agent: "b", demand: 1_000, own: 50, delivered: 60),
            LeaseAllocation.Holder(agent: "c", demand: 1_000, own: 0, delivered: nil),
        ]
        let caps = LeaseAllocation.quotas(limit: 1_000, used: 300, holders: holders, minimumPercent: 50)
        // Unused: 1000 − 100 − 200 = 700, about 233 each: a gives back to 384 but enforces 600
        // until told, so b and c share only the 1000 − 100 − 600 − 60 = 240 of room left.
        #expect(caps["a"] == 384)
        #expect(caps["b"]! > 60 && caps["c"]! > 0)
        let occupied = holders.map { holder in max(holder.own, holder.delivered ?? 0, caps[holder.agent]!) }
        #expect(occupied.reduce(0, +) <= 900)
    }

    @Test("quotas: random fleets never get more than the quota, and a cap never falls below its use")
    func quotasNeverOvergrant() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<1_000 {
            let limit = Int.random(in: 0...1_000_000, using: &generator)
            let holders = (0..<Int.random(in: 1...20, using: &generator)).map { index in
                LeaseAllocation.Holder(
                    agent: "agent-\(index)", demand: Double.random(in: 0...1_000, using: &generator),
                    own: Int.random(in: 0...(limit / 20 + 1), using: &generator),
                    delivered: Bool.random(using: &generator) ? nil : Int.random(in: 0...(limit / 10 + 1)))
            }
            let used = holders.map(\.own).reduce(0, +) + Int.random(in: 0...(limit / 5 + 1), using: &generator)
            let caps = LeaseAllocation.quotas(limit: limit, used: used, holders: holders, minimumPercent: 50)
            let departed = used - holders.map(\.own).reduce(0, +)
            let before = holders.map { max($0.own, $0.delivered ?? 0) }.reduce(0, +)
            let after = holders.map { max($0.own, $0.delivered ?? 0, caps[$0.agent]!) }.reduce(0, +)
            #expect(after <= max(limit - departed, before))
            #expect(holders.allSatisfy { caps[$0.agent]! >= $0.own })
        }
    }
}
