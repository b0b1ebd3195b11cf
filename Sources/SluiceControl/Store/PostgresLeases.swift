import Logging
import PostgresNIO

/// One agent's claim on one fleet-wide limit, as a replica records it on renewal and the
/// elected replica reads it to allocate.
public struct LeaseClaimRecord: Sendable, Equatable {
    /// `kind/scope/limit`.
    public var key: String
    /// `agent id/instance`.
    public var instance: String
    public var demand: Double
    public var limitValue: Int64
    /// Rates: what the agent's bucket held.
    public var held: Int64?
    /// Quotas: the agent's own use in the window.
    public var own: Int64
    /// What the agent enforces now: a rate's bucket size or a quota's cap.
    public var delivered: Int64?

    public init(
        key: String, instance: String, demand: Double, limitValue: Int64, held: Int64?, own: Int64,
        delivered: Int64?
    ) {
        self.key = key
        self.instance = instance
        self.demand = demand
        self.limitValue = limitValue
        self.held = held
        self.own = own
        self.delivered = delivered
    }
}

/// What the elected replica last allocated to one claim.
public struct StoredLeaseGrant: Sendable, Equatable {
    public var key: String
    public var instance: String
    public var amount: Int64
    public var burst: Int64?

    public init(key: String, instance: String, amount: Int64, burst: Int64?) {
        self.key = key
        self.instance = instance
        self.amount = amount
        self.burst = burst
    }
}

/// Lease state shared by every replica through the database: each renewal records its claims
/// and takes the grants allocated so far; one replica at a time, holding a session advisory
/// lock, allocates every claim's grant. Times are the database's clock, so replicas' clocks
/// need not agree.
extension PostgresStore {
    /// The advisory lock the allocating replica holds for as long as it allocates.
    static let leaseLeaderLock: Int64 = 7_423_991

    /// Records `claims` (seen now) and returns each one's grant as last allocated, by key;
    /// those grants are what the agent enforces from now on (its delivered grant). A claim
    /// seen for the first time is recorded with `delivered` as given: what the agent enforces
    /// without a grant.
    public func recordLeaseClaims(_ claims: [LeaseClaimRecord]) async throws -> [String: StoredLeaseGrant] {
        guard !claims.isEmpty else { return [:] }
        return try await withConnection { connection in
            var grants: [String: StoredLeaseGrant] = [:]
            for claim in claims {
                let rows = try await connection.query(
                    """
                    INSERT INTO lease_claims AS c (lease_key, instance, demand, limit_value, held, own, seen_at,
                        delivered)
                    VALUES (\(claim.key), \(claim.instance), \(claim.demand), \(claim.limitValue), \(claim.held),
                        \(claim.own), (extract(epoch FROM clock_timestamp()) * 1000)::bigint, \(claim.delivered))
                    ON CONFLICT (lease_key, instance) DO UPDATE SET demand = excluded.demand,
                        limit_value = excluded.limit_value, held = excluded.held, own = excluded.own,
                        seen_at = excluded.seen_at,
                        delivered = CASE WHEN c.granted IS NULL THEN c.delivered
                            ELSE COALESCE(c.granted_burst, c.granted) END
                    RETURNING granted, granted_burst
                    """, logger: self.logger)
                for try await (granted, burst) in rows.decode((Int64?, Int64?).self) {
                    if let granted {
                        grants[claim.key] = StoredLeaseGrant(
                            key: claim.key, instance: claim.instance, amount: granted, burst: burst)
                    }
                }
            }
            return grants
        }
    }

    /// Agent instances with a claim seen in the last `seconds`.
    public func activeLeaseInstances(withinSeconds seconds: Int) async throws -> Int {
        let rows = try await withConnection { connection in
            try await connection.query(
                """
                SELECT count(DISTINCT instance) FROM lease_claims
                WHERE seen_at >= (extract(epoch FROM clock_timestamp()) * 1000)::bigint - \(Int64(seconds) * 1000)
                """, logger: self.logger
            ).collect()
        }
        return try rows.first.map { try Int($0.decode(Int64.self)) } ?? 0
    }

    /// Runs `body` while this replica holds the allocation lock, on the connection holding
    /// it; returns false at once when another replica holds it. The lock goes with the
    /// session, so a replica that dies or loses its connection frees it for the next.
    public func whileLeaseLeader(_ body: @escaping @Sendable (LeaseLeaderSession) async throws -> Void) async throws
        -> Bool
    {
        try await withConnection { connection in
            let rows = try await connection.query(
                "SELECT pg_try_advisory_lock(\(Self.leaseLeaderLock))", logger: self.logger
            ).collect()
            guard try rows.first?.decode(Bool.self) == true else { return false }
            do {
                try await body(LeaseLeaderSession(connection: connection, logger: self.logger))
            } catch {
                _ = try? await connection.query(
                    "SELECT pg_advisory_unlock(\(Self.leaseLeaderLock))", logger: self.logger)
                throw error
            }
            _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.leaseLeaderLock))", logger: self.logger)
            return true
        }
    }
}

/// The allocating replica's side: read the live claims, write the grants.
public struct LeaseLeaderSession: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// Claims seen in the last `activeSeconds`, after forgetting those not seen for twice that.
    public func liveClaims(activeSeconds: Int) async throws -> [LeaseClaimRecord] {
        let window = Int64(activeSeconds) * 1000
        try await connection.query(
            """
            DELETE FROM lease_claims
            WHERE seen_at < (extract(epoch FROM clock_timestamp()) * 1000)::bigint - \(2 * window)
            """, logger: logger)
        let rows = try await connection.query(
            """
            SELECT lease_key, instance, demand, limit_value, held, own, delivered FROM lease_claims
            WHERE seen_at >= (extract(epoch FROM clock_timestamp()) * 1000)::bigint - \(window)
            """, logger: logger)
        var claims: [LeaseClaimRecord] = []
        for try await (key, instance, demand, limitValue, held, own, delivered) in rows.decode(
            (String, String, Double, Int64, Int64?, Int64, Int64?).self)
        {
            claims.append(
                LeaseClaimRecord(
                    key: key, instance: instance, demand: demand, limitValue: limitValue, held: held, own: own,
                    delivered: delivered))
        }
        return claims
    }

    /// Writes the grants, in one statement. Rows whose grant is unchanged are left alone: at
    /// thousands of claims most grants stay the same from one second to the next, and each
    /// row written would also wait on, and hold up, that agent's next renewal.
    public func grant(_ grants: [StoredLeaseGrant]) async throws {
        guard !grants.isEmpty else { return }
        let keys = grants.map(\.key)
        let instances = grants.map(\.instance)
        let amounts = grants.map(\.amount)
        // -1 stands for no burst: the arrays carry no NULLs.
        let bursts = grants.map { $0.burst ?? -1 }
        try await connection.query(
            """
            UPDATE lease_claims AS c SET granted = u.amount, granted_burst = NULLIF(u.burst, -1)
            FROM UNNEST(\(keys)::text[], \(instances)::text[], \(amounts)::int8[], \(bursts)::int8[])
                AS u(lease_key, instance, amount, burst)
            WHERE c.lease_key = u.lease_key AND c.instance = u.instance
                AND (c.granted IS DISTINCT FROM u.amount OR c.granted_burst IS DISTINCT FROM NULLIF(u.burst, -1))
            """, logger: logger)
    }
}
