import Foundation
import GRDB
import SluiceWire

/// The embedded store: one SQLite file in WAL mode, so reads never wait for the writer.
/// Writes take the lock up front (`BEGIN IMMEDIATE`) and wait up to the busy timeout for
/// another process; a write that still finds the database busy is retried a few times.
public final class SQLiteStore: Store {
    private let pool: DatabasePool
    private let clock: @Sendable () -> Int64

    /// - Parameters:
    ///   - path: the database file (created with its directory's permissions).
    ///   - clock: Unix seconds, injected so tests control `created_at`/`updated_at`.
    public init(path: String, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.foreignKeysEnabled = true
        pool = try DatabasePool(path: path, configuration: configuration)
        self.clock = clock
    }

    // MARK: - Schema

    public func migrate() async throws {
        try await write { db in
            // Each statement is idempotent, so every replica may run them at every start.
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS sluice_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                    INSERT INTO sluice_meta (name, value) VALUES ('policy_version', 1), ('schema_version', 1),
                        ('agents_generation', 1) ON
                        CONFLICT (name) DO NOTHING;
                    CREATE TABLE IF NOT EXISTS entities (
                        kind TEXT NOT NULL, name TEXT NOT NULL, team TEXT, project TEXT, body TEXT NOT NULL,
                        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (kind, name));
                    CREATE INDEX IF NOT EXISTS entities_team ON entities (team);
                    CREATE INDEX IF NOT EXISTS entities_project ON entities (project);
                    CREATE TABLE IF NOT EXISTS settings (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
                    CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,
                        created_at INTEGER NOT NULL);
                    CREATE TABLE IF NOT EXISTS notices (key TEXT PRIMARY KEY, sent_at INTEGER NOT NULL);
                    CREATE TABLE IF NOT EXISTS usage_marks (
                        agent_id TEXT NOT NULL, epoch TEXT NOT NULL, sequence INTEGER NOT NULL, updated_at INTEGER NOT
                            NULL,
                        PRIMARY KEY (agent_id, epoch));
                    CREATE TABLE IF NOT EXISTS usage_rollups (
                        granularity TEXT NOT NULL, start INTEGER NOT NULL, team TEXT NOT NULL, project TEXT NOT NULL,
                        service TEXT NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL,
                        requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
                        cost_pico INTEGER NOT NULL, cached_tokens INTEGER NOT NULL DEFAULT 0,
                        cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
                        PRIMARY KEY (granularity, start, team, project, service, key_id, model));
                    CREATE TABLE IF NOT EXISTS denial_rollups (
                        granularity TEXT NOT NULL, start INTEGER NOT NULL, team TEXT NOT NULL, project TEXT NOT NULL,
                        service TEXT NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL, reason TEXT NOT NULL, count
                            INTEGER NOT NULL,
                        PRIMARY KEY (granularity, start, team, project, service, key_id, model, reason));
                    """)
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS admin_changes (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT
                            NOT NULL,
                        kind TEXT NOT NULL, name TEXT NOT NULL, fields TEXT NOT NULL);
                    CREATE INDEX IF NOT EXISTS admin_changes_at ON admin_changes (at);
                    """)
            // Columns added after the first release: SQLite has no ADD COLUMN IF NOT EXISTS.
            let agentColumns = try String.fetchAll(db, sql: "SELECT name FROM pragma_table_info('agents')")
            if !agentColumns.contains("service") { try db.execute(sql: "ALTER TABLE agents ADD COLUMN service TEXT") }
            let rollupColumns = try String.fetchAll(db, sql: "SELECT name FROM pragma_table_info('usage_rollups')")
            for column in ["cached_tokens", "cache_creation_tokens"] where !rollupColumns.contains(column) {
                try db.execute(sql: "ALTER TABLE usage_rollups ADD COLUMN \(column) INTEGER NOT NULL DEFAULT 0")
            }
        }
    }

    // MARK: - Entities

    @discardableResult
    public func change(_ plan: @escaping PolicyPlan) async throws -> PolicyWrite {
        let now = clock()
        return try await write { db in
            let change = try plan(try Self.readSnapshot(db))
            let version: Int64
            switch change {
            case .put(let entity, let mode): version = try Self.put(entity, mode: mode, now: now, db)
            case .delete(let kind, let name): version = try Self.delete(kind, name: name, db)
            case .settings(let settings): version = try Self.setSettings(settings, db)
            }
            return PolicyWrite(version: version, change: change)
        }
    }

    private static func put(_ entity: Entity, mode: PutMode, now: Int64, _ db: Database) throws -> Int64 {
        let body = try EntityCoding.encode(entity)
        let exists =
            try Bool.fetchOne(
                db, sql: "SELECT 1 FROM entities WHERE kind = ? AND name = ?",
                arguments: [entity.kind.rawValue, entity.name]) ?? false
        switch mode {
        case .create where exists:
            throw StoreError(.conflict, "\(entity.kind.rawValue) \"\(entity.name)\" already exists")
        case .update where !exists:
            throw StoreError(.notFound, "no \(entity.kind.rawValue) \"\(entity.name)\"")
        default:
            break
        }
        for (kind, name) in References.required(by: entity) {
            guard
                try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM entities WHERE kind = ? AND name = ?", arguments: [kind.rawValue, name])
                    ?? false
            else {
                throw StoreError(
                    .invalid,
                    "\(entity.kind.rawValue) \"\(entity.name)\" refers to \(kind.rawValue) \"\(name)\","
                        + " which does not exist"
                )
            }
        }
        if let project = entity.project, let team = entity.team {
            let owner = try String.fetchOne(
                db, sql: "SELECT team FROM entities WHERE kind = 'project' AND name = ?", arguments: [project])
            guard owner == team else {
                throw StoreError(
                    .invalid, "project \"\(project)\" belongs to team \"\(owner ?? "?")\", not \"\(team)\"")
            }
        }
        try db.execute(
            sql: """
                INSERT INTO entities (kind, name, team, project, body, created_at, updated_at) VALUES (?, ?, ?, ?,
                    ?, ?, ?)
                ON CONFLICT (kind, name) DO UPDATE SET team = excluded.team, project = excluded.project, body =
                    excluded.body,
                    updated_at = excluded.updated_at
                """, arguments: [entity.kind.rawValue, entity.name, entity.team, entity.project, body, now, now])
        return try bumpVersion(db)
    }

    public func entity(_ kind: EntityKind, name: String) async throws -> Entity? {
        let body = try await pool.read { db in
            try String.fetchOne(
                db, sql: "SELECT body FROM entities WHERE kind = ? AND name = ?", arguments: [kind.rawValue, name])
        }
        return try body.map { try EntityCoding.decode(kind, $0) }
    }

    public func entities(_ kind: EntityKind) async throws -> [Entity] {
        let bodies = try await pool.read { db in
            try String.fetchAll(
                db, sql: "SELECT body FROM entities WHERE kind = ? ORDER BY name", arguments: [kind.rawValue])
        }
        return try bodies.map { try EntityCoding.decode(kind, $0) }
    }

    private static func delete(_ kind: EntityKind, name: String, _ db: Database) throws -> Int64 {
        guard
            try Bool.fetchOne(
                db, sql: "SELECT 1 FROM entities WHERE kind = ? AND name = ?", arguments: [kind.rawValue, name])
                ?? false
        else {
            throw StoreError(.notFound, "no \(kind.rawValue) \"\(name)\"")
        }
        let column = kind == .team ? "team" : (kind == .project ? "project" : nil)
        if let column {
            let users = try String.fetchAll(
                db,
                sql:
                    "SELECT kind || ' \"' || name || '\"' FROM entities WHERE \(column) = ?"
                    + " ORDER BY kind, name LIMIT 5",
                arguments: [name])
            guard users.isEmpty else {
                throw StoreError(
                    .conflict,
                    "\(kind.rawValue) \"\(name)\" is still used by \(users.joined(separator: ", "));"
                        + " delete or move those first"
                )
            }
        }
        try db.execute(sql: "DELETE FROM entities WHERE kind = ? AND name = ?", arguments: [kind.rawValue, name])
        return try bumpVersion(db)
    }

    public func settings() async throws -> SettingsDocument {
        let body = try await pool.read { db in try String.fetchOne(db, sql: "SELECT body FROM settings WHERE id = 1") }
        return try body.map(EntityCoding.decodeSettings) ?? SettingsDocument()
    }

    private static func setSettings(_ settings: SettingsDocument, _ db: Database) throws -> Int64 {
        let body = try EntityCoding.encodeSettings(settings)
        try db.execute(
            sql: "INSERT INTO settings (id, body) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            arguments: [body])
        return try bumpVersion(db)
    }

    public func snapshot() async throws -> PolicySnapshot {
        // One read transaction: the version and the rows are the same state.
        try await pool.read { db in try Self.readSnapshot(db) }
    }

    private static func readSnapshot(_ db: Database) throws -> PolicySnapshot {
        let version = try Int64.fetchOne(db, sql: "SELECT value FROM sluice_meta WHERE name = 'policy_version'") ?? 0
        let entities = try Row.fetchAll(db, sql: "SELECT kind, body FROM entities ORDER BY kind, name").map { row in
            let kind: String = row["kind"]
            guard let entityKind = EntityKind(rawValue: kind) else {
                throw StoreError(.invalid, "unknown entity kind \(kind) in the store")
            }
            return try EntityCoding.decode(entityKind, row["body"])
        }
        let settings = try String.fetchOne(db, sql: "SELECT body FROM settings WHERE id = 1")
        return PolicySnapshot(
            version: version, entities: entities,
            settings: try settings.map(EntityCoding.decodeSettings) ?? SettingsDocument())
    }

    public func policyVersion() async throws -> Int64 {
        try await meta("policy_version")
    }

    /// A counter in `sluice_meta` (0 when it is missing).
    private func meta(_ name: String) async throws -> Int64 {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT value FROM sluice_meta WHERE name = ?", arguments: [name]) ?? 0
        }
    }

    private static func bumpVersion(_ db: Database) throws -> Int64 {
        try db.execute(sql: "UPDATE sluice_meta SET value = value + 1 WHERE name = 'policy_version'")
        return try Int64.fetchOne(db, sql: "SELECT value FROM sluice_meta WHERE name = 'policy_version'") ?? 0
    }

    // MARK: - Usage

    public func apply(_ batch: UsageBatch) async throws -> UsageAck {
        try batch.validateForStore()
        return try await apply(group: [batch])[0]
    }

    /// One: SQLite has a single writer, so concurrent batches are best written together.
    public var usageWriters: Int { 1 }

    public func apply(group batches: [UsageBatch]) async throws -> [UsageAck] {
        guard !batches.isEmpty else { return [] }
        let now = clock()
        return try await write { db in
            var stored: [GroupMarks.Key: Int64] = [:]
            for key in GroupMarks.keys(batches) {
                stored[key] =
                    try Int64.fetchOne(
                        db, sql: "SELECT sequence FROM usage_marks WHERE agent_id = ? AND epoch = ?",
                        arguments: [key.agentID, key.epoch]) ?? 0
            }
            let marks = GroupMarks(stored: stored, batches: batches)
            let cells = RollupCells(deltas: marks.fresh.lazy.flatMap(\.deltas))
            for (cell, totals) in cells.usage {
                try db.execute(
                    sql: """
                        INSERT INTO usage_rollups (granularity, start, team, project, service, key_id, model,
                                                   requests, prompt_tokens, completion_tokens, cost_pico,
                                                   cached_tokens, cache_creation_tokens)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (granularity, start, team, project, service, key_id, model) DO UPDATE SET
                            requests = requests + excluded.requests,
                            prompt_tokens = prompt_tokens + excluded.prompt_tokens,
                            completion_tokens = completion_tokens + excluded.completion_tokens,
                            cost_pico = cost_pico + excluded.cost_pico,
                            cached_tokens = cached_tokens + excluded.cached_tokens,
                            cache_creation_tokens = cache_creation_tokens + excluded.cache_creation_tokens
                        """,
                    arguments: [
                        cell.granularity, cell.start, cell.team, cell.project, cell.service, cell.keyID, cell.model,
                        totals.requests, totals.promptTokens, totals.completionTokens, totals.costPicoUSD,
                        totals.cachedPromptTokens, totals.cacheCreationTokens,
                    ])
            }
            for (cell, reason, count) in cells.denials {
                try db.execute(
                    sql: """
                        INSERT INTO denial_rollups (granularity, start, team, project, service, key_id, model,
                            reason, count)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (granularity, start, team, project, service, key_id, model, reason) DO
                            UPDATE SET count = count + excluded.count
                        """,
                    arguments: [
                        cell.granularity, cell.start, cell.team, cell.project, cell.service, cell.keyID, cell.model,
                        reason, count,
                    ])
            }
            for (key, sequence) in marks.raisedInOrder {
                try db.execute(
                    sql: """
                        INSERT INTO usage_marks (agent_id, epoch, sequence, updated_at) VALUES (?, ?, ?, ?)
                        ON CONFLICT (agent_id, epoch) DO UPDATE SET sequence = excluded.sequence, updated_at =
                            excluded.updated_at
                        """, arguments: [key.agentID, key.epoch, sequence, now])
            }
            return marks.acks
        }
    }

    public func usage(_ query: UsageQuery) async throws -> [UsageRow] {
        let statement = UsageSQL.select(query) { _ in "?" }
        let refusals = UsageSQL.denials(query) { _ in "?" }
        return try await pool.read { db in
            func group(of row: Row) -> [String: String] {
                var group: [String: String] = [:]
                for dimension in query.groupBy {
                    group[dimension.rawValue] =
                        dimension.isTime
                        ? String(row["g_\(dimension.rawValue)"] as Int64) : (row["g_\(dimension.rawValue)"] as String)
                }
                return group
            }
            let rows = try Row.fetchAll(db, sql: statement.sql, arguments: StatementArguments(statement.arguments)).map
            {
                row in
                UsageRow(
                    group: group(of: row), requests: row["requests"], promptTokens: row["prompt_tokens"],
                    completionTokens: row["completion_tokens"], cachedPromptTokens: row["cached_tokens"],
                    cacheCreationTokens: row["cache_creation_tokens"], costPicoUSD: row["cost_pico"])
            }
            let denials = try Row.fetchAll(db, sql: refusals.sql, arguments: StatementArguments(refusals.arguments)).map
            {
                row in (group: group(of: row), reason: row["reason"] as String, count: row["denied"] as Int64)
            }
            return UsageSQL.attach(denials, to: rows, limit: query.limit)
        }
    }

    @discardableResult
    public func bumpPolicyVersion() async throws -> Int64 {
        try await write { db in try Self.bumpVersion(db) }
    }

    public func recordNotice(_ key: String) async throws -> Bool {
        let now = clock()
        return try await write { db in
            try db.execute(
                sql: "INSERT INTO notices (key, sent_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                arguments: [key, now])
            return db.changesCount > 0
        }
    }

    // MARK: - Agents

    public func registerAgent(id: String, tokenHash: String, service: String?) async throws {
        let now = clock()
        try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO agents (id, token_hash, created_at, service) VALUES (?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash, service = excluded.service
                    """, arguments: [id, tokenHash, now, service])
            try Self.raiseAgentTokensGeneration(db)
        }
    }

    public func agent(tokenHash: String) async throws -> AgentRecord? {
        try await pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT id, service, created_at FROM agents WHERE token_hash = ?", arguments: [tokenHash]
            )
            .map { AgentRecord(id: $0["id"], service: $0["service"], createdAt: $0["created_at"]) }
        }
    }

    public func agents() async throws -> [AgentRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, service, created_at FROM agents ORDER BY id")
                .map { AgentRecord(id: $0["id"], service: $0["service"], createdAt: $0["created_at"]) }
        }
    }

    public func recordAdminChange(_ change: AdminChange) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO admin_changes (at, actor, action, kind, name, fields) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [
                    change.at, change.actor, change.action, change.kind, change.name,
                    change.fields.joined(separator: ","),
                ])
        }
    }

    public func adminChanges(since: Int64, limit: Int) async throws -> [AdminChange] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT at, actor, action, kind, name, fields FROM admin_changes WHERE at >= ?"
                    + " ORDER BY seq LIMIT ?",
                arguments: [since, limit]
            ).map { row in
                let fields: String = row["fields"]
                return AdminChange(
                    at: row["at"], actor: row["actor"], action: row["action"], kind: row["kind"], name: row["name"],
                    fields: fields.isEmpty ? [] : fields.split(separator: ",").map(String.init))
            }
        }
    }

    public func deleteAgent(id: String) async throws -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM agents WHERE id = ?", arguments: [id])
            let deleted = db.changesCount > 0
            if deleted { try Self.raiseAgentTokensGeneration(db) }
            return deleted
        }
    }

    public func agentTokensGeneration() async throws -> Int64 {
        try await meta("agents_generation")
    }

    private static func raiseAgentTokensGeneration(_ db: Database) throws {
        try db.execute(sql: "UPDATE sluice_meta SET value = value + 1 WHERE name = 'agents_generation'")
    }

    // MARK: - Transactions

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction, retrying when another process holds
    /// the database past the busy timeout.
    public func pruneUsage(hourlyBefore: Int64, dailyBefore: Int64, marksBefore: Int64, limit: Int) async throws
        -> Int
    {
        try await write { db in
            var deleted = 0
            for table in ["usage_rollups", "denial_rollups"] {
                for (granularity, before) in [("hour", hourlyBefore), ("day", dailyBefore)] {
                    try db.execute(
                        sql: """
                            DELETE FROM \(table) WHERE rowid IN (SELECT rowid FROM \(table)
                                WHERE granularity = ? AND start < ? LIMIT ?)
                            """, arguments: [granularity, before, limit])
                    deleted += db.changesCount
                }
            }
            try db.execute(
                sql: """
                    DELETE FROM usage_marks WHERE rowid IN (SELECT rowid FROM usage_marks WHERE updated_at < ? LIMIT ?)
                    """,
                arguments: [marksBefore, limit])
            return deleted + db.changesCount
        }
    }

    private func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await pool.writeWithoutTransaction { db in
                    var result: T?
                    try db.inTransaction(.immediate) {
                        result = try body(db)
                        return .commit
                    }
                    return result!
                }
            } catch let error as DatabaseError
                where (error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED) && attempt < 5
            {
                attempt += 1
                try await Task.sleep(for: .milliseconds(20 * attempt))
            }
        }
    }
}

extension UsageBatch {
    /// Wire checks plus what the store needs.
    func validateForStore() throws {
        do {
            try validate()
        } catch {
            throw StoreError(.invalid, error.message)
        }
    }
}
