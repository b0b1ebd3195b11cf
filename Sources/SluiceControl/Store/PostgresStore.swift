import Foundation
import Logging
import PostgresNIO
import SluiceWire

/// The store for several control-plane replicas on one PostgreSQL database.
///
/// Transactions run at READ COMMITTED with explicit row locks taken in one fixed order:
/// every policy write first locks the policy-version row, so policy writes serialise and a
/// reference check cannot race a delete; a usage batch locks its (agent, epoch) mark row,
/// so two replicas given the same batch apply it once. A transaction that still fails with
/// a serialization failure or deadlock is retried.
public final class PostgresStore: Store {
    private let client: PostgresClient
    let logger: Logger
    private let clock: @Sendable () -> Int64

    /// Connects to `postgres://user[:password]@host[:port]/database` (TLS off: use a local
    /// or otherwise protected network path). Queries wait until ``run()`` runs the pool.
    public init(
        url: String, logger: Logger, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) throws {
        guard let components = URLComponents(string: url),
            components.scheme == "postgres" || components.scheme == "postgresql",
            let host = components.host, let user = components.user
        else {
            throw StoreError(
                .invalid, "the database URL must look like postgres://user[:password]@host[:port]/database")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user,
            password: components.password, database: database.isEmpty ? nil : database,
            tls: .disable)
        configuration.options.maximumConnections = 20
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        self.clock = clock
    }

    /// Runs the connection pool until the calling task is cancelled; run it as a child of
    /// whatever uses the store (``ControlPlane`` does), so the pool never outlives its users.
    public func run() async {
        await client.run()
    }

    // MARK: - Schema

    public func migrate() async throws {
        try await transaction { connection in
            // Replicas starting together take turns here.
            try await connection.query("SELECT pg_advisory_xact_lock(7423990)", logger: self.logger)
            for statement in [
                "CREATE TABLE IF NOT EXISTS sluice_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
                "INSERT INTO sluice_meta (name, value) VALUES ('policy_version', 1), ('schema_version', 1),"
                    + " ('agents_generation', 1)"
                    + " ON CONFLICT (name) DO NOTHING",
                """
                CREATE TABLE IF NOT EXISTS entities (kind TEXT NOT NULL, name TEXT NOT NULL, team TEXT, project TEXT,
                    body TEXT NOT NULL,
                    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (kind, name))
                """,
                "CREATE INDEX IF NOT EXISTS entities_team ON entities (team)",
                "CREATE INDEX IF NOT EXISTS entities_project ON entities (project)",
                "CREATE TABLE IF NOT EXISTS settings (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL)",
                "CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,"
                    + " created_at BIGINT NOT NULL)",
                "ALTER TABLE agents ADD COLUMN IF NOT EXISTS service TEXT",
                """
                CREATE TABLE IF NOT EXISTS admin_changes (seq BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, actor TEXT
                    NOT NULL,
                    action TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, fields TEXT NOT NULL)
                """,
                "CREATE INDEX IF NOT EXISTS admin_changes_at ON admin_changes (at)",
                "CREATE TABLE IF NOT EXISTS notices (key TEXT PRIMARY KEY, sent_at BIGINT NOT NULL)",
                """
                CREATE TABLE IF NOT EXISTS usage_marks (agent_id TEXT NOT NULL, epoch TEXT NOT NULL, sequence BIGINT
                    NOT NULL,
                    updated_at BIGINT NOT NULL, PRIMARY KEY (agent_id, epoch))
                """,
                """
                CREATE TABLE IF NOT EXISTS usage_rollups (granularity TEXT NOT NULL, start BIGINT NOT NULL, team TEXT
                    NOT NULL,
                    project TEXT NOT NULL, service TEXT NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL, requests
                        BIGINT NOT NULL,
                    prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, cost_pico BIGINT NOT NULL,
                    PRIMARY KEY (granularity, start, team, project, service, key_id, model))
                """,
                """
                CREATE TABLE IF NOT EXISTS lease_claims (lease_key TEXT NOT NULL, instance TEXT NOT NULL,
                    demand DOUBLE PRECISION NOT NULL, limit_value BIGINT NOT NULL, held BIGINT, own BIGINT NOT NULL,
                    seen_at BIGINT NOT NULL, delivered BIGINT, granted BIGINT, granted_burst BIGINT,
                    PRIMARY KEY (lease_key, instance))
                """,
                """
                CREATE TABLE IF NOT EXISTS denial_rollups (granularity TEXT NOT NULL, start BIGINT NOT NULL, team TEXT
                    NOT NULL,
                    project TEXT NOT NULL, service TEXT NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL, reason
                        TEXT NOT NULL,
                    count BIGINT NOT NULL, PRIMARY KEY (granularity, start, team, project, service, key_id, model,
                        reason))
                """,
                // Columns added after the first release, for databases made before them.
                "ALTER TABLE usage_rollups ADD COLUMN IF NOT EXISTS cached_tokens BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE usage_rollups ADD COLUMN IF NOT EXISTS cache_creation_tokens BIGINT NOT NULL DEFAULT 0",
            ] {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
            }
        }
    }

