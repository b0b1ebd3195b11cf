import NIOHTTP1

/// Step 1 (accept): drop every inbound `X-Sluice-*` header. Identity is stamped by the agent
/// from its own configuration; a caller can never claim one.
enum ScrubHeaders {
    static func apply(_ headers: inout HTTPHeaders) {
        let spoofed = headers.compactMap { $0.name.lowercased().hasPrefix("x-sluice-") ? $0.name : nil }
        for name in spoofed { headers.remove(name: name) }
    }
}
