import Logging
import SluiceControl
import SluiceTestSupport

/// A fresh, migrated store of one kind: a SQLite file in a temporary directory, or a new
/// database on the test process's PostgreSQL server. Both kinds run every conformance test.
struct StoreFixture {
    enum Kind: String, Sendable, CustomStringConvertible {
        case sqlite, postgres
        var description: String { rawValue }
    }

    static let kinds: [Kind] = [.sqlite, .postgres]

    let store: any Store
    private let directory: TemporaryDirectory
    /// The PostgreSQL store's connection pool, running until ``remove()``.
    private let pool: Task<Void, Never>?

    init(_ kind: Kind) async throws {
        directory = try TemporaryDirectory()
        switch kind {
        case .sqlite:
            store = try SQLiteStore(path: directory.file("sluice.db"), clock: { 1_795_435_200 })
            pool = nil
        case .postgres:
            let url = try await Self.newPostgresDatabase()
            let created = try PostgresStore(url: url, logger: Logger(label: "test"), clock: { 1_795_435_200 })
            store = created
            pool = Task { await created.run() }
        }
        try await store.migrate()
    }

    /// A URL for a new, empty database on the shared test server.
    static func newPostgresDatabase() async throws -> String {
        let server = try await TemporaryPostgres.server()
        return "postgres://postgres@127.0.0.1:\(server.port)/\(try await server.createDatabase())"
    }

    func remove() {
        pool?.cancel()
        directory.remove()
    }
}
