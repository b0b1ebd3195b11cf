import Testing

@testable import SluiceHTTP2

/// The pool's bookkeeping driven through every transition as plain values: calls are named
/// stand-ins, connections are strings, and each transition's actions are compared as text.
@Suite("Pool state machine")
struct PoolStateMachineTests {
    final class Call: PoolableCall, CustomStringConvertible {
        let name: String
        var isCancelled = false
        init(_ name: String) { self.name = name }
        var description: String { name }
    }

    typealias Machine = PoolStateMachine<Call, String>

    static func machine(connections: Int = 2, http1Connections: Int = 4, queued: Int = 4, cleartext: Bool = false)
        -> Machine
    {
        Machine(
            limits: .init(
                maxHTTP2Connections: connections, maxHTTP1Connections: http1Connections, maxQueuedCalls: queued),
            cleartext: cleartext)
    }

    static func text(_ actions: [Machine.Action]) -> [String] {
        actions.map { action in
            switch action {
            case .start(let call, let connection): "start \(call) on \(connection)"
            case .connect(let id, let http1): http1 ? "connect \(id) http1" : "connect \(id)"
            case .close(let connection): "close \(connection)"
            case .fail(let call, let error): "fail \(call) \(error.kind.rawValue)"
            }
        }
    }

    static func text(_ action: Machine.Action?) -> [String] { text(action.map { [$0] } ?? []) }

    /// A machine with one ready connection "c0" of `streams` slots, `busy` of them in use.
    static func readyMachine(streams: Int, busy: Int, connections: Int = 1) -> (Machine, [Call]) {
        var machine = machine(connections: connections)
        let calls = (0..<busy).map { Call("a\($0)") }
        for call in calls { _ = machine.execute(call) }
        _ = machine.installed(0, "c0")
        _ = machine.ready(0, maxStreams: streams)
        return (machine, calls)
    }

    @Test("calls park on a connection being made; SETTINGS start what fits and the rest open another")
    func parkThenReady() {
        var machine = Self.machine()
        #expect(Self.text(machine.execute(Call("a"))) == ["connect 0"])
        #expect(Self.text(machine.execute(Call("b"))).isEmpty)
        #expect(Self.text(machine.execute(Call("c"))).isEmpty)
        #expect(Self.text(machine.installed(0, "c0")).isEmpty)
        // The peer allows 2 streams: a and b start, c needs a second connection.
        #expect(Self.text(machine.ready(0, maxStreams: 2)) == ["start a on c0", "start b on c0", "connect 1"])
        #expect(machine.connectionCount == 2)
        _ = machine.installed(1, "c1")
        #expect(Self.text(machine.ready(1, maxStreams: 100)) == ["start c on c1"])
    }

    @Test("a new call goes to the busiest connection with room, so fewer connections stay in use")
    func busiestFirst() {
        var (machine, _) = Self.readyMachine(streams: 2, busy: 2, connections: 2)
        #expect(Self.text(machine.execute(Call("x"))) == ["connect 1"])
        _ = machine.installed(1, "c1")
        #expect(Self.text(machine.ready(1, maxStreams: 4)) == ["start x on c1"])
        _ = machine.streamClosed(0)
        // c0 has 1 of 2 in use, c1 1 of 4: equal, so the older one.
        #expect(Self.text(machine.execute(Call("y"))) == ["start y on c0"])
        // c0 is full now; c1 (1 in use) takes the next.
        #expect(Self.text(machine.execute(Call("z"))) == ["start z on c1"])
    }

    @Test("calls beyond every connection and the queue bound are refused, not buffered")
    func queueBound() {
        var machine = Self.machine(connections: 1, queued: 2)
        #expect(Self.text(machine.execute(Call("a"))) == ["connect 0"])
        #expect(Self.text(machine.execute(Call("b"))).isEmpty)
        #expect(Self.text(machine.execute(Call("c"))).isEmpty)
        #expect(Self.text(machine.execute(Call("d"))).isEmpty)
        #expect(machine.waitingCount == 2)
        #expect(Self.text(machine.execute(Call("e"))) == ["fail e upstream_queue_full"])
        _ = machine.installed(0, "c0")
        // One stream: a starts; b goes to the front of the queue, ahead of c and d.
        #expect(Self.text(machine.ready(0, maxStreams: 1)) == ["start a on c0"])
        #expect(Self.text(machine.streamClosed(0)) == ["start b on c0"])
        #expect(Self.text(machine.streamClosed(0)) == ["start c on c0"])
    }

