internal import COpenSSL
import NIOCore

/// TLS on memory BIOs: NIO moves ciphertext, OpenSSL never touches a socket.
///
/// Inbound it turns ciphertext into plaintext `ByteBuffer`s; outbound it encrypts.
/// Plaintext writes issued before the handshake completes are held and sent after it.
/// Once the handshake succeeds (and, for clients, the peer certificate was verified
/// against the configured roots and host name) it fires ``TLSHandshakeCompleted``.
final class TLSHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Role {
        case client(serverName: String)
        case server
    }

    private enum State { case idle, handshaking, active, closing, closed }

    private let context: SSLContext
    private let role: Role
    private var ssl: OpaquePointer?
    private var readBIO: OpaquePointer?
    private var writeBIO: OpaquePointer?
    private var state: State = .idle
    private var bufferedWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    /// Promises of plaintext writes whose ciphertext has not been handed to the channel yet.
    private var pendingPromises: [EventLoopPromise<Void>] = []

    init(context: SSLContext, role: Role) {
        self.context = context
        self.role = role
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let ssl = SSL_new(self.context.pointer),
            let readBIO = BIO_new(BIO_s_mem()), let writeBIO = BIO_new(BIO_s_mem())
        else {
            context.fireErrorCaught(TLSError("cannot allocate TLS state: \(drainOpenSSLErrors())"))
            context.close(promise: nil)
            return
        }
        SSL_set_bio(ssl, readBIO, writeBIO)  // ssl owns both BIOs from here on
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        switch role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client(let serverName):
            SSL_set_connect_state(ssl)
            guard configureClientVerification(ssl, serverName: serverName) else {
                context.fireErrorCaught(
                    TLSError("cannot set up verification for \(serverName): \(drainOpenSSLErrors())"))
                context.close(promise: nil)
                return
            }
        }
        if context.channel.isActive { startHandshake(context: context) }
    }

    /// SNI and name checks are separate in OpenSSL; an empty name would silently disable
    /// the check, so it is refused here.
    private func configureClientVerification(_ ssl: OpaquePointer, serverName: String) -> Bool {
        guard !serverName.isEmpty else { return false }
        if isIPAddress(serverName) {
            // No SNI for IP literals (RFC 6066); verify against the certificate's IP SANs.
            return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) == 1
        }
        guard COpenSSL_SSL_set_tlsext_host_name(ssl, serverName) == 1 else { return false }
        return SSL_set1_host(ssl, serverName) == 1
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failPending(TLSError("TLS handler removed"))
        if let ssl { SSL_free(ssl) }
        ssl = nil
        state = .closed
    }

    func channelActive(context: ChannelHandlerContext) {
        startHandshake(context: context)
        context.fireChannelActive()
    }

    private func startHandshake(context: ChannelHandlerContext) {
        guard state == .idle else { return }
        state = .handshaking
        if case .client = role { driveHandshake(context: context) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state = .closed
        failPending(TLSError("connection closed"))
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let ciphertext = unwrapInboundIn(data)
        guard let readBIO, state != .closed else { return }
        ciphertext.withUnsafeReadableBytes { bytes in
            _ = BIO_write(readBIO, bytes.baseAddress, Int32(bytes.count))
        }
        if state == .handshaking { driveHandshake(context: context) }
        if state == .active || state == .closing { readPlaintext(context: context) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    private func driveHandshake(context: ChannelHandlerContext) {
        guard let ssl else { return }
        let result = SSL_do_handshake(ssl)
        flushCiphertext(context: context, promise: nil)
        if result == 1 {
            if let failure = verifyPeer(ssl) {
                fail(context: context, TLSError(failure))
                return
            }
            state = .active
            context.fireUserInboundEventTriggered(TLSHandshakeCompleted(negotiatedProtocol: negotiatedProtocol(ssl)))
            let writes = bufferedWrites
            bufferedWrites.removeAll()
            for (buffer, promise) in writes { encrypt(buffer, promise: promise) }
            if !writes.isEmpty { flushCiphertext(context: context, promise: nil) }
            return
        }
        let error = SSL_get_error(ssl, result)
        if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return }
        let detail = drainOpenSSLErrors()
        var message = "handshake failed"
        if case .client = role {
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK, let text = X509_verify_cert_error_string(verify) {
                message += ": certificate verification failed (\(String(cString: text)))"
            }
        }
        if !detail.isEmpty { message += ": \(detail)" }
        fail(context: context, TLSError(message))
    }

    /// `SSL_get_verify_result` reports OK when no certificate was sent at all, so the
    /// presence of a peer certificate is checked too.
    private func verifyPeer(_ ssl: OpaquePointer) -> String? {
        guard case .client = role else { return nil }
        guard SSL_get0_peer_certificate(ssl) != nil else { return "peer presented no certificate" }
        let verify = SSL_get_verify_result(ssl)
        guard verify == X509_V_OK else {
            let text = X509_verify_cert_error_string(verify).map { String(cString: $0) } ?? "code \(verify)"
            return "certificate verification failed (\(text))"
        }
        return nil
    }

    private func negotiatedProtocol(_ ssl: OpaquePointer) -> String? {
        var data: UnsafePointer<UInt8>? = nil
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// Drains `SSL_read` until it wants more input: one TCP read can hold several records.
    private func readPlaintext(context: ChannelHandlerContext) {
        guard let ssl else { return }
        var produced = false
        while state == .active || state == .closing {
            var buffer = context.channel.allocator.buffer(capacity: 16_384)
            var lastResult: Int32 = 0
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 16_384) { pointer in
                lastResult = SSL_read(ssl, pointer.baseAddress, Int32(pointer.count))
                return lastResult > 0 ? Int(lastResult) : 0
            }
            if lastResult > 0 {
                produced = true
                context.fireChannelRead(wrapInboundOut(buffer))
                continue
            }
            let error = SSL_get_error(ssl, lastResult)
            if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { break }
            if error == SSL_ERROR_ZERO_RETURN {
                // The peer sent close_notify: answer it and close.
                _ = SSL_shutdown(ssl)
                flushCiphertext(context: context, promise: nil)
                state = .closing
                context.close(promise: nil)
                break
            }
            fail(context: context, TLSError("read failed: \(drainOpenSSLErrors())"))
            break
        }
        // TLS 1.3 reads can produce output (key updates, session tickets acks).
        flushCiphertext(context: context, promise: nil)
        _ = produced
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let plaintext = unwrapOutboundIn(data)
        switch state {
        case .idle, .handshaking:
            bufferedWrites.append((plaintext, promise))
        case .active:
            encrypt(plaintext, promise: promise)
        case .closing, .closed:
            promise?.fail(ChannelError.ioOnClosedChannel)
        }
    }

    func flush(context: ChannelHandlerContext) {
        guard state == .active else { return }
        flushCiphertext(context: context, promise: nil)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all, state == .active, let ssl {
            state = .closing
            _ = SSL_shutdown(ssl)  // queue close_notify; the peer's answer is not awaited
            flushCiphertext(context: context, promise: nil)
        }
        context.close(mode: mode, promise: promise)
    }

    private func encrypt(_ plaintext: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let ssl else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        var remaining = plaintext
        while remaining.readableBytes > 0 {
            let written = remaining.withUnsafeReadableBytes { bytes in
                SSL_write(ssl, bytes.baseAddress, Int32(bytes.count))
            }
            // Memory BIOs grow without limit, so SSL_write never wants to wait.
            guard written > 0 else {
                promise?.fail(TLSError("write failed: \(drainOpenSSLErrors())"))
                return
            }
            remaining.moveReaderIndex(forwardBy: Int(written))
        }
        if let promise { pendingPromises.append(promise) }
    }

    /// Moves everything OpenSSL wrote into the write BIO onto the channel.
    private func flushCiphertext(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard let writeBIO else { return }
        let pending = Int(COpenSSL_BIO_pending(writeBIO))
        var combined: EventLoopPromise<Void>? = promise
        if !pendingPromises.isEmpty {
            let waiting = pendingPromises
            pendingPromises.removeAll(keepingCapacity: true)
            let aggregate = combined ?? context.eventLoop.makePromise(of: Void.self)
            aggregate.futureResult.whenComplete { result in
                for waiter in waiting { waiter.completeWith(result) }
            }
            combined = aggregate
        }
        guard pending > 0 else {
            combined?.succeed(())
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: pending)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { pointer in
            Int(max(0, BIO_read(writeBIO, pointer.baseAddress, Int32(pending))))
        }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: combined)
    }

    private func fail(context: ChannelHandlerContext, _ error: TLSError) {
        guard state != .closed else { return }
        state = .closed
        failPending(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    private func failPending(_ error: Error) {
        let writes = bufferedWrites
        bufferedWrites.removeAll()
        for (_, promise) in writes { promise?.fail(error) }
        let promises = pendingPromises
        pendingPromises.removeAll()
        for promise in promises { promise.fail(error) }
    }
}

@available(*, unavailable)
extension TLSHandler: Sendable {}

/// True for IPv4 and IPv6 literals, which take IP SAN checks instead of SNI and host names.
func isIPAddress(_ host: String) -> Bool {
    if host.contains(":") { return true }
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    return parts.count == 4
        && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isNumber) && (Int(part) ?? 256) <= 255
        }
}
