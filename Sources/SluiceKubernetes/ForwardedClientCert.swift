import SluicePolicy

/// Envoy's `x-forwarded-client-cert` header: what the mesh proxy in front of Sluice learned
/// from the client's certificate. Elements are separated by commas (one per proxy hop, the
/// last added by the proxy nearest Sluice), pairs by semicolons, `Key=Value`, values
/// optionally double-quoted (with `\"` escapes). Istio puts the client's SPIFFE ID,
/// `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`, in `URI`.
public enum ForwardedClientCert {
    /// A workload a mesh certificate names.
    public struct Workload: Sendable, Equatable {
        public var namespace: String
        public var serviceAccount: String

        public init(namespace: String, serviceAccount: String) {
            self.namespace = namespace
            self.serviceAccount = serviceAccount
        }
    }

    /// The workload of the nearest hop's client certificate, when its `URI` is a SPIFFE ID
    /// of `trustDomain`; nil for anything else (another domain, no URI, malformed text).
    public static func workload(in header: String, trustDomain: String) -> Workload? {
        guard header.utf8.count <= 16_384, let nearest = elements(header).last else { return nil }
        for (key, value) in nearest where key.lowercased() == "uri" {
            if let workload = spiffeWorkload(value, trustDomain: trustDomain) { return workload }
        }
        return nil
    }

    /// `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`, exactly.
    public static func spiffeWorkload(_ id: String, trustDomain: String) -> Workload? {
        let prefix = "spiffe://\(trustDomain)/"
        guard id.hasPrefix(prefix) else { return nil }
        let parts = id.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "ns", parts[2] == "sa", Identifier.isDNSLabel(String(parts[1])),
            !parts[3].isEmpty, parts[3].utf8.count <= 253,
            parts[3].utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || isLowerAlnum($0) })
        else { return nil }
        return Workload(namespace: String(parts[1]), serviceAccount: String(parts[3]))
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// The header's elements, each its key/value pairs in order.
    static func elements(_ header: String) -> [[(key: String, value: String)]] {
        var elements: [[(key: String, value: String)]] = []
        var pairs: [(key: String, value: String)] = []
        var key = ""
        var value = ""
        var inKey = true
        var quoted = false
        var escaped = false
        func endPair() {
            if !key.isEmpty { pairs.append((key.trimmingSpaces, value)) }
            key = ""
            value = ""
            inKey = true
        }
        for character in header {
            if quoted {
                if escaped {
                    value.append(character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    quoted = false
                } else {
                    value.append(character)
                }
                continue
            }
            switch character {
            case "\"" where !inKey && value.isEmpty: quoted = true
            case "=" where inKey: inKey = false
            case ";": endPair()
            case ",":
                endPair()
                elements.append(pairs)
                pairs = []
            default:
                if inKey { key.append(character) } else { value.append(character) }
            }
        }
        endPair()
        elements.append(pairs)
        return elements.filter { !$0.isEmpty }
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