    @Test("a GOAWAY while calls wait for room: they get a new connection, the old one closes when idle")
    func goAwayWhileWaiting() {
        var (machine, _) = Self.readyMachine(streams: 1, busy: 1)
        #expect(Self.text(machine.execute(Call("b"))).isEmpty)
        #expect(Self.text(machine.goingAway(0)) == ["connect 1"])
        _ = machine.installed(1, "c1")
        #expect(Self.text(machine.ready(1, maxStreams: 10)) == ["start b on c1"])
        #expect(Self.text(machine.streamClosed(0)) == ["close c0"])
        #expect(Self.text(machine.closed(0)).isEmpty)
        #expect(machine.connectionCount == 1)
    }

    @Test("a GOAWAY before SETTINGS: the calls parked there go elsewhere, nothing was sent on it")
    func goAwayWhileConnecting() {
        var machine = Self.machine()
        _ = machine.execute(Call("a"))
        _ = machine.execute(Call("b"))
        _ = machine.installed(0, "c0")
        #expect(Self.text(machine.goingAway(0)) == ["close c0", "connect 1"])
        _ = machine.installed(1, "c1")
        #expect(Self.text(machine.ready(1, maxStreams: 10)) == ["start a on c1", "start b on c1"])
    }

    @Test("a caller that hangs up while waiting is dropped, not started")
    func cancelledWhileWaiting() {
        var (machine, _) = Self.readyMachine(streams: 1, busy: 1)
        let gone = Call("gone")
        _ = machine.execute(gone)
        _ = machine.execute(Call("next"))
        gone.isCancelled = true
        #expect(Self.text(machine.streamClosed(0)) == ["start next on c0"])
        #expect(machine.waitingCount == 0)
    }

    @Test("a caller that hangs up while parked on a connection being made is not started")
    func cancelledWhileParked() {
        var machine = Self.machine()
        let gone = Call("gone")
        _ = machine.execute(gone)
        _ = machine.execute(Call("b"))
        gone.isCancelled = true
        _ = machine.installed(0, "c0")
        #expect(Self.text(machine.ready(0, maxStreams: 5)) == ["start b on c0"])
    }

    @Test("a refused stream is replayed on a connection with room; one that may not be replayed fails")
    func replay() {
        var (machine, calls) = Self.readyMachine(streams: 2, busy: 1)
        _ = machine.streamClosed(0)
        let refused = UpstreamError(.refused, "stream refused by GOAWAY")
        #expect(Self.text(machine.streamFailed(calls[0], refused, mayReplay: true)) == ["start a0 on c0"])
        let reset = UpstreamError(.streamReset, "reset")
        #expect(Self.text(machine.streamFailed(calls[0], reset, mayReplay: false)) == ["fail a0 upstream_stream_reset"])
    }

    @Test("a stream reset after the last byte, and a connection reported closed twice, change nothing")
    func lateAndRepeatedEvents() {
        var (machine, _) = Self.readyMachine(streams: 2, busy: 1)
        #expect(Self.text(machine.streamClosed(0)).isEmpty)
        // A second close for the same stream cannot free a slot that is not in use.
        #expect(Self.text(machine.streamClosed(0)).isEmpty)
        #expect(Self.text(machine.execute(Call("b"))) == ["start b on c0"])
        #expect(Self.text(machine.execute(Call("c"))) == ["start c on c0"])
        #expect(Self.text(machine.execute(Call("d"))).isEmpty)
        // The connection goes: the waiting call gets a new one; a second report changes nothing.
        #expect(Self.text(machine.closed(0)) == ["connect 1"])
        #expect(Self.text(machine.closed(0)).isEmpty)
        #expect(Self.text(machine.failed(0, UpstreamError(.connectionClosed, "x"))).isEmpty)
        #expect(Self.text(machine.streamClosed(0)).isEmpty)
        #expect(Self.text(machine.ready(0, maxStreams: 5)).isEmpty)
        #expect(machine.connectionCount == 1)
    }

