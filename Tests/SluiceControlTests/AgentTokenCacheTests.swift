import SluiceTestSupport
import Testing

@testable import SluiceControl

@Suite("Agent tokens kept between calls")
struct AgentTokenCacheTests {
    /// A SQLite store holding agent `pod-1` with token hash `h1`.
    static func storeWithOneAgent() async throws -> (TemporaryDirectory, SQLiteStore) {
        let directory = try TemporaryDirectory()
        let store = try SQLiteStore(path: directory.file("control.db"))
        try await store.migrate()
        try await store.registerAgent(id: "pod-1", tokenHash: "h1", service: nil)
        return (directory, store)
    }

    @Test("a kept token is trusted until the generation moves, which is read again after a second")
    func generationRecheck() async throws {
        let (directory, store) = try await Self.storeWithOneAgent()
        defer { directory.remove() }
        let cache = AgentTokenCache()
        let start = ContinuousClock.now
        let generation = try await cache.generation(in: store, now: start)
        let found = try #require(try await store.agent(tokenHash: "h1"))
        cache.remember(found, tokenHash: "h1", generation: generation, now: start)
        #expect(cache.agent(tokenHash: "h1", generation: generation, now: start) == found)
        // Another replica revokes it. Within the second the generation is taken as read.
        #expect(try await store.deleteAgent(id: "pod-1"))
        let soon = start + .milliseconds(900)
        #expect(try await cache.generation(in: store, now: soon) == generation)
        #expect(cache.agent(tokenHash: "h1", generation: generation, now: soon) == found)
        // After it, the raised generation is read and the kept token no longer trusted.
        let later = start + AgentTokenCache.recheck
        let raised = try await cache.generation(in: store, now: later)
        #expect(raised > generation)
        #expect(cache.agent(tokenHash: "h1", generation: raised, now: later) == nil)
    }

    @Test("forgetting an agent drops its tokens and the generation, so the next call reads both afresh")
    func forgetLocally() async throws {
        let (directory, store) = try await Self.storeWithOneAgent()
        defer { directory.remove() }
        let cache = AgentTokenCache()
        let now = ContinuousClock.now
        let generation = try await cache.generation(in: store, now: now)
        cache.remember(
            AgentRecord(id: "pod-1", service: nil, createdAt: 0), tokenHash: "h1", generation: generation, now: now)
        #expect(try await store.deleteAgent(id: "pod-1"))
        cache.forget(agentID: "pod-1")
        #expect(cache.agent(tokenHash: "h1", generation: generation, now: now) == nil)
        // Read again at once, not a second later.
        #expect(try await cache.generation(in: store, now: now) > generation)
    }
}
