import Foundation
import SluiceAgent
import SluiceTestSupport
import SluiceWire
import Testing

/// The spool on real files. A crash is stood in for by dropping the spool object at a step
/// and opening the directory again, which is all a new process would see; the real
/// `kill -9` runs are in ``AgentFaultTests``.
@Suite("usage spool")
struct UsageSpoolTests {
    static func record(model: String = "gpt-test", prompt: Int64 = 10, completion: Int64 = 5, team: String? = "ml")
        -> UsageRecord
    {
        UsageRecord(
            hour: 1_800_000_000 - 1_800_000_000 % 3600, team: team, service: "shop/checkout", keyID: "ci", model: model,
            requests: 1, promptTokens: prompt, completionTokens: completion,
            costPicoUSD: prompt * 1_000_000 + completion * 2_000_000)
    }

    static func files(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    @Test("sealed records become one batch of folded deltas; an acknowledged batch leaves no file")
    func sealAndAcknowledge() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let spool = try UsageSpool(directory: directory.file("spool"))
        for _ in 0..<3 { spool.append(Self.record()) }
        spool.append(Self.record(model: "other", prompt: 7, completion: 1))
        let pending = try spool.seal(agentID: "agent-1")
        #expect(pending.count == 1)
        let batch = try #require(pending.first?.batch)
        #expect(batch.sequence == 1 && batch.agentID == "agent-1")
        #expect(batch.deltas.map(\.model) == ["gpt-test", "other"])
        #expect(
            batch.deltas[0].requests == 3 && batch.deltas[0].promptTokens == 30
                && batch.deltas[0].completionTokens == 15)
        #expect(Self.files(directory.file("spool")) == ["batch-1.json", "epoch"])
        // Nothing new: sealing again makes no second batch, and the first is still waiting.
        #expect(try spool.seal(agentID: "agent-1").map(\.batch.sequence) == [1])
        try spool.acknowledge(batch)
        #expect(Self.files(directory.file("spool")) == ["acked", "epoch"])
        spool.append(Self.record())
        #expect(try spool.seal(agentID: "agent-1").map(\.batch.sequence) == [2])
    }

    @Test("two flushes sealing at once (the periodic one and a shutdown or manual one) never fold a journal twice")
    func concurrentSeals() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let spool = try UsageSpool(directory: directory.file("spool"))
        var appended: Int64 = 0
        for _ in 0..<200 {
            for _ in 0..<3 { spool.append(Self.record()) }
            appended += 3
            // Both start together: each would otherwise list and fold the same sealed journal.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 { group.addTask { _ = try spool.seal(agentID: "a") } }
                try await group.waitForAll()
            }
        }
        let batches = try spool.seal(agentID: "a").map(\.batch)
        #expect(batches.reduce(Int64(0)) { $0 + $1.deltas.reduce(0) { $0 + $1.requests } } == appended)
        #expect(Set(batches.map(\.sequence)).count == batches.count)
    }

    @Test("a crash after sealing, before the journals were deleted, counts each record once")
    func crashAfterSeal() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("spool")
        do {
            let spool = try UsageSpool(directory: path)
            for _ in 0..<4 { spool.append(Self.record()) }
            _ = try spool.seal(agentID: "a")
        }
        // Put back what the crash would have left: the journal the batch was folded from.
        try Data(Self.record().jsonLine + Self.record().jsonLine).write(
            to: URL(fileURLWithPath: "\(path)/journal-1.log"))
        let reopened = try UsageSpool(directory: path)
        #expect(!Self.files(path).contains("journal-1.log"))
        let pending = try reopened.seal(agentID: "a")
        #expect(pending.count == 1 && pending[0].batch.deltas[0].requests == 4)
    }

    @Test(
        "a crash after the acknowledgement mark, before the batch file's deletion, never resends or reuses a sequence")
    func crashAfterAckMark() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("spool")
        let epoch: String
        do {
            let spool = try UsageSpool(directory: path)
            spool.append(Self.record())
            let batch = try #require(try spool.seal(agentID: "a").first).batch
            epoch = batch.epoch
            try spool.acknowledge(batch)
            // The deletion "did not happen": put the file back as the crash left it.
            let pending = UsageSpool.PendingBatch(batch: batch, journals: [1])
            try WireCoding.encoder.encode(pending).write(to: URL(fileURLWithPath: "\(path)/batch-1.json"))
        }
        let reopened = try UsageSpool(directory: path)
        #expect(try reopened.pending().isEmpty)
        reopened.append(Self.record())
        let next = try #require(try reopened.seal(agentID: "a").first).batch
        #expect(next.epoch == epoch && next.sequence == 2)
    }

    @Test("a torn last line (the process died mid-write) is skipped, and later records are not glued to it")
    func tornLine() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("spool")
        _ = try UsageSpool(directory: path)
        let torn = Self.record().jsonLine + Array(Self.record().jsonLine.prefix(20))
        try Data(torn).write(to: URL(fileURLWithPath: "\(path)/journal-1.log"))
        let spool = try UsageSpool(directory: path)
        spool.append(Self.record(model: "after"))
        let deltas = try #require(try spool.seal(agentID: "a").first).batch.deltas
        #expect(deltas.map(\.model) == ["after", "gpt-test"])
        #expect(deltas.allSatisfy { $0.requests == 1 })
    }

    @Test("a lost spool starts a new epoch, so sequence 1 is never reused for different contents")
    func lostSpool() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("spool")
        let first = try UsageSpool(directory: path)
        first.append(Self.record())
        let before = try #require(try first.seal(agentID: "a").first).batch
        try FileManager.default.removeItem(atPath: path)
        let second = try UsageSpool(directory: path)
        second.append(Self.record())
        let after = try #require(try second.seal(agentID: "a").first).batch
        #expect(after.sequence == 1 && after.epoch != before.epoch)
    }

    @Test(
        "disk full: usage is held in memory; allow_in_memory serves to the cap, fail_closed refuses; all of it is kept")
    func diskFull() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("spool")
        let spool = try UsageSpool(directory: path)
        spool.setFailureMode(.allowInMemory, memoryCap: 3)
        // /dev/full answers every write with ENOSPC: the kernel's own disk-full.
        for journal in 1...4 {
            try FileManager.default.createSymbolicLink(
                atPath: "\(path)/journal-\(journal).log", withDestinationPath: "/dev/full")
        }
        spool.append(Self.record())
        #expect(spool.health.heldInMemory == 1)
        #expect(spool.health.lastError?.contains("No space left on device") == true)
        #expect(!spool.refusesCalls)
        spool.append(Self.record())
        spool.append(Self.record())
        #expect(spool.refusesCalls)  // the cap is reached
        spool.setFailureMode(.failClosed, memoryCap: 100)
        #expect(spool.refusesCalls)
        spool.setFailureMode(.allowInMemory, memoryCap: 100)
        #expect(!spool.refusesCalls)
        // Still full at the next flush: nothing sealed, nothing lost.
        #expect(try spool.seal(agentID: "a").isEmpty)
        #expect(spool.health.heldInMemory == 3)
        // The disk recovers.
        for journal in 1...4 { try FileManager.default.removeItem(atPath: "\(path)/journal-\(journal).log") }
        _ = try spool.seal(agentID: "a")
        #expect(spool.health.heldInMemory == 0 && spool.health.lastError == nil)
        let pending = try spool.seal(agentID: "a")
        #expect(pending.map { $0.batch.deltas[0].requests } == [3])
    }

    @Test("a damaged batch file is set aside as *.corrupt and counted; the spool carries on")
    func corruptBatch() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("spool")
        do {
            let spool = try UsageSpool(directory: path)
            spool.append(Self.record())
            _ = try spool.seal(agentID: "a")
        }
        try Data("{\"batch\":{\"agent_id\":".utf8).write(to: URL(fileURLWithPath: "\(path)/batch-1.json"))
        let reopened = try UsageSpool(directory: path)
        #expect(reopened.health.quarantined == 1)
        #expect(Self.files(path).contains("batch-1.json.corrupt"))
        #expect(try reopened.pending().isEmpty)
        reopened.append(Self.record())
        // Its sequence is never reused (it may have been sent), not after a restart either.
        #expect(try reopened.seal(agentID: "a").map(\.batch.sequence) == [2])
        reopened.append(Self.record())
        let third = try UsageSpool(directory: path)
        #expect(try third.seal(agentID: "a").map(\.batch.sequence) == [2, 3])
    }
}
