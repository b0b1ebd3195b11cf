import NIOCore

/// A call the pool places: all the pool needs to know of it is whether the caller gave up.
protocol PoolableCall {
    var isCancelled: Bool { get }
}

extension UpstreamCall: PoolableCall {}

/// The bookkeeping of one origin's connections, as a value: which connections exist, what
/// phase each is in, how many streams each carries, and which calls wait for room.
///
/// Every event is a `mutating` transition that returns what must happen next as
/// ``Action``s; ``OriginPool`` runs them after releasing its lock. Nothing here does I/O,
/// so every path is tested as plain values. Generic over the call and connection types so
/// tests can use simple stand-ins.
///
/// HTTP/2 connections carry up to the peer's `MAX_CONCURRENT_STREAMS` calls each; a new
/// connection opens only when every live one is full. HTTP/1.1 connections carry one call
/// each. Calls that find no room wait in a bounded queue, oldest first.
struct PoolStateMachine<Call: PoolableCall, Connection> {
    typealias ConnectionID = Int

    struct Limits: Sendable {
        var maxHTTP2Connections: Int
        var maxHTTP1Connections: Int
        var maxQueuedCalls: Int
    }

    /// What the pool must do after a transition.
    enum Action {
        /// Start `call` on a connection that has a stream slot reserved for it.
        case start(Call, on: Connection)
        /// Open a connection; report its events with `id`.
        case connect(ConnectionID, http1: Bool)
        /// Close (GOAWAY on HTTP/2): nothing more will be started on it.
        case close(Connection)
        /// Tell the caller the call failed.
        case fail(Call, UpstreamError)
    }

    fileprivate enum Phase {
        /// Being set up: calls park on it up to `expectedStreams`.
        case connecting(parked: [Call])
        case ready
        /// GOAWAY or shutdown: no new streams; closed once the last one ends.
        case draining
    }

    fileprivate struct Entry {
        var phase: Phase
        /// Set once the channel's handler is installed; nil only while connecting.
        var connection: Connection?
        var active = 0
        var maxStreams = 1
        /// How many calls may park while connecting: 1 for HTTP/1.1; for HTTP/2 the peer's
        /// stream limit is unknown until its SETTINGS arrive.
        let expectedStreams: Int

        var hasRoom: Bool {
            if case .ready = phase { return active < maxStreams }
            return false
        }

        var isConnecting: Bool {
            if case .connecting = phase { return true }
            return false
        }
    }

    let limits: Limits
    /// Plain-text origins may turn out to speak only HTTP/1.1 (no h2c).
    let cleartext: Bool
    private var entries: [ConnectionID: Entry] = [:]
    private var waiting = CircularBuffer<Call>()
    private var nextID: ConnectionID = 0
    /// Learned when a cleartext peer answered the HTTP/2 preface in HTTP/1.x.
    private(set) var speaksOnlyHTTP1 = false
    private var shuttingDown = false

    init(limits: Limits, cleartext: Bool) {
        self.limits = limits
        self.cleartext = cleartext
    }

    /// Connections open or opening.
    var connectionCount: Int { entries.count }
    /// Calls waiting for room on some connection.
    var waitingCount: Int { waiting.count }

    // MARK: - Calls

    /// Places a new call (or one replayed after its first connection refused it).
    mutating func execute(_ call: Call) -> Action? {
        guard !shuttingDown else { return .fail(call, UpstreamError(.connectionClosed, "agent is shutting down")) }
        if let (id, connection) = connectionWithRoom() {
            entries[id]?.active += 1
            return .start(call, on: connection)
        }
        // A connection still being set up, if it has room for one more call.
        var parkable: ConnectionID?
        for (id, entry) in entries {
            if case .connecting(let parked) = entry.phase, parked.count < entry.expectedStreams, id < parkable ?? .max {
                parkable = id
            }
        }
        if let id = parkable, case .connecting(var parked) = entries[id]?.phase {
            parked.append(call)
            entries[id]?.phase = .connecting(parked: parked)
            return nil
        }
        if openCount < connectionLimit { return openConnection(parking: [call]) }
        guard waiting.count < limits.maxQueuedCalls else {
            return .fail(call, UpstreamError(.overloaded, "too many calls waiting for a connection"))
        }
        waiting.append(call)
        return nil
    }

