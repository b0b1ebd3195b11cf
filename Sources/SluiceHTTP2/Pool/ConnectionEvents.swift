/// What a connection's handler tells its pool. Called on the connection's event loop.
///
/// Every call the pool starts on a connection ends in exactly one ``streamClosed()``,
/// unless the whole connection closes first (then ``connectionClosed()`` covers it).
protocol ConnectionEvents: AnyObject, Sendable {
    func connectionReady(protocol: UpstreamProtocol, maxStreams: Int)
    func maxStreamsChanged(_ maxStreams: Int)
    /// GOAWAY arrived: no new streams; the ones in flight may finish.
    func goingAway()
    func streamClosed()
    /// A call failed on this connection; the pool replays it or reports it.
    func streamFailed(_ call: UpstreamCall, _ error: UpstreamError)
    func connectionClosed()
    /// The connection never became usable.
    func connectionFailed(_ error: UpstreamError)
}
