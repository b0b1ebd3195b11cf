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
            let trimmed = value.drop(while: { $0 == " " })
            let hasBearer = trimmed.count > 7 && trimmed.prefix(7).lowercased() == "bearer "
            // Authorization carries a scheme; other headers carry the key, perhaps with one.
            if name == "authorization", !hasBearer { continue }
            let token = (hasBearer ? trimmed.dropFirst(7) : trimmed).trimmingCharacters(in: " ")
            if !token.isEmpty { return token }
        }
        return nil
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var result = self
        while result.first == set { result.removeFirst() }
        while result.last == set { result.removeLast() }
        return String(result)
    }
}