    /// A call failed on a connection (which reports its stream closed separately). Replayed
    /// when `mayReplay` (the peer never processed it), else reported.
    mutating func streamFailed(_ call: Call, _ error: UpstreamError, mayReplay: Bool) -> Action? {
        if error.kind == .peerNotHTTP2 {
            // Over TLS the peer chose h2 by ALPN itself: another connection would choose it
            // again and fail the same way, so the call fails instead of looping.
            guard cleartext else { return .fail(call, Self.negotiatedButNotHTTP2(error)) }
            speaksOnlyHTTP1 = true
        }
        return mayReplay ? execute(call) : .fail(call, error)
    }

    private static func negotiatedButNotHTTP2(_ error: UpstreamError) -> UpstreamError {
        UpstreamError(.protocolError, "the peer chose HTTP/2 by ALPN but answered in another protocol")
    }

    // MARK: - Connection events

    /// The connection's handler is in place; `connection` is how to reach it.
    mutating func installed(_ id: ConnectionID, _ connection: Connection) -> [Action] {
        guard entries[id] != nil else { return [.close(connection)] }
        entries[id]?.connection = connection
        return []
    }

    /// The connection can take `maxStreams` streams: parked calls start, any beyond its
    /// limit wait for room elsewhere.
    mutating func ready(_ id: ConnectionID, maxStreams: Int) -> [Action] {
        guard var entry = entries[id], case .connecting(let parked) = entry.phase else { return [] }
        guard let connection = entry.connection else {
            // Ready before its handler was installed cannot happen; if it did, nothing
            // could reach it: give its calls another connection.
            entries[id] = nil
            return parked.compactMap { execute($0) } + drain()
        }
        var actions: [Action] = []
        entry.maxStreams = max(1, maxStreams)
        entry.phase = shuttingDown ? .draining : .ready
        let live = parked.filter { !$0.isCancelled }
        for call in live.prefix(entry.maxStreams) {
            entry.active += 1
            actions.append(.start(call, on: connection))
        }
        for call in live.dropFirst(entry.maxStreams).reversed() { waiting.prepend(call) }
        if shuttingDown && entry.active == 0 { actions.append(.close(connection)) }
        entries[id] = entry
        return actions + drain()
    }

    mutating func maxStreamsChanged(_ id: ConnectionID, to maxStreams: Int) -> [Action] {
        guard entries[id] != nil else { return [] }
        entries[id]?.maxStreams = max(1, maxStreams)
        return drain()
    }

    /// GOAWAY: streams in flight may finish, nothing new starts here.
    mutating func goingAway(_ id: ConnectionID) -> [Action] {
        guard let entry = entries[id] else { return [] }
        var actions: [Action] = []
        if case .connecting(let parked) = entry.phase {
            // Nothing was sent on it: the parked calls go elsewhere.
            for call in parked.reversed() where !call.isCancelled { waiting.prepend(call) }
        }
        entries[id]?.phase = .draining
        if entry.active == 0, let connection = entry.connection { actions.append(.close(connection)) }
        return actions + drain()
    }

    mutating func streamClosed(_ id: ConnectionID) -> [Action] {
        guard var entry = entries[id] else { return drain() }
        entry.active = max(0, entry.active - 1)
        entries[id] = entry
        if case .draining = entry.phase, entry.active == 0, let connection = entry.connection {
            return [.close(connection)] + drain()
        }
        return drain()
    }

    /// The connection closed after being usable. Reported once however many paths see it.
    mutating func closed(_ id: ConnectionID) -> [Action] {
        guard let entry = entries.removeValue(forKey: id) else { return [] }
        var actions: [Action] = []
        if case .connecting(let parked) = entry.phase {
            for call in parked where !call.isCancelled {
                actions.append(
                    .fail(call, UpstreamError(.connectionClosed, "the connection closed before it was ready")))
            }
        }
        return actions + drain()
    }

