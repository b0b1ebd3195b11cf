internal import COpenSSL

/// Owns one `SSL_CTX`. Configured once in `init`, then only read, which OpenSSL allows
/// from many threads at once: that is the invariant behind `@unchecked Sendable`.
final class SSLContext: @unchecked Sendable {
    let pointer: OpaquePointer
    /// ALPN list in wire format; for servers it must outlive the context (the select callback reads it).
    private let alpnWire: UnsafeMutableBufferPointer<UInt8>
    let isServer: Bool

    init(client configuration: TLSClientConfiguration) throws(TLSError) {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError("SSL_CTX_new failed: \(drainOpenSSLErrors())")
        }
        self.pointer = ctx
        self.isServer = false
        self.alpnWire = Self.copy(alpnWireFormat(configuration.applicationProtocols))
        try self.applyCommonOptions()
        switch configuration.trustRoots {
        case .system:
            // Honours SSL_CERT_FILE / SSL_CERT_DIR, falling back to the distribution's bundle.
            guard SSL_CTX_set_default_verify_paths(ctx) == 1 else {
                throw TLSError("cannot load the system CA store: \(drainOpenSSLErrors())")
            }
        case .caFile(let path):
            guard SSL_CTX_load_verify_locations(ctx, path, nil) == 1 else {
                throw TLSError("cannot load CA file \(path): \(drainOpenSSLErrors())")
            }
        }
        SSL_CTX_set_verify(ctx, COpenSSL_SSL_VERIFY_PEER(), nil)
        _ = COpenSSL_SSL_CTX_set_session_cache_mode_client(ctx)
        // Unlike most OpenSSL calls, this one returns 0 on success.
        guard SSL_CTX_set_alpn_protos(ctx, alpnWire.baseAddress, UInt32(alpnWire.count)) == 0 else {
            throw TLSError("SSL_CTX_set_alpn_protos failed")
        }
    }

    init(server configuration: TLSServerConfiguration) throws(TLSError) {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError("SSL_CTX_new failed: \(drainOpenSSLErrors())")
        }
        self.pointer = ctx
        self.isServer = true
        self.alpnWire = Self.copy(alpnWireFormat(configuration.applicationProtocols))
        try self.applyCommonOptions()
        guard SSL_CTX_use_certificate_chain_file(ctx, configuration.certificateChainFile) == 1 else {
            throw TLSError("cannot load certificate \(configuration.certificateChainFile): \(drainOpenSSLErrors())")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, configuration.privateKeyFile, COpenSSL_SSL_FILETYPE_PEM()) == 1,
            SSL_CTX_check_private_key(ctx) == 1
        else {
            throw TLSError("cannot load private key \(configuration.privateKeyFile): \(drainOpenSSLErrors())")
        }
        SSL_CTX_set_alpn_select_cb(
            ctx,
            { _, out, outlen, clientList, clientLength, arg in
                // arg is the server's own list; pick the first server protocol the client offered.
                guard let arg, let clientList else { return COpenSSL_SSL_TLSEXT_ERR_NOACK() }
                let server = arg.assumingMemoryBound(to: UInt8.self)
                let serverLength = server.pointee  // stored as a length-prefixed blob, see below
                var selected: UnsafeMutablePointer<UInt8>? = nil
                var selectedLength: UInt8 = 0
                let result = SSL_select_next_proto(
                    &selected, &selectedLength, server + 1, UInt32(serverLength), clientList, clientLength)
                guard result == OPENSSL_NPN_NEGOTIATED, let selected else { return COpenSSL_SSL_TLSEXT_ERR_NOACK() }
                out?.pointee = UnsafePointer(selected)
                outlen?.pointee = selectedLength
                return COpenSSL_SSL_TLSEXT_ERR_OK()
            }, UnsafeMutableRawPointer(self.alpnWire.baseAddress! - 1))
    }

    private func applyCommonOptions() throws(TLSError) {
        guard COpenSSL_SSL_CTX_set_min_proto_version(pointer, COpenSSL_TLS1_2_VERSION()) == 1 else {
            throw TLSError("cannot require TLS 1.2")
        }
        SSL_CTX_set_options(pointer, COpenSSL_SSL_OP_NO_COMPRESSION() | COpenSSL_SSL_OP_NO_RENEGOTIATION())
        // Idle connections give their record buffers back: a sidecar keeps few hot ones.
        _ = COpenSSL_SSL_CTX_set_mode_release_buffers(pointer)
    }

    /// Copies the ALPN list behind one length byte, so the server callback can find its size.
    private static func copy(_ wire: [UInt8]) -> UnsafeMutableBufferPointer<UInt8> {
        let storage = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: wire.count + 1)
        storage[0] = UInt8(truncatingIfNeeded: wire.count)
        for (index, byte) in wire.enumerated() { storage[index + 1] = byte }
        return UnsafeMutableBufferPointer(rebasing: storage[1...])
    }

    deinit {
        SSL_CTX_free(pointer)
        UnsafeMutableBufferPointer(start: alpnWire.baseAddress! - 1, count: alpnWire.count + 1).deallocate()
    }
}
