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
            guard let value = headers.first(name: name) else { continue }
            // Read as bytes: the scheme and the spaces are ASCII, and Character-wise
            // trimming cost more than the rest of identifying the caller.
            let token = Self.token(in: value[...].utf8, isAuthorization: name == "authorization")
            if !token.isEmpty { return String(Substring(token)) }
        }
        return nil
    }

    /// The key in one header's value: after `Bearer ` (any case) when there is one, without
    /// surrounding spaces. Authorization carries a scheme, so there it must have one; other
    /// headers carry the key, perhaps with one. Empty when there is no key.
    private static func token(in value: Substring.UTF8View, isAuthorization: Bool) -> Substring.UTF8View {
        let space = UInt8(ascii: " ")
        var rest = value.drop(while: { $0 == space })
        let hasBearer =
            rest.count > 7
            && rest.prefix(7).elementsEqual("bearer ".utf8) { byte, lower in
                (UInt8(ascii: "A")...UInt8(ascii: "Z") ~= byte ? byte | 0x20 : byte) == lower
            }
        if isAuthorization, !hasBearer { return rest.prefix(0) }
        if hasBearer { rest = rest.dropFirst(7) }
        rest = rest.drop(while: { $0 == space })
        while rest.last == space { rest = rest.dropLast() }
        return rest
    }
}