    // MARK: - Entities

    @discardableResult
    public func change(_ plan: @escaping PolicyPlan) async throws -> PolicyWrite {
        let now = clock()
        return try await transaction { connection in
            // The lock first: the snapshot `plan` sees is then the one the change applies to.
            let version = try await self.lockPolicy(connection)
            let change = try plan(try await self.readSnapshot(connection))
            switch change {
            case .put(let entity, let mode):
                try await self.put(entity, mode: mode, now: now, connection)
            case .delete(let kind, let name):
                try await self.delete(kind, name: name, connection)
            case .settings(let settings):
                let body = try EntityCoding.encodeSettings(settings)
                try await connection.query(
                    """
                    INSERT INTO settings (id, body) VALUES (1, \(body))
                    ON CONFLICT (id) DO UPDATE SET body = excluded.body
                    """,
                    logger: self.logger)
            }
            return PolicyWrite(version: try await self.bump(connection, from: version), change: change)
        }
    }

    private func put(_ entity: Entity, mode: PutMode, now: Int64, _ connection: PostgresConnection) async throws {
        let body = try EntityCoding.encode(entity)
        let kind = entity.kind.rawValue
        let name = entity.name
        let exists = try await self.exists(connection, kind: kind, name: name)
        switch mode {
        case .create where exists: throw StoreError(.conflict, "\(kind) \"\(name)\" already exists")
        case .update where !exists: throw StoreError(.notFound, "no \(kind) \"\(name)\"")
        default: break
        }
        for (requiredKind, requiredName) in References.required(by: entity) {
            guard try await self.exists(connection, kind: requiredKind.rawValue, name: requiredName) else {
                throw StoreError(
                    .invalid,
                    "\(kind) \"\(name)\" refers to \(requiredKind.rawValue) \"\(requiredName)\","
                        + " which does not exist"
                )
            }
        }
        if let project = entity.project, let team = entity.team {
            let owner =
                try await connection.query(
                    "SELECT team FROM entities WHERE kind = 'project' AND name = \(project)", logger: self.logger
                )
                .decode(String?.self).first(where: { _ in true }) ?? nil
            guard owner == team else {
                throw StoreError(
                    .invalid, "project \"\(project)\" belongs to team \"\(owner ?? "?")\", not \"\(team)\"")
            }
        }
        try await connection.query(
            """
            INSERT INTO entities (kind, name, team, project, body, created_at, updated_at)
            VALUES (\(kind), \(name), \(entity.team), \(entity.project), \(body), \(now), \(now))
            ON CONFLICT (kind, name) DO UPDATE SET team = excluded.team, project = excluded.project, body =
                excluded.body,
                updated_at = excluded.updated_at
            """, logger: self.logger)
    }

    public func entity(_ kind: EntityKind, name: String) async throws -> Entity? {
        let rows = try await client.query(
            "SELECT body FROM entities WHERE kind = \(kind.rawValue) AND name = \(name)", logger: logger)
        for try await body in rows.decode(String.self) { return try EntityCoding.decode(kind, body) }
        return nil
    }

    public func entities(_ kind: EntityKind) async throws -> [Entity] {
        var result: [Entity] = []
        let rows = try await client.query(
            "SELECT body FROM entities WHERE kind = \(kind.rawValue) ORDER BY name", logger: logger)
        for try await body in rows.decode(String.self) { result.append(try EntityCoding.decode(kind, body)) }
        return result
    }

