import NIOConcurrencyHelpers
import NIOCore

/// A handle to one in-flight upstream call.
///
/// It relays transport events to the caller's delegate on the caller's event loop, returns
/// flow-control window as the caller consumes bytes, and replays the request once on
/// another connection when the first one refused it without processing it.
public final class UpstreamCall: Sendable {
    let request: UpstreamRequest
    let callerLoop: any EventLoop
    /// Released after the final event (or a cancel): the delegate usually holds this call,
    /// and the cycle must not outlive the call.
    private let delegate: NIOLoopBoundBox<(any UpstreamResponseDelegate)?>
    private let state: NIOLockedValueBox<State>

    struct State {
        var attempts = 0
        var connection: (any UpstreamConnection)?
        var streamID: Int32 = 0
        var cancelled = false
        var responseStarted = false
        var completed = false
    }

    /// How often a request may be sent in total (first try plus one replay).
    static let maximumAttempts = 2

    init(request: UpstreamRequest, callerLoop: any EventLoop, delegate: any UpstreamResponseDelegate) {
        self.request = request
        self.callerLoop = callerLoop
        self.delegate = NIOLoopBoundBox(delegate, eventLoop: callerLoop)
        self.state = NIOLockedValueBox(State())
    }

    /// Returns flow-control window for bytes the caller has written out.
    public func consumed(_ bytes: Int) {
        guard bytes > 0 else { return }
        let target = state.withLockedValue { ($0.connection, $0.streamID) }
        if let connection = target.0 { connection.consume(streamID: target.1, bytes: bytes) }
    }

    /// Abandons the call: the stream is reset upstream and the delegate hears nothing more.
    public func cancel() {
        let target = state.withLockedValue { state -> (any UpstreamConnection, Int32)? in
            guard !state.cancelled, !state.completed else { return nil }
            state.cancelled = true
            state.completed = true
            return state.connection.map { ($0, state.streamID) }
        }
        if let (connection, streamID) = target { connection.cancel(streamID: streamID) }
        onCallerLoop(releasingDelegate: true) { _ in }
    }

    var isCancelled: Bool { state.withLockedValue { $0.cancelled } }

    // MARK: - Called by connections and the pool

    /// Records that this attempt runs on `connection` as `streamID`. Returns false if the
    /// caller cancelled meanwhile, in which case the stream must be reset at once.
    func attach(to connection: any UpstreamConnection, streamID: Int32) -> Bool {
        state.withLockedValue { state in
            state.connection = connection
            state.streamID = streamID
            state.attempts += 1
            return !state.cancelled
        }
    }

    func deliverHead(_ head: UpstreamResponseHead) {
        let deliver = state.withLockedValue { state -> Bool in
            state.responseStarted = true
            return !state.completed
        }
        guard deliver else { return }
        onCallerLoop { $0.upstreamReceivedHead(head) }
    }

    func deliverBody(_ chunk: ByteBuffer) {
        guard !state.withLockedValue({ $0.completed }) else { return }
        onCallerLoop { $0.upstreamReceivedBody(chunk) }
    }

    func deliverFinished() {
        let deliver = state.withLockedValue { state -> Bool in
            defer {
                state.completed = true
                state.connection = nil
            }
            return !state.completed
        }
        guard deliver else { return }
        onCallerLoop(releasingDelegate: true) { $0.upstreamFinished() }
    }

    /// Whether a failed attempt may be replayed: the peer never processed it, nothing of
    /// the response was seen, and the attempt budget allows it.
    func mayReplay(after error: UpstreamError) -> Bool {
        state.withLockedValue { state in
            error.isUnprocessed && !state.responseStarted && !state.completed
                && state.attempts < Self.maximumAttempts
        }
    }

    /// Detaches from the current connection before a replay.
    func detach() {
        state.withLockedValue { state in
            state.connection = nil
            state.streamID = 0
        }
    }

    func deliverFailure(_ error: UpstreamError) {
        let deliver = state.withLockedValue { state -> Bool in
            defer {
                state.completed = true
                state.connection = nil
            }
            return !state.completed
        }
        guard deliver else { return }
        onCallerLoop(releasingDelegate: true) { $0.upstreamFailed(error) }
    }

    private func onCallerLoop(
        releasingDelegate: Bool = false, _ body: @escaping @Sendable (any UpstreamResponseDelegate) -> Void
    ) {
        let delegate = self.delegate
        let deliver: @Sendable () -> Void = {
            guard let target = delegate.value else { return }
            if releasingDelegate { delegate.value = nil }
            body(target)
        }
        if callerLoop.inEventLoop {
            deliver()
        } else {
            callerLoop.execute(deliver)
        }
    }
}

/// A connection that can carry calls (an HTTP/2 session or one HTTP/1.1 connection).
protocol UpstreamConnection: AnyObject, Sendable {
    /// Starts `call` on this connection. Thread-safe.
    func start(_ call: UpstreamCall)
    /// Returns window for `bytes` of `streamID`'s body. Thread-safe.
    func consume(streamID: Int32, bytes: Int)
    /// Resets `streamID`. Thread-safe.
    func cancel(streamID: Int32)
    /// Closes the connection (GOAWAY for HTTP/2). Thread-safe.
    func close()
}
