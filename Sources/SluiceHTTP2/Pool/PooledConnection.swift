/// What one connection's handler reports to: forwards each event to the pool under the
/// connection's id. It holds no state of its own; the pool's ``PoolStateMachine`` does,
/// and ignores events for a connection it no longer has (a connection ends once, however
/// many paths report it).
final class PooledConnection: ConnectionEvents {
    let id: PoolStateMachine<UpstreamCall, any UpstreamConnection>.ConnectionID
    // Strong: a closing connection still reports to its pool after the client let go of it.
    private let pool: OriginPool

    init(id: Int, pool: OriginPool) {
        self.id = id
        self.pool = pool
    }

    /// The handler is in the pipeline; `connection` reaches it from any thread.
    func installed(_ connection: any UpstreamConnection) { pool.installed(id, connection) }
    func connectionReady(protocol: UpstreamProtocol, maxStreams: Int) { pool.ready(id, maxStreams: maxStreams) }
    func maxStreamsChanged(_ maxStreams: Int) { pool.maxStreamsChanged(id, to: maxStreams) }
    func goingAway() { pool.goingAway(id) }
    func streamClosed() { pool.streamClosed(id) }
    func streamFailed(_ call: UpstreamCall, _ error: UpstreamError) { pool.streamFailed(call, error) }
    func connectionClosed() { pool.closed(id) }
    func connectionFailed(_ error: UpstreamError) { pool.failed(id, error) }
}