    @Test("a connect failure fails the calls parked on it, and the waiting ones when nothing else is open")
    func connectFailure() {
        var machine = Self.machine(connections: 1, queued: 2)
        for name in ["a", "b", "c"] { _ = machine.execute(Call(name)) }
        #expect(machine.waitingCount == 1)
        let down = UpstreamError(.connectFailed, "refused")
        #expect(
            Self.text(machine.failed(0, down)) == [
                "fail a upstream_connect_failed", "fail b upstream_connect_failed", "fail c upstream_connect_failed",
            ])
        #expect(machine.connectionCount == 0)
        // The next call tries again.
        #expect(Self.text(machine.execute(Call("c"))) == ["connect 1"])
    }

    @Test("a failed connection leaves the waiting calls alone while another connection is open")
    func waitingSurviveWhileAnotherIsOpen() {
        var (machine, _) = Self.readyMachine(streams: 1, busy: 1, connections: 2)
        // b opens c1, c to e park there (4 may park), f waits for room.
        for name in ["b", "c", "d", "e", "f"] { _ = machine.execute(Call(name)) }
        #expect(machine.waitingCount == 1)
        let down = UpstreamError(.tlsFailed, "bad certificate")
        #expect(
            Self.text(machine.failed(1, down)) == [
                "fail b upstream_tls_failed", "fail c upstream_tls_failed", "fail d upstream_tls_failed",
                "fail e upstream_tls_failed",
            ])
        #expect(machine.waitingCount == 1)
        #expect(Self.text(machine.streamClosed(0)) == ["start f on c0"])
    }

    @Test("a cleartext peer that is not HTTP/2: the parked calls go again over HTTP/1.1, one per connection")
    func peerNotHTTP2() {
        var machine = Self.machine(cleartext: true)
        _ = machine.execute(Call("a"))
        _ = machine.execute(Call("b"))
        #expect(machine.speaksOnlyHTTP1 == false)
        let actions = machine.failed(0, UpstreamError(.peerNotHTTP2, "answered in HTTP/1.1"))
        #expect(Self.text(actions) == ["connect 1 http1", "connect 2 http1"])
        #expect(machine.speaksOnlyHTTP1)
        _ = machine.installed(1, "h1")
        #expect(Self.text(machine.ready(1, maxStreams: 1)) == ["start a on h1"])
        // Learned from a stream, too: a later call is replayed over HTTP/1.1.
        var other = Self.machine(cleartext: true)
        let call = Call("x")
        _ = other.execute(call)
        let replay = other.streamFailed(call, UpstreamError(.peerNotHTTP2, "h1"), mayReplay: true)
        #expect(other.speaksOnlyHTTP1 && Self.text(replay).isEmpty)
    }

    @Test("a TLS peer that chose h2 by ALPN and answers otherwise: calls fail, nothing reconnects in a loop")
    func negotiatedButNotHTTP2() {
        var machine = Self.machine(cleartext: false)
        _ = machine.execute(Call("a"))
        let actions = machine.failed(0, UpstreamError(.peerNotHTTP2, "answered in HTTP/1.1"))
        #expect(Self.text(actions) == ["fail a upstream_protocol_error"])
        #expect(!machine.speaksOnlyHTTP1)
        var other = Self.machine(cleartext: false)
        let call = Call("x")
        _ = other.execute(call)
        let failed = other.streamFailed(call, UpstreamError(.peerNotHTTP2, "h1"), mayReplay: true)
        #expect(Self.text(failed) == ["fail x upstream_protocol_error"])
    }

    @Test("shutdown fails waiting calls, closes usable connections, and lets parked calls finish first")
    func shutdown() {
        var (machine, _) = Self.readyMachine(streams: 1, busy: 1, connections: 2)
        _ = machine.execute(Call("parked"))  // opens c1 and parks there
        _ = machine.installed(1, "c1")
        #expect(Self.text(machine.execute(Call("extra"))).isEmpty)  // parks on c1 too
        var waiting = Self.machine(connections: 1, queued: 4)
        _ = waiting.execute(Call("p"))
        _ = waiting.execute(Call("q"))
        #expect(Self.text(machine.shutdown()) == ["close c0"])
        #expect(Self.text(machine.execute(Call("late"))) == ["fail late upstream_connection_closed"])
        // c1 becomes ready after shutdown: its parked calls run, and it closes when idle.
        #expect(Self.text(machine.ready(1, maxStreams: 5)) == ["start parked on c1", "start extra on c1"])
        #expect(Self.text(machine.streamClosed(1)).isEmpty)
        #expect(Self.text(machine.streamClosed(1)) == ["close c1"])
        // Calls waiting for room fail at once.
        _ = waiting.installed(0, "w0")
        _ = waiting.ready(0, maxStreams: 1)
        _ = waiting.execute(Call("r"))
        #expect(
            Self.text(waiting.shutdown()) == [
                "fail q upstream_connection_closed", "fail r upstream_connection_closed", "close w0",
            ])
    }

    @Test("a handler installed for a connection the pool already gave up on is closed")
    func installedAfterFailure() {
        var machine = Self.machine()
        _ = machine.execute(Call("a"))
        _ = machine.failed(0, UpstreamError(.connectTimeout, "timed out"))
        #expect(Self.text(machine.installed(0, "late")) == ["close late"])
    }

    @Test("the peer lowering its stream limit holds new calls back until streams end")
    func maxStreamsLowered() {
        var (machine, _) = Self.readyMachine(streams: 3, busy: 2)
        #expect(Self.text(machine.maxStreamsChanged(0, to: 2)).isEmpty)
        #expect(Self.text(machine.execute(Call("b"))).isEmpty)
        #expect(Self.text(machine.execute(Call("c"))).isEmpty)
        #expect(Self.text(machine.streamClosed(0)) == ["start b on c0"])
        #expect(Self.text(machine.maxStreamsChanged(0, to: 3)) == ["start c on c0"])
    }
}
