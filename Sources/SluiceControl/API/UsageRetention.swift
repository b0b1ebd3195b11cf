import Foundation
import Logging
import ServiceLifecycle

/// How long the control plane keeps what usage leaves in the store: hourly rollup cells,
/// daily ones, and the marks that make each agent's batches apply exactly once. Sluice keeps
/// no raw usage rows: a call's usage is folded into the rollups when its batch arrives.
public struct UsageRetention: Sendable, Equatable {
    public var hourlyDays: Int
    public var dailyDays: Int
    public var markDays: Int

    /// Hourly cells are needed for any window not aligned to UTC days: a monthly budget in a
    /// time zone other than UTC reads a month of them.
    public static let shortestHourlyDays = 32

    public init(hourlyDays: Int = 40, dailyDays: Int = 800, markDays: Int = 30) {
        self.hourlyDays = hourlyDays
        self.dailyDays = dailyDays
        self.markDays = markDays
    }

    /// Refuses settings that would lose what a budget or replay still needs, naming the flag.
    public func validate() throws(ControlStartError) {
        guard (Self.shortestHourlyDays...36_500).contains(hourlyDays) else {
            throw ControlStartError(
                "--hourly-usage-retention-days must be \(Self.shortestHourlyDays) to 36500: monthly budgets outside UTC"
                    + " read a month of hourly rollups")
        }
        guard (hourlyDays...36_500).contains(dailyDays) else {
            throw ControlStartError("--daily-usage-retention-days must be at least the hourly retention, up to 36500")
        }
        guard (1...36_500).contains(markDays) else {
            throw ControlStartError("--usage-mark-retention-days must be 1 to 36500")
        }
    }
}

/// Deletes what is older than the retention, once an hour, in batches of at most 2,000 rows
/// a table, each its own short write, so ingests never wait behind a long delete.
public final class UsageRetentionJob: Service, Sendable {
    private let store: any Store
    private let retention: UsageRetention
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    static let batchRows = 2_000

    public init(
        store: any Store, retention: UsageRetention, logger: Logger,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) {
        self.store = store
        self.retention = retention
        self.logger = logger
        self.clock = clock
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(60))
                do {
                    try await self.prune()
                } catch is CancellationError {
                    return
                } catch {
                    self.logger.warning("usage retention failed; retried in an hour", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: .seconds(3_540))
            }
        }
    }

    /// One pass: batches until nothing older than the retention is left. Returns the rows
    /// deleted.
    @discardableResult
    public func prune() async throws -> Int {
        let now = clock()
        let day: Int64 = 86_400
        var total = 0
        while true {
            let deleted = try await store.pruneUsage(
                hourlyBefore: now - Int64(retention.hourlyDays) * day,
                dailyBefore: now - Int64(retention.dailyDays) * day,
                marksBefore: now - Int64(retention.markDays) * day, limit: Self.batchRows)
            total += deleted
            guard deleted > 0 else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        if total > 0 {
            logger.info("usage retention: old rollup cells and marks deleted", metadata: ["rows": "\(total)"])
        }
        return total
    }
}