    private func delete(_ kind: EntityKind, name: String, _ connection: PostgresConnection) async throws {
        guard try await self.exists(connection, kind: kind.rawValue, name: name) else {
            throw StoreError(.notFound, "no \(kind.rawValue) \"\(name)\"")
        }
        if kind == .team || kind == .project {
            let query: PostgresQuery =
                kind == .team
                ? """
                SELECT kind || ' "' || name || '"' FROM entities WHERE team = \(name)
                ORDER BY kind, name LIMIT 5
                """
                : """
                SELECT kind || ' "' || name || '"' FROM entities WHERE project = \(name)
                ORDER BY kind, name LIMIT 5
                """
            var users: [String] = []
            for try await user in try await connection.query(query, logger: self.logger).decode(String.self) {
                users.append(user)
            }
            guard users.isEmpty else {
                throw StoreError(
                    .conflict,
                    "\(kind.rawValue) \"\(name)\" is still used by \(users.joined(separator: ", "));"
                        + " delete or move those first"
                )
            }
        }
        try await connection.query(
            "DELETE FROM entities WHERE kind = \(kind.rawValue) AND name = \(name)", logger: self.logger)
    }

    public func settings() async throws -> SettingsDocument {
        let rows = try await client.query("SELECT body FROM settings WHERE id = 1", logger: logger)
        for try await body in rows.decode(String.self) { return try EntityCoding.decodeSettings(body) }
        return SettingsDocument()
    }

    public func snapshot() async throws -> PolicySnapshot {
        // REPEATABLE READ: the version and the rows come from one snapshot.
        try await transaction(isolation: "REPEATABLE READ READ ONLY") { connection in
            try await self.readSnapshot(connection)
        }
    }

    /// The policy as `connection`'s transaction sees it.
    private func readSnapshot(_ connection: PostgresConnection) async throws -> PolicySnapshot {
        var version: Int64 = 0
        for try await value in try await connection.query(
            "SELECT value FROM sluice_meta WHERE name = 'policy_version'", logger: logger
        )
        .decode(Int64.self) { version = value }
        var entities: [Entity] = []
        for try await (kind, body) in try await connection.query(
            "SELECT kind, body FROM entities ORDER BY kind, name", logger: logger
        )
        .decode((String, String).self) {
            guard let entityKind = EntityKind(rawValue: kind) else {
                throw StoreError(.invalid, "unknown entity kind \(kind) in the store")
            }
            entities.append(try EntityCoding.decode(entityKind, body))
        }
        var settings = SettingsDocument()
        for try await body in try await connection.query(
            "SELECT body FROM settings WHERE id = 1", logger: logger
        ).decode(String.self) {
            settings = try EntityCoding.decodeSettings(body)
        }
        return PolicySnapshot(version: version, entities: entities, settings: settings)
    }

    public func policyVersion() async throws -> Int64 {
        try await meta("policy_version")
    }

    /// A counter in `sluice_meta` (0 when it is missing).
    private func meta(_ name: String) async throws -> Int64 {
        for try await value in try await client.query(
            "SELECT value FROM sluice_meta WHERE name = \(name)", logger: logger
        ).decode(Int64.self) {
            return value
        }
        return 0
    }

    private func lockPolicy(_ connection: PostgresConnection) async throws -> Int64 {
        for try await value in try await connection.query(
            "SELECT value FROM sluice_meta WHERE name = 'policy_version' FOR UPDATE", logger: logger
        )
        .decode(Int64.self) { return value }
        throw StoreError(.invalid, "the store is not migrated")
    }

    private func bump(_ connection: PostgresConnection, from version: Int64) async throws -> Int64 {
        try await connection.query(
            "UPDATE sluice_meta SET value = \(version + 1) WHERE name = 'policy_version'", logger: logger)
        return version + 1
    }

    private func exists(_ connection: PostgresConnection, kind: String, name: String) async throws -> Bool {
        for try await _ in try await connection.query(
            "SELECT 1 FROM entities WHERE kind = \(kind) AND name = \(name)", logger: logger
        ).decode(Int32.self) {
            return true
        }
        return false
    }

    // MARK: - Usage

    public func apply(_ batch: UsageBatch) async throws -> UsageAck {
        try batch.validateForStore()
        return try await apply(group: [batch])[0]
    }

    /// Eight of the pool's twenty connections: groups form only when that many are busy.
    public var usageWriters: Int { 8 }

