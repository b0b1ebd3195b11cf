import Foundation
import SluiceWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The on-disk record of every call's usage until the control plane has acknowledged it.
///
/// Layout of `<state-dir>/spool/`:
/// - `journal-N.log`: one ``UsageRecord`` JSON line per call, appended with one `write`.
/// - `batch-S.json`: a sealed ``UsageBatch`` with sequence `S`, plus the journals it was
///   folded from. Written atomically *before* those journals are deleted, so a record is
///   always in exactly one journal or one batch.
/// - `acked`: the epoch and highest sequence the control plane acknowledged, written
///   atomically *before* the batch file is deleted, so a sequence number is never reused.
/// - `epoch`: this spool's epoch. A spool that is lost or reset gets a new random epoch,
///   so its sequence numbers start again without colliding with the old ones.
///
/// A crash between any two steps leaves files that recovery (``init(directory:)``) turns
/// back into a consistent state: journals covered by a batch are deleted, batches at or
/// below the acknowledged sequence are deleted, and the next sequence is above both.
///
/// When the disk refuses a write (full, read-only, I/O error), records are held in memory
/// up to ``memoryCap`` and written out once the disk takes them again; ``refusesCalls``
/// tells the request path whether to keep admitting calls meanwhile.
public final class UsageSpool: Sendable {
    /// What the agent does while usage cannot be written to disk.
    public enum FailureMode: String, Sendable {
        /// Refuse new calls (503) until the spool can be written again.
        case failClosed = "fail_closed"
        /// Keep serving, holding usage in memory up to the cap; refuse beyond it.
        case allowInMemory = "allow_in_memory"
    }

    /// A sealed batch waiting for the control plane.
    public struct PendingBatch: Codable, Sendable, Equatable {
        public var batch: UsageBatch
        /// Journals folded into it (deleted once the batch file is durable).
        public var journals: [Int]

        public init(batch: UsageBatch, journals: [Int]) {
            self.batch = batch
            self.journals = journals
        }
    }

    /// Where a test may ask the process to die (SIGKILL) during a flush cycle.
    public enum CrashPoint: String, Sendable, CaseIterable {
        case afterSeal = "after-seal"
        case beforeSend = "before-send"
        case afterCommit = "after-commit"
        case afterAckMark = "after-ack-mark"
    }

    public let directory: String
    private let state: Mutex<State>
    /// Held for a whole seal: two seals at once (the periodic flush and a shutdown or
    /// manual one) would otherwise both fold the same sealed journals into two batches
    /// with two sequence numbers, and the control plane would count those calls twice.
    /// Separate from `state`, so appends on the request path never wait on the disk.
    private let sealing = Mutex<Void>(())
    /// Mirrors ``refusesCalls`` so the request path reads it without the lock.
    private let refusing = Atomic<Bool>(false)

    private struct State {
        var epoch: String
        var nextSequence: Int64
        var acknowledged: Int64
        var journalNumber: Int
        var journal: AppendFile?
        var journalRecords = 0
        /// Records the disk refused, oldest first.
        var held: [[UInt8]] = []
        var lastError: StateFileError?
        var mode: FailureMode = .allowInMemory
        var memoryCap: Int
        /// Damaged batch files renamed to `*.corrupt` and left out.
        var quarantined: Int
        var appendedTotal = 0

        var refusesCalls: Bool { !held.isEmpty && (mode == .failClosed || held.count >= memoryCap) }
    }

    /// Opens (and recovers) the spool in `directory`, creating it if needed.
    public init(directory: String, memoryCap: Int = 100_000) throws(StateFileError) {
        self.directory = directory
        try DurableFiles.makeDirectory(directory)
        let names = try DurableFiles.list(directory)

        var epoch: String
        if let bytes = try DurableFiles.read("\(directory)/epoch", limit: 256),
            let text = String(validating: bytes, as: UTF8.self)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !text.isEmpty
        {
            epoch = text
        } else {
            epoch = Self.newEpoch()
            try DurableFiles.replace("\(directory)/epoch", with: Array("\(epoch)\n".utf8))
        }
        var acknowledged: Int64 = 0
        if let bytes = try DurableFiles.read("\(directory)/acked", limit: 256),
            let fields = String(validating: bytes, as: UTF8.self)?.split(whereSeparator: \.isWhitespace),
            fields.count == 2,
            fields[0] == epoch, let sequence = Int64(fields[1])
        {
            acknowledged = sequence
        }

        var highestSequence = acknowledged
        var quarantined = 0
        var highestJournal = 0
        for name in names {
            if let number = Self.number(in: name, prefix: "journal-", suffix: ".log") {
                highestJournal = max(highestJournal, number)
            }
        }
        for name in names {
            guard let number = Self.number(in: name, prefix: "batch-", suffix: ".json") else {
                if name.contains(".tmp-") { try DurableFiles.remove("\(directory)/\(name)") }
                // A set-aside batch's number may have been sent: it is never used again.
                if let damaged = Self.number(in: name, prefix: "batch-", suffix: ".json.corrupt") {
                    highestSequence = max(highestSequence, Int64(damaged))
                }
                continue
            }
            let path = "\(directory)/\(name)"
            guard let pending = try Self.readBatch(path, quarantined: &quarantined) else {
                highestSequence = max(highestSequence, Int64(number))
                continue
            }
            if pending.batch.epoch == epoch, pending.batch.sequence <= acknowledged {
                // Acknowledged before a crash that came before the file's deletion.
                try DurableFiles.remove(path)
                continue
            }
            if pending.batch.epoch == epoch { highestSequence = max(highestSequence, pending.batch.sequence) }
            // Sealed before a crash that came before its journals' deletion.
            for journal in pending.journals { try DurableFiles.remove("\(directory)/journal-\(journal).log") }
            // A number a waiting batch names is never reused: the next recovery would take
            // a new journal of that number for the batch's and delete it.
            highestJournal = max(highestJournal, pending.journals.max() ?? 0)
        }
        state = Mutex(
            State(
                epoch: epoch, nextSequence: highestSequence + 1, acknowledged: acknowledged,
                journalNumber: highestJournal + 1, memoryCap: memoryCap, quarantined: quarantined))
    }

