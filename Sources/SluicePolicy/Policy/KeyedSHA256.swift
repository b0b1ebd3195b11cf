/// HMAC-SHA-256 (RFC 2104, FIPS 180-4) with the key's two padded blocks hashed once, when
/// the key is set: each code then costs two compressions and no allocation.
///
/// Every keyed call hashes its presented key, and swift-crypto's `HMAC` spent more than half
/// of that in generic `DataProtocol` walking and copy-on-write copies of its contexts. This
/// type computes the same function; `KeyedSHA256Tests` holds it to RFC 4231's vectors and to
/// swift-crypto over every key and message length that matters here. It has no branch or
/// table index that depends on the key or the message, as SHA-256 needs none.
struct KeyedSHA256: Sendable {
    /// The state after the key XOR ipad block, and after the key XOR opad block.
    private let inner: SHA256State
    private let outer: SHA256State

    init(key: some Collection<UInt8>) {
        var block = [UInt8](repeating: 0, count: SHA256State.blockSize)
        if key.count > SHA256State.blockSize {
            let digest = key.withContiguousStorageIfAvailable { SHA256State.hash(UnsafeRawBufferPointer($0)) }
                ?? Array(key).withUnsafeBytes { SHA256State.hash($0) }
            digest.store(into: &block)
        } else {
            for (index, byte) in key.enumerated() { block[index] = byte }
        }
        var inner = SHA256State.initial
        var outer = SHA256State.initial
        block.withUnsafeMutableBytes { bytes in
            for index in bytes.indices { bytes[index] ^= 0x36 }
            inner.compress(bytes.baseAddress!)
            for index in bytes.indices { bytes[index] ^= 0x36 ^ 0x5c }
            outer.compress(bytes.baseAddress!)
        }
        self.inner = inner
        self.outer = outer
    }

    /// The 32-byte code of `message`, as four big-endian words.
    func code(_ message: UnsafeRawBufferPointer) -> (UInt64, UInt64, UInt64, UInt64) {
        let innerDigest = inner.finishing(message, afterBytes: UInt64(SHA256State.blockSize))
        return withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { digestBytes in
            innerDigest.store(into: digestBytes)
            let digest = UnsafeRawBufferPointer(digestBytes)
            return outer.finishing(digest, afterBytes: UInt64(SHA256State.blockSize)).words
        }
    }
}

/// SHA-256's eight working words: the state between compressions.
struct SHA256State: Sendable {
    static let blockSize = 64
    private var h0, h1, h2, h3, h4, h5, h6, h7: UInt32

    static let initial = SHA256State(
        h0: 0x6a09_e667, h1: 0xbb67_ae85, h2: 0x3c6e_f372, h3: 0xa54f_f53a,
        h4: 0x510e_527f, h5: 0x9b05_688c, h6: 0x1f83_d9ab, h7: 0x5be0_cd19)

    /// The digest of `message` alone.
    static func hash(_ message: UnsafeRawBufferPointer) -> SHA256State {
        initial.finishing(message, afterBytes: 0)
    }

    /// The digest as four big-endian 64-bit words (the order ``KeyHash`` keeps).
    var words: (UInt64, UInt64, UInt64, UInt64) {
        (
            UInt64(h0) << 32 | UInt64(h1), UInt64(h2) << 32 | UInt64(h3), UInt64(h4) << 32 | UInt64(h5),
            UInt64(h6) << 32 | UInt64(h7)
        )
    }