    public func apply(group batches: [UsageBatch]) async throws -> [UsageAck] {
        guard !batches.isEmpty else { return [] }
        let now = clock()
        let keys = GroupMarks.keys(batches)
        return try await transaction { connection in
            // The mark rows exist before they are locked, so two first batches cannot both
            // pass; they are locked in one order, so two groups queue instead of deadlocking.
            try await connection.query(
                """
                INSERT INTO usage_marks (agent_id, epoch, sequence, updated_at)
                SELECT agent, epoch, 0, \(now) FROM UNNEST(\(keys.map(\.agentID))::text[], \(keys.map(\.epoch))::text[])
                    AS k(agent, epoch)
                ON CONFLICT (agent_id, epoch) DO NOTHING
                """, logger: self.logger)
            var stored: [GroupMarks.Key: Int64] = [:]
            for try await (agent, epoch, sequence) in try await connection.query(
                """
                SELECT m.agent_id, m.epoch, m.sequence FROM usage_marks m
                JOIN UNNEST(\(keys.map(\.agentID))::text[], \(keys.map(\.epoch))::text[]) AS k(agent, epoch)
                    ON m.agent_id = k.agent AND m.epoch = k.epoch
                ORDER BY m.agent_id, m.epoch FOR UPDATE OF m
                """,
                logger: self.logger
            ).decode((String, String, Int64).self) { stored[GroupMarks.Key(agentID: agent, epoch: epoch)] = sequence }
            let marks = GroupMarks(stored: stored, batches: batches)
            guard !marks.fresh.isEmpty else { return marks.acks }
            // The agents' own marks first: the shared cells below stay locked until commit.
            let raised = marks.raisedInOrder
            try await connection.query(
                """
                UPDATE usage_marks m SET sequence = r.sequence, updated_at = \(now)
                FROM UNNEST(\(raised.map(\.key.agentID))::text[], \(raised.map(\.key.epoch))::text[],
                    \(raised.map(\.sequence))::int8[]) AS r(agent, epoch, sequence)
                WHERE m.agent_id = r.agent AND m.epoch = r.epoch
                """, logger: self.logger)
            // Each cell once, in one statement per table, in a fixed order: a group holds
            // the rows many agents add to (one service's hour) for as short a time as it can.
            let cells = RollupCells(deltas: marks.fresh.lazy.flatMap(\.deltas))
            if !cells.usage.isEmpty {
                let rows = cells.usage
                try await connection.query(
                    """
                    INSERT INTO usage_rollups (granularity, start, team, project, service, key_id, model,
                                               requests, prompt_tokens, completion_tokens, cost_pico, cached_tokens,
                                               cache_creation_tokens)
                    SELECT * FROM UNNEST(\(rows.map(\.cell.granularity))::text[], \(rows.map(\.cell.start))::int8[],
                        \(rows.map(\.cell.team))::text[], \(rows.map(\.cell.project))::text[],
                        \(rows.map(\.cell.service))::text[], \(rows.map(\.cell.keyID))::text[],
                        \(rows.map(\.cell.model))::text[], \(rows.map(\.totals.requests))::int8[],
                        \(rows.map(\.totals.promptTokens))::int8[], \(rows.map(\.totals.completionTokens))::int8[],
                        \(rows.map(\.totals.costPicoUSD))::int8[], \(rows.map(\.totals.cachedPromptTokens))::int8[],
                        \(rows.map(\.totals.cacheCreationTokens))::int8[])
                    ON CONFLICT (granularity, start, team, project, service, key_id, model) DO UPDATE SET
                        requests = usage_rollups.requests + excluded.requests,
                        prompt_tokens = usage_rollups.prompt_tokens + excluded.prompt_tokens,
                        completion_tokens = usage_rollups.completion_tokens + excluded.completion_tokens,
                        cost_pico = usage_rollups.cost_pico + excluded.cost_pico,
                        cached_tokens = usage_rollups.cached_tokens + excluded.cached_tokens,
                        cache_creation_tokens = usage_rollups.cache_creation_tokens + excluded.cache_creation_tokens
                    """, logger: self.logger)
            }
            if !cells.denials.isEmpty {
                let rows = cells.denials
                try await connection.query(
                    """
                    INSERT INTO denial_rollups (granularity, start, team, project, service, key_id, model, reason,
                                                count)
                    SELECT * FROM UNNEST(\(rows.map(\.cell.granularity))::text[], \(rows.map(\.cell.start))::int8[],
                        \(rows.map(\.cell.team))::text[], \(rows.map(\.cell.project))::text[],
                        \(rows.map(\.cell.service))::text[], \(rows.map(\.cell.keyID))::text[],
                        \(rows.map(\.cell.model))::text[], \(rows.map(\.reason))::text[], \(rows.map(\.count))::int8[])
                    ON CONFLICT (granularity, start, team, project, service, key_id, model, reason) DO UPDATE SET
                        count = denial_rollups.count + excluded.count
                    """, logger: self.logger)
            }
            return marks.acks
        }
    }