    /// Sets what happens while the disk refuses writes (from the policy's settings).
    public func setFailureMode(_ mode: FailureMode, memoryCap: Int) {
        state.withLock { state in
            state.mode = mode
            state.memoryCap = memoryCap
            refusing.store(state.refusesCalls, ordering: .relaxed)
        }
    }

    // MARK: - The request path

    /// Appends one call's usage. Never fails: a record the disk refuses is held in memory
    /// and the failure is reported by ``health``.
    public func append(_ record: UsageRecord) {
        let line = record.jsonLine
        state.withLock { state in
            state.appendedTotal += 1
            defer { refusing.store(state.refusesCalls, ordering: .relaxed) }
            if !state.held.isEmpty {
                // Keep order and do not hammer a failing disk on every call.
                state.held.append(line)
                return
            }
            do throws(StateFileError) {
                try Self.appendToJournal(line, state: &state, directory: directory)
            } catch {
                state.lastError = error
                state.held.append(line)
            }
        }
    }

    /// True when new calls must be refused because their usage could not be kept: the disk
    /// refuses writes and the policy says fail closed, or the memory cap is reached.
    public var refusesCalls: Bool { refusing.load(ordering: .relaxed) }

    // MARK: - The flush cycle

    /// Writes held records to disk if it takes them again, then seals every journal
    /// written so far into the next batch. Returns every batch waiting for the control
    /// plane, oldest first.
    public func seal(agentID: String) throws(StateFileError) -> [PendingBatch] {
        try sealing.withLock { _ throws(StateFileError) in try sealAlone(agentID: agentID) }
    }

    private func sealAlone(agentID: String) throws(StateFileError) -> [PendingBatch] {
        let diskRefuses = try state.withLock { state throws(StateFileError) -> Bool in
            // A disk that still refuses does not stop the batches already sealed from
            // going out (sending them frees space), but nothing new is sealed onto it.
            let wroteHeld = (try? Self.writeHeld(&state, directory: directory)) != nil
            refusing.store(state.refusesCalls, ordering: .relaxed)
            guard wroteHeld else { return true }
            guard state.journalRecords > 0 else { return false }
            // Later calls go to a fresh journal; the sealed ones are folded below.
            if let journal = state.journal { try journal.sync() }
            state.journal = nil
            state.journalRecords = 0
            state.journalNumber += 1
            return false
        }
        if diskRefuses { return try pending() }
        let current = state.withLock { $0.journalNumber }
        let sealedJournals = try DurableFiles.list(directory).compactMap {
            Self.number(in: $0, prefix: "journal-", suffix: ".log")
        }
        .filter { $0 < current }.sorted()
        if !sealedJournals.isEmpty {
            var records: [UsageRecord] = []
            for journal in sealedJournals {
                records += try Self.readJournal("\(directory)/journal-\(journal).log")
            }
            if records.isEmpty {
                for journal in sealedJournals { try DurableFiles.remove("\(directory)/journal-\(journal).log") }
            } else {
                let (epoch, sequence) = state.withLock { state in
                    defer { state.nextSequence += 1 }
                    return (state.epoch, state.nextSequence)
                }
                let pending = PendingBatch(
                    batch: UsageBatch(
                        agentID: agentID, epoch: epoch, sequence: sequence,
                        deltas: UsageRecord.deltas(records)),
                    journals: sealedJournals)
                try DurableFiles.replace("\(directory)/batch-\(sequence).json", with: Array(try Self.encode(pending)))
                CrashPoints.reach(.afterSeal)
                for journal in sealedJournals { try DurableFiles.remove("\(directory)/journal-\(journal).log") }
            }
        }
        return try pending()
    }

