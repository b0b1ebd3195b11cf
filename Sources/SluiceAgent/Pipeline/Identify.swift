import NIOCore
import NIOHTTP1
import SluicePolicy

/// Step 2 (identify): who is calling. Identity a trusted mesh proxy or gateway vouches for
/// (``TrustedIdentity``, only from its configured sources) comes first; otherwise the
/// virtual key a caller presented, from the headers the settings name (by default
/// `Authorization: Bearer …`, then `X-API-Key`), the first found winning. The policy engine
/// turns it into a caller; nothing here logs it.
enum Identify {
    static func caller(
        headers: HTTPHeaders, peer: SocketAddress?, runtime: AgentRuntime, engine: PolicyEngine, now: Int64
    ) -> Result<Caller, Denial> {
        if let trusted = runtime.trustedIdentity,
            let vouched = trusted.caller(headers: headers, peer: peer, engine: engine, now: now)
        {
            return vouched
        }
        let found = engine.authenticate(
            presentedKey: presentedKey(in: headers, from: runtime.settings.keyHeaders), now: now)
        if runtime.settings.refusesKeyless, case .success(let caller) = found, caller.keyID == nil,
            caller.team == nil
        {
            // A gateway serves callers from anywhere: the service's own keyless access is not theirs.
            return .failure(
                Denial(
                    .missingKey, "this agent is a shared gateway: present an API key or a trusted identity",
                    rule: "gateway keyless"))
        }
        return found
    }

    static func presentedKey(in headers: HTTPHeaders, from names: [String] = AgentSettings().keyHeaders) -> String? {
        for name in names {
            guard var value = headers.first(name: name) else { continue }
            // Read as bytes: the scheme and the spaces are ASCII, and Character-wise
            // trimming cost more than the rest of identifying the caller.
            let isAuthorization = name == "authorization"
            let token = value.withUTF8 { bytes in
                keyRange(in: bytes, isAuthorization: isAuthorization).map {
                    String(decoding: UnsafeBufferPointer(rebasing: bytes[$0]), as: UTF8.self)
                }
            }
            if let token { return token }
        }
        return nil
    }

    /// Where the key is in one header's value: after `Bearer ` (any case) when there is one,
    /// without surrounding spaces. Authorization carries a scheme, so there it must have one;
    /// other headers carry the key, perhaps with one. Nil when there is no key.
    private static func keyRange(in value: UnsafeBufferPointer<UInt8>, isAuthorization: Bool) -> Range<Int>? {
        let space = UInt8(ascii: " ")
        var start = 0
        var end = value.count
        while start < end, value[start] == space { start += 1 }
        let scheme: StaticString = "bearer "
        var hasBearer = end - start > scheme.utf8CodeUnitCount
        for offset in 0..<scheme.utf8CodeUnitCount where hasBearer {
            let byte = value[start + offset]
            let lower = UInt8(ascii: "A")...UInt8(ascii: "Z") ~= byte ? byte | 0x20 : byte
            hasBearer = lower == scheme.utf8Start[offset]
        }
        if isAuthorization, !hasBearer { return nil }
        if hasBearer { start += scheme.utf8CodeUnitCount }
        while start < end, value[start] == space { start += 1 }
        while end > start, value[end - 1] == space { end -= 1 }
        return start < end ? start..<end : nil
    }
}
