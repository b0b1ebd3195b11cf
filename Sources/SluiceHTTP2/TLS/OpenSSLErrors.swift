internal import COpenSSL

/// Drains OpenSSL's thread-local error queue into one line, so that errors from one
/// connection never leak into the next on the same thread.
func drainOpenSSLErrors() -> String {
    var parts: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        parts.append(text)
    }
    return parts.joined(separator: "; ")
}

/// Encodes protocol names in ALPN wire format: each name prefixed by its length.
func alpnWireFormat(_ protocols: [String]) -> [UInt8] {
    var wire: [UInt8] = []
    for name in protocols {
        let bytes = Array(name.utf8)
        precondition(!bytes.isEmpty && bytes.count < 256, "ALPN protocol names are 1...255 bytes")
        wire.append(UInt8(bytes.count))
        wire.append(contentsOf: bytes)
    }
    return wire
}
