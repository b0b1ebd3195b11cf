import NIOCore
import NIOPosix
import Synchronization

/// A TCP load balancer on 127.0.0.1 for tests: each connection goes to the next backend in
/// turn, skipping any that refuses (a replica that was killed), and bytes are relayed both
/// ways until either side closes. What agents behind a Kubernetes Service see of several
/// control-plane replicas.
public final class LoopbackBalancer: Sendable {
    private let channel: any Channel
    public let port: Int

    public init(backends: [Int], group: any EventLoopGroup) async throws {
        let next = Atomic<Int>(0)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                let first = next.add(1, ordering: .relaxed).oldValue
                return Self.connect(inbound, backends: backends, from: first, tries: backends.count)
            }
        channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
    }

    /// Connects `inbound` to the backend at `index` (round robin), or the next that accepts.
    private static func connect(
        _ inbound: any Channel, backends: [Int], from index: Int, tries: Int
    ) -> EventLoopFuture<Void> {
        let port = backends[index % backends.count]
        return ClientBootstrap(group: inbound.eventLoop).connect(host: "127.0.0.1", port: port).flatMapThrowing {
            outbound in
            try outbound.pipeline.syncOperations.addHandler(Relay(peer: inbound))
            try inbound.pipeline.syncOperations.addHandler(Relay(peer: outbound))
        }.flatMapError { error in
            tries > 1
                ? connect(inbound, backends: backends, from: index + 1, tries: tries - 1)
                : inbound.eventLoop.makeFailedFuture(error)
        }
    }

    public func stop() async throws {
        try await channel.close()
    }

    /// Writes what one side reads to the other; closing one closes both.
    private final class Relay: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let peer: any Channel

        init(peer: any Channel) {
            self.peer = peer
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            peer.write(unwrapInboundIn(data), promise: nil)
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            peer.flush()
        }

        func channelInactive(context: ChannelHandlerContext) {
            peer.close(promise: nil)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
