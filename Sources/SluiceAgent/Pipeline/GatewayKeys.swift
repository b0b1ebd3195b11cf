import SluiceKubernetes
import Synchronization

/// The gateway's signing keys as the request path reads them: the set last read (nil until
/// a JWKS URL first answers), and a way to ask for a fresh read when a token names a key the
/// set lacks (the gateway rotated). ``GatewayKeyRefresher`` keeps it current.
final class GatewayKeys: Sendable {
    private struct State {
        var keys: JSONWebKeySet?
        /// Why the last read failed, for the refusal while no set is in hand.
        var lastFailure: String?
        var wakeRefresher: AsyncStream<Void>.Continuation?
    }
    private let state: Mutex<State>

    init(initial: JSONWebKeySet?) {
        state = Mutex(State(keys: initial))
    }

    var current: (keys: JSONWebKeySet?, lastFailure: String?) {
        state.withLock { ($0.keys, $0.lastFailure) }
    }

    func replace(_ keys: JSONWebKeySet) {
        state.withLock {
            $0.keys = keys
            $0.lastFailure = nil
        }
    }

    /// A failed read keeps the set in hand: a gateway's JWKS endpoint being down for a while
    /// must not refuse every token it signed before.
    func failed(_ reason: String) {
        state.withLock { $0.lastFailure = reason }
    }

    /// Asks the refresher to read the set again; never blocks the request path.
    func keyMissed() {
        _ = state.withLock { $0.wakeRefresher }?.yield()
    }

    func attach(_ wake: AsyncStream<Void>.Continuation?) {
        state.withLock { $0.wakeRefresher = wake }
    }
}

extension GatewayKeys {
    /// The usable keys of the JWKS file at `path`, or why there are none.
    static func read(file path: String) throws(ConfigError) -> JSONWebKeySet {
        guard let bytes = readWholeFile(path) else { throw ConfigError("\(path) cannot be read") }
        return try parse(bytes, from: path)
    }

    /// The usable keys of a JWKS document read from `source`, or why there are none.
    static func parse(_ bytes: [UInt8], from source: String) throws(ConfigError) -> JSONWebKeySet {
        let keys: JSONWebKeySet
        do {
            keys = try JSONWebKeySet.parse(bytes)
        } catch {
            throw ConfigError("\(source) is not a JWKS document: \(error.message)")
        }
        guard !keys.keys.isEmpty else { throw ConfigError("\(source) holds no RS256 or ES256 key") }
        return keys
    }
}