    public func usage(_ query: UsageQuery) async throws -> [UsageRow] {
        /// Each row of `statement`: the group (its first columns), and the decoded rest.
        func rows<Value>(
            _ statement: (sql: String, arguments: [Int64]),
            _ decode: (PostgresRandomAccessRow, Int) throws -> Value
        ) async throws -> [([String: String], Value)] {
            var binds = PostgresBindings()
            for argument in statement.arguments { binds.append(argument) }
            var result: [([String: String], Value)] = []
            for try await row in try await client.query(
                PostgresQuery(unsafeSQL: statement.sql, binds: binds), logger: logger)
            {
                let columns = row.makeRandomAccess()
                var group: [String: String] = [:]
                for (index, dimension) in query.groupBy.enumerated() {
                    group[dimension.rawValue] =
                        dimension.isTime
                        ? String(try columns[index].decode(Int64.self)) : try columns[index].decode(String.self)
                }
                result.append((group, try decode(columns, query.groupBy.count)))
            }
            return result
        }
        let usage = try await rows(UsageSQL.select(query) { "$\($0)" }) { columns, base in
            (
                try columns[base].decode(Int64.self), try columns[base + 1].decode(Int64.self),
                try columns[base + 2].decode(Int64.self), try columns[base + 3].decode(Int64.self),
                try columns[base + 4].decode(Int64.self), try columns[base + 5].decode(Int64.self)
            )
        }.map { group, sums in
            UsageRow(
                group: group, requests: sums.0, promptTokens: sums.1, completionTokens: sums.2,
                cachedPromptTokens: sums.4, cacheCreationTokens: sums.5, costPicoUSD: sums.3)
        }
        let denials = try await rows(UsageSQL.denials(query) { "$\($0)" }) { columns, base in
            (try columns[base].decode(String.self), try columns[base + 1].decode(Int64.self))
        }.map { group, refused in (group: group, reason: refused.0, count: refused.1) }
        return UsageSQL.attach(denials, to: usage, limit: query.limit)
    }

    @discardableResult
    public func bumpPolicyVersion() async throws -> Int64 {
        try await transaction { connection in
            let version = try await self.lockPolicy(connection)
            return try await self.bump(connection, from: version)
        }
    }

    public func recordNotice(_ key: String) async throws -> Bool {
        let now = clock()
        var inserted = false
        for try await _ in try await client.query(
            "INSERT INTO notices (key, sent_at) VALUES (\(key), \(now)) ON CONFLICT (key) DO NOTHING RETURNING 1",
            logger: logger
        ).decode(Int32.self) { inserted = true }
        return inserted
    }

    // MARK: - Agents

    public func registerAgent(id: String, tokenHash: String, service: String?) async throws {
        let now = clock()
        try await client.query(
            """
            WITH raised AS (UPDATE sluice_meta SET value = value + 1 WHERE name = 'agents_generation')
            INSERT INTO agents (id, token_hash, created_at, service) VALUES (\(id), \(tokenHash), \(now), \(service))
            ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash, service = excluded.service
            """, logger: logger)
    }

    public func agent(tokenHash: String) async throws -> AgentRecord? {
        let rows = try await client.query(
            "SELECT id, service, created_at FROM agents WHERE token_hash = \(tokenHash)", logger: logger)
        for try await (id, service, createdAt) in rows.decode((String, String?, Int64).self) {
            return AgentRecord(id: id, service: service, createdAt: createdAt)
        }
        return nil
    }

    public func agents() async throws -> [AgentRecord] {
        var records: [AgentRecord] = []
        let rows = try await client.query("SELECT id, service, created_at FROM agents ORDER BY id", logger: logger)
        for try await (id, service, createdAt) in rows.decode((String, String?, Int64).self) {
            records.append(AgentRecord(id: id, service: service, createdAt: createdAt))
        }
        return records
    }