    /// Every sealed batch not yet acknowledged, oldest first.
    public func pending() throws(StateFileError) -> [PendingBatch] {
        var batches: [PendingBatch] = []
        var quarantined = 0
        defer { if quarantined > 0 { state.withLock { $0.quarantined += quarantined } } }
        for name in try DurableFiles.list(directory) {
            guard Self.number(in: name, prefix: "batch-", suffix: ".json") != nil,
                let pending = try Self.readBatch("\(directory)/\(name)", quarantined: &quarantined)
            else { continue }
            batches.append(pending)
        }
        // The current epoch last: batches left from an older epoch go first, in order.
        let epoch = state.withLock { $0.epoch }
        return batches.sorted {
            ($0.batch.epoch == epoch ? 1 : 0, $0.batch.sequence) < ($1.batch.epoch == epoch ? 1 : 0, $1.batch.sequence)
        }
    }

    /// Records that the control plane applied `batch`, then deletes its file.
    public func acknowledge(_ batch: UsageBatch) throws(StateFileError) {
        let epoch = state.withLock { $0.epoch }
        if batch.epoch == epoch {
            try DurableFiles.replace("\(directory)/acked", with: Array("\(epoch) \(batch.sequence)\n".utf8))
            state.withLock { $0.acknowledged = max($0.acknowledged, batch.sequence) }
            CrashPoints.reach(.afterAckMark)
        }
        try DurableFiles.remove("\(directory)/batch-\(batch.sequence).json")
    }

    /// For `/readyz` and metrics.
    public struct Health: Sendable {
        public var epoch: String
        public var acknowledgedSequence: Int64
        public var heldInMemory: Int
        public var appendedTotal: Int
        public var lastError: String?
        /// Damaged batch files renamed to `*.corrupt` and left out.
        public var quarantined: Int
    }

    public var health: Health {
        state.withLock { state in
            Health(
                epoch: state.epoch, acknowledgedSequence: state.acknowledged, heldInMemory: state.held.count,
                appendedTotal: state.appendedTotal, lastError: state.held.isEmpty ? nil : state.lastError?.message,
                quarantined: state.quarantined)
        }
    }

    // MARK: - Files

    private static func appendToJournal(_ line: [UInt8], state: inout State, directory: String) throws(StateFileError) {
        if state.journal == nil {
            state.journal = try AppendFile(path: "\(directory)/journal-\(state.journalNumber).log")
        }
        do {
            try state.journal!.append(line)
            state.journalRecords += 1
        } catch {
            // Part of the line may be on disk; later lines go to a fresh journal so that
            // they are not glued to the torn one (a torn last line is skipped on reading).
            state.journal = nil
            state.journalNumber += 1
            state.journalRecords = 0
            throw error
        }
    }

    private static func writeHeld(_ state: inout State, directory: String) throws(StateFileError) {
        while let line = state.held.first {
            do throws(StateFileError) {
                try appendToJournal(line, state: &state, directory: directory)
            } catch {
                state.lastError = error
                throw error
            }
            state.held.removeFirst()
        }
    }

    static func readJournal(_ path: String) throws(StateFileError) -> [UsageRecord] {
        guard let bytes = try DurableFiles.read(path, limit: 1 << 30) else { return [] }
        var records: [UsageRecord] = []
        // Only whole lines: a torn last line (the process died mid-write) is not a record.
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
        where line.endIndex < bytes.endIndex || bytes.last == UInt8(ascii: "\n") {
            if let record = line.withUnsafeBytes({ UsageJournalLine.record($0) }) { records.append(record) }
        }
        return records
    }

    /// A batch file, or nil when it is gone or damaged. Batch files are written atomically,
    /// so damage came from outside (a disk fault, a person): the file is renamed to
    /// `*.corrupt` for a person to look at, and the spool carries on without it.
    private static func readBatch(_ path: String, quarantined: inout Int) throws(StateFileError) -> PendingBatch? {
        guard let bytes = try DurableFiles.read(path, limit: 64 << 20) else { return nil }
        do {
            return try WireCoding.decoder.decode(PendingBatch.self, from: Data(bytes))
        } catch {
            guard rename(path, "\(path).corrupt") == 0 else {
                throw StateFileError("cannot set aside the damaged batch file", path)
            }
            quarantined += 1
            return nil
        }
    }

    private static func encode(_ pending: PendingBatch) throws(StateFileError) -> Data {
        do {
            return try WireCoding.encoder.encode(pending)
        } catch {
            throw StateFileError("cannot encode batch", "\(pending.batch.sequence)", code: EINVAL)
        }
    }

    static func number(in name: String, prefix: String, suffix: String) -> Int? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        return Int(name.dropFirst(prefix.count).dropLast(suffix.count))
    }

    static func newEpoch() -> String {
        var generator = SystemRandomNumberGenerator()
        return "e" + (0..<2).map { _ in String(generator.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
