import NIOConcurrencyHelpers
import NIOCore

/// Sends calls to upstream providers over pooled HTTP/2 (TLS with ALPN, or h2c with prior
/// knowledge) and HTTP/1.1 connections.
///
/// One multiplexed connection per origin carries calls up to the peer's
/// `MAX_CONCURRENT_STREAMS`; more open beyond that. Calls the peer refused without
/// processing (GOAWAY, REFUSED_STREAM) are replayed once on another connection.
public final class UpstreamClient: Sendable {
    /// Connection limits and timeouts shared by every origin.
    public struct Configuration: Sendable {
        public var connectTimeout: TimeAmount = .seconds(10)
        public var maxHTTP2ConnectionsPerOrigin = 8
        public var maxHTTP1ConnectionsPerOrigin = 256
        public var maxQueuedCallsPerOrigin = 10_000

        public init() {}
    }

    private let group: any EventLoopGroup
    private let configuration: Configuration
    private let pools = NIOLockedValueBox<[UpstreamOrigin: OriginPool]>([:])

    public init(group: any EventLoopGroup, configuration: Configuration = Configuration()) {
        self.group = group
        self.configuration = configuration
    }

    /// Starts a call. Events reach `delegate` on `eventLoop`; the returned handle returns
    /// flow-control window and cancels.
    @discardableResult
    public func execute(
        _ request: UpstreamRequest, to origin: UpstreamOrigin, on eventLoop: any EventLoop,
        delegate: any UpstreamResponseDelegate
    ) -> UpstreamCall {
        let call = UpstreamCall(request: request, callerLoop: eventLoop, delegate: delegate)
        do {
            try pool(for: origin).execute(call)
        } catch {
            call.deliverFailure(UpstreamError(.tlsFailed, error.message))
        }
        return call
    }

    /// Closes every pooled connection; calls still waiting for a connection fail.
    public func shutdown() {
        let all = pools.withLockedValue { pools in
            defer { pools.removeAll() }
            return Array(pools.values)
        }
        for pool in all { pool.shutdown() }
    }

    /// How many connections are open or opening to `origin`.
    public func connectionCount(to origin: UpstreamOrigin) -> Int {
        pools.withLockedValue { $0[origin] }?.connectionCount() ?? 0
    }

    private func pool(for origin: UpstreamOrigin) throws(TLSError) -> OriginPool {
        if let pool = pools.withLockedValue({ $0[origin] }) { return pool }
        // Built outside the lock: loading a CA store takes milliseconds.
        let created = try OriginPool(
            origin: origin, group: group,
            limits: .init(
                connectTimeout: configuration.connectTimeout,
                maxHTTP2Connections: configuration.maxHTTP2ConnectionsPerOrigin,
                maxHTTP1Connections: configuration.maxHTTP1ConnectionsPerOrigin,
                maxQueuedCalls: configuration.maxQueuedCallsPerOrigin))
        return pools.withLockedValue { pools in
            if let existing = pools[origin] { return existing }
            pools[origin] = created
            return created
        }
    }
}