    /// The connection never became usable.
    mutating func failed(_ id: ConnectionID, _ error: UpstreamError) -> [Action] {
        guard let entry = entries.removeValue(forKey: id) else { return [] }
        var actions: [Action] = []
        let parked: [Call]
        if case .connecting(let calls) = entry.phase { parked = calls } else { parked = [] }
        if error.kind == .peerNotHTTP2, cleartext {
            // The peer processed nothing: these go again over HTTP/1.1.
            speaksOnlyHTTP1 = true
            for call in parked where !call.isCancelled { actions += execute(call).map { [$0] } ?? [] }
            return actions + drain()
        }
        let error = error.kind == .peerNotHTTP2 ? Self.negotiatedButNotHTTP2(error) : error
        for call in parked { actions.append(.fail(call, error)) }
        // Calls waiting for room would wait for this connection too.
        if openCount == 0 {
            while let call = waiting.popFirst() { actions.append(.fail(call, error)) }
        }
        return actions
    }

    /// Stops taking calls: waiting calls fail, every usable connection closes (streams in
    /// flight finish), and connections still being set up close once their parked calls end.
    mutating func shutdown() -> [Action] {
        shuttingDown = true
        var actions: [Action] = []
        while let call = waiting.popFirst() {
            actions.append(.fail(call, UpstreamError(.connectionClosed, "agent is shutting down")))
        }
        for (id, entry) in entries.sorted(by: { $0.key < $1.key }) where !entry.isConnecting {
            entries[id]?.phase = .draining
            if let connection = entry.connection { actions.append(.close(connection)) }
        }
        return actions
    }

    // MARK: - Choosing

    private var connectionLimit: Int {
        cleartext && speaksOnlyHTTP1 ? limits.maxHTTP1Connections : limits.maxHTTP2Connections
    }

    /// How many calls may park on a connection being made: 1 for HTTP/1.1; for HTTP/2 the
    /// peer's stream limit is unknown until its SETTINGS arrive, and ready() moves any
    /// excess on.
    private var expectedStreams: Int { cleartext && speaksOnlyHTTP1 ? 1 : limits.maxQueuedCalls }

    private mutating func openConnection(parking calls: [Call]) -> Action {
        let id = nextID
        nextID += 1
        entries[id] = Entry(phase: .connecting(parked: calls), expectedStreams: expectedStreams)
        return .connect(id, http1: cleartext && speaksOnlyHTTP1)
    }

    /// A connection with a free stream slot: the busiest (so fewer connections stay in
    /// use), the oldest of equals.
    private func connectionWithRoom() -> (ConnectionID, Connection)? {
        var best: (id: ConnectionID, active: Int, connection: Connection)?
        for (id, entry) in entries where entry.hasRoom {
            guard let connection = entry.connection else { continue }
            if let current = best, (entry.active, -id) <= (current.active, -current.id) { continue }
            best = (id, entry.active, connection)
        }
        return best.map { ($0.id, $0.connection) }
    }

    /// Connections that are or will be usable (not draining).
    private var openCount: Int {
        var count = 0
        for entry in entries.values {
            if case .draining = entry.phase { continue }
            count += 1
        }
        return count
    }

    // MARK: - Waiting calls

    /// Starts waiting calls on free slots; when none is free and none is being made, opens
    /// connections for them up to the limit.
    private mutating func drain() -> [Action] {
        guard !waiting.isEmpty else { return [] }
        var actions: [Action] = []
        while let first = waiting.first {
            if first.isCancelled {
                _ = waiting.popFirst()
                continue
            }
            guard let (id, connection) = connectionWithRoom() else { break }
            entries[id]?.active += 1
            actions.append(.start(waiting.removeFirst(), on: connection))
        }
        // No room and none being made: open connections for them, up to the limit. The
        // rest keep their place in the queue.
        guard !entries.values.contains(where: \.isConnecting) else { return actions }
        while !waiting.isEmpty, openCount < connectionLimit {
            var parked: [Call] = []
            while parked.count < expectedStreams, let call = waiting.popFirst() {
                if !call.isCancelled { parked.append(call) }
            }
            if !parked.isEmpty { actions.append(openConnection(parking: parked)) }
        }
        return actions
    }
}

extension PoolStateMachine: Sendable where Call: Sendable, Connection: Sendable {}
extension PoolStateMachine.Entry: Sendable where Call: Sendable, Connection: Sendable {}
extension PoolStateMachine.Phase: Sendable where Call: Sendable {}
extension PoolStateMachine.Action: Sendable where Call: Sendable, Connection: Sendable {}
