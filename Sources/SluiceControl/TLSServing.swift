import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import SluiceHTTP2

/// A Hummingbird child channel served over TLS with the same OpenSSL code the agent's
/// upstream client uses (`SluiceHTTP2`), so the control plane needs no second TLS stack.
/// The handshake runs before the HTTP/1.1 handlers see a byte.
struct TLSServerChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let tls: TLSServerContext

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try tls.addHandler(to: channel.pipeline.syncOperations)
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 over TLS with `tls` (certificate chain and key read once, at start).
    static func http1(tls: TLSServerContext) -> HTTPServerBuilder {
        .init { responder in
            TLSServerChildChannel(base: HTTP1Channel(responder: responder, configuration: .init()), tls: tls)
        }
    }
}
