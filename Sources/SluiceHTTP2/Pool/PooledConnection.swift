import NIOConcurrencyHelpers

/// A pool's record of one connection: its phase and stream accounting, plus the
/// ``ConnectionEvents`` sink its handler reports to.
///
/// `phase`, `active`, `maxStreams` and `queued` are only touched under the owning pool's
/// lock; `connection` is written once, in the channel initializer, before any event can
/// be delivered. That is the invariant behind `@unchecked Sendable`.
final class PooledConnection: ConnectionEvents, @unchecked Sendable {
    enum Phase { case connecting, ready, draining, closed }

    // Strong: a closing connection still reports to its pool after the client let go of it.
    // The cycle ends when the pool drops this entry on close.
    private let pool: OriginPool
    var phase: Phase = .connecting
    var active = 0
    var maxStreams = 1
    /// How many calls to park here while connecting.
    let expectedStreams: Int
    var queued: [UpstreamCall] = []
    private var _connection: (any UpstreamConnection)?
    private let finished = NIOLockedValueBox(false)

    init(pool: OriginPool, expectedStreams: Int) {
        self.pool = pool
        self.expectedStreams = expectedStreams
    }

    var connection: any UpstreamConnection {
        get { _connection! }
        set { _connection = newValue }
    }

    var hasConnection: Bool { _connection != nil }

    func connectionReady(protocol: UpstreamProtocol, maxStreams: Int) {
        pool.ready(self, maxStreams: maxStreams)
    }

    func maxStreamsChanged(_ maxStreams: Int) { pool.maxStreamsChanged(self, to: maxStreams) }
    func goingAway() { pool.goingAway(self) }
    func streamClosed() { pool.streamClosed(self) }
    func streamFailed(_ call: UpstreamCall, _ error: UpstreamError) { pool.streamFailed(call, error) }

    func connectionClosed() {
        guard markFinished() else { return }
        pool.closed(self)
    }

    func connectionFailed(_ error: UpstreamError) {
        guard markFinished() else { return }
        pool.failed(self, error)
    }

    /// A connection ends once, however many paths report it.
    private func markFinished() -> Bool {
        finished.withLockedValue { done in
            defer { done = true }
            return !done
        }
    }
}
