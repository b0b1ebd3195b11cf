import SluiceControl
import SluiceTestSupport

/// A fresh, migrated store of one kind, in a temporary place removed afterwards.
struct StoreFixture {
    enum Kind: String, Sendable, CustomStringConvertible {
        case sqlite
        var description: String { rawValue }
    }

    static let kinds: [Kind] = [.sqlite]

    let store: any Store
    private let directory: TemporaryDirectory

    init(_ kind: Kind) async throws {
        directory = try TemporaryDirectory()
        switch kind {
        case .sqlite:
            store = try SQLiteStore(path: directory.file("sluice.db"), clock: { 1_795_435_200 })
        }
        try await store.migrate()
    }

    func remove() { directory.remove() }
}