    public func recordAdminChange(_ change: AdminChange) async throws {
        let fields = change.fields.joined(separator: ",")
        try await client.query(
            """
            INSERT INTO admin_changes (at, actor, action, kind, name, fields)
            VALUES (\(change.at), \(change.actor), \(change.action), \(change.kind), \(change.name), \(fields))
            """, logger: logger)
    }

    public func adminChanges(since: Int64, limit: Int) async throws -> [AdminChange] {
        var changes: [AdminChange] = []
        let rows = try await client.query(
            """
            SELECT at, actor, action, kind, name, fields FROM admin_changes WHERE at >= \(since)
            ORDER BY seq LIMIT \(limit)
            """,
            logger: logger)
        for try await (at, actor, action, kind, name, fields) in rows.decode(
            (Int64, String, String, String, String, String).self)
        {
            changes.append(
                AdminChange(
                    at: at, actor: actor, action: action, kind: kind, name: name,
                    fields: fields.isEmpty ? [] : fields.split(separator: ",").map(String.init)))
        }
        return changes
    }

    public func deleteAgent(id: String) async throws -> Bool {
        var deleted = false
        let statement: PostgresQuery = """
            WITH deleted AS (DELETE FROM agents WHERE id = \(id) RETURNING 1),
                raised AS (UPDATE sluice_meta SET value = value + 1 WHERE name = 'agents_generation'
                    AND EXISTS (SELECT 1 FROM deleted))
            SELECT 1 FROM deleted
            """
        for try await _ in try await client.query(statement, logger: logger).decode(Int32.self) {
            deleted = true
        }
        return deleted
    }

    public func agentTokensGeneration() async throws -> Int64 {
        try await meta("agents_generation")
    }

    public func pruneUsage(hourlyBefore: Int64, dailyBefore: Int64, marksBefore: Int64, limit: Int) async throws
        -> Int
    {
        let limit = Int64(limit)
        var deleted = 0
        for (table, granularity, before) in [
            ("usage_rollups", "hour", hourlyBefore), ("usage_rollups", "day", dailyBefore),
            ("denial_rollups", "hour", hourlyBefore), ("denial_rollups", "day", dailyBefore),
        ] {
            // Each statement is its own short transaction: ingests wait on at most one batch.
            let rows = try await client.query(
                PostgresQuery(
                    unsafeSQL: """
                        DELETE FROM \(table) WHERE ctid IN (SELECT ctid FROM \(table)
                            WHERE granularity = $1 AND start < $2 LIMIT $3) RETURNING 1
                        """, binds: try Self.binds(granularity, before, limit)),
                logger: logger)
            for try await _ in rows { deleted += 1 }
        }
        for try await _ in try await client.query(
            """
            DELETE FROM usage_marks WHERE ctid IN (SELECT ctid FROM usage_marks WHERE updated_at < \(marksBefore)
                LIMIT \(limit)) RETURNING 1
            """, logger: logger)
        {
            deleted += 1
        }
        return deleted
    }

    private static func binds(_ granularity: String, _ before: Int64, _ limit: Int64) throws -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(granularity)
        binds.append(before)
        binds.append(limit)
        return binds
    }

    // MARK: - Transactions

    /// Runs `body` on one pooled connection, outside any transaction.
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws
        -> T
    {
        try await client.withConnection { try await body($0) }
    }

    /// Runs `body` in a transaction, retrying on serialization failure (40001) or deadlock
    /// (40P01). Errors thrown by `body` itself surface unchanged.
    func transaction<T: Sendable>(
        isolation: String = "READ COMMITTED",
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await client.withConnection { connection in
                    try await connection.query(
                        PostgresQuery(unsafeSQL: "BEGIN ISOLATION LEVEL \(isolation)"), logger: self.logger)
                    do {
                        let result = try await body(connection)
                        try await connection.query("COMMIT", logger: self.logger)
                        return result
                    } catch {
                        _ = try? await connection.query("ROLLBACK", logger: self.logger)
                        throw error
                    }
                }
            } catch let error as PSQLError where Self.isRetryable(error) && attempt < 8 {
                attempt += 1
                try await Task.sleep(for: .milliseconds(Int64.random(in: 5...20) * Int64(attempt)))
            }
        }
    }

    private static func isRetryable(_ error: PSQLError) -> Bool {
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40001" || state == "40P01"
    }
}
