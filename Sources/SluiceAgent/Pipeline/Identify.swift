import NIOHTTP1

/// Step 2 (identify): the virtual key a caller presented, from `Authorization: Bearer …`
/// or `X-API-Key`. The policy engine turns it into a caller; nothing here logs it.
enum Identify {
    static func presentedKey(in headers: HTTPHeaders) -> String? {
        if let authorization = headers.first(name: "authorization") {
            let trimmed = authorization.drop(while: { $0 == " " })
            if trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " {
                let token = trimmed.dropFirst(7).trimmingCharacters(in: " ")
                if !token.isEmpty { return token }
            }
        }
        if let apiKey = headers.first(name: "x-api-key") {
            let token = Substring(apiKey).trimmingCharacters(in: " ")
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