    /// Writes the 32-byte digest, big-endian, at the start of `bytes`.
    func store(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= 32)
        let (w0, w1, w2, w3) = words
        bytes.storeBytes(of: w0.bigEndian, toByteOffset: 0, as: UInt64.self)
        bytes.storeBytes(of: w1.bigEndian, toByteOffset: 8, as: UInt64.self)
        bytes.storeBytes(of: w2.bigEndian, toByteOffset: 16, as: UInt64.self)
        bytes.storeBytes(of: w3.bigEndian, toByteOffset: 24, as: UInt64.self)
    }

    func store(into bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { store(into: $0) }
    }

    /// The digest after feeding `message` and the padding, `afterBytes` bytes having already
    /// been compressed into this state.
    func finishing(_ message: UnsafeRawBufferPointer, afterBytes: UInt64) -> SHA256State {
        var state = self
        let blockSize = Self.blockSize
        let whole = message.count / blockSize * blockSize
        var offset = 0
        while offset < whole {
            state.compress(message.baseAddress! + offset)
            offset += blockSize
        }
        // The rest, 0x80, zeros, then the length in bits: one block, or two when the rest
        // leaves no room for the nine bytes.
        let rest = message.count - whole
        let tailBlocks = rest + 9 <= blockSize ? 1 : 2
        let bitLength = (afterBytes + UInt64(message.count)) &* 8
        withUnsafeTemporaryAllocation(byteCount: 2 * blockSize, alignment: 8) { tail in
            tail.initializeMemory(as: UInt8.self, repeating: 0)
            if rest > 0 {
                tail.baseAddress!.copyMemory(from: message.baseAddress! + whole, byteCount: rest)
            }
            tail[rest] = 0x80
            let end = tailBlocks * blockSize
            tail.storeBytes(of: bitLength.bigEndian, toByteOffset: end - 8, as: UInt64.self)
            state.compress(tail.baseAddress!)
            if tailBlocks == 2 { state.compress(tail.baseAddress! + blockSize) }
        }
        return state
    }

    /// One compression of a 64-byte block (FIPS 180-4 §6.2.2).
    mutating func compress(_ block: UnsafeRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { schedule in
            let w = schedule.baseAddress!
            for index in 0..<16 {
                w[index] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self))
            }
            for index in 16..<64 {
                let s0 = w[index - 15].rotatedRight(7) ^ w[index - 15].rotatedRight(18) ^ (w[index - 15] >> 3)
                let s1 = w[index - 2].rotatedRight(17) ^ w[index - 2].rotatedRight(19) ^ (w[index - 2] >> 10)
                w[index] = w[index - 16] &+ s0 &+ w[index - 7] &+ s1
            }
            var a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7
            sha256RoundConstants.withUnsafeBufferPointer { k in
                // Eight rounds per turn, the words passed round in turn instead of shifted
                // down, so no round spends moves on renaming them.
                var index = 0
                while index < 64 {
                    sha256Round(a, b, c, &d, e, f, g, &h, k[index] &+ w[index])
                    sha256Round(h, a, b, &c, d, e, f, &g, k[index + 1] &+ w[index + 1])
                    sha256Round(g, h, a, &b, c, d, e, &f, k[index + 2] &+ w[index + 2])
                    sha256Round(f, g, h, &a, b, c, d, &e, k[index + 3] &+ w[index + 3])
                    sha256Round(e, f, g, &h, a, b, c, &d, k[index + 4] &+ w[index + 4])
                    sha256Round(d, e, f, &g, h, a, b, &c, k[index + 5] &+ w[index + 5])
                    sha256Round(c, d, e, &f, g, h, a, &b, k[index + 6] &+ w[index + 6])
                    sha256Round(b, c, d, &e, f, g, h, &a, k[index + 7] &+ w[index + 7])
                    index += 8
                }
            }
            h0 &+= a
            h1 &+= b
            h2 &+= c
            h3 &+= d
            h4 &+= e
            h5 &+= f
            h6 &+= g
            h7 &+= h
        }
    }
}

/// One round: `d` takes the new `e` and `h` the new `a` (FIPS 180-4 §6.2.2, step 3).
@inline(__always)
private func sha256Round(
    _ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32, _ e: UInt32, _ f: UInt32, _ g: UInt32,
    _ h: inout UInt32, _ constantAndWord: UInt32
) {
    let s1 = e.rotatedRight(6) ^ e.rotatedRight(11) ^ e.rotatedRight(25)
    let choice = (e & f) ^ (~e & g)
    let t1 = h &+ s1 &+ choice &+ constantAndWord
    let s0 = a.rotatedRight(2) ^ a.rotatedRight(13) ^ a.rotatedRight(22)
    let majority = (a & b) ^ (a & c) ^ (b & c)
    d = d &+ t1
    h = t1 &+ s0 &+ majority
}

extension UInt32 {
    @inline(__always) fileprivate func rotatedRight(_ count: UInt32) -> UInt32 {
        (self &>> count) | (self &<< (32 &- count))
    }
}

/// The first 32 bits of the fractional parts of the cube roots of the first 64 primes.
private let sha256RoundConstants: [UInt32] = [
    0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
    0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
    0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
    0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
    0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
    0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
    0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
    0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
]
