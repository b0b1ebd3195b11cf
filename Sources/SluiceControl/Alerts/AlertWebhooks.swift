import Foundation
import SluicePolicy
import SluiceWire

/// Where the control plane posts alert notices: `--alert-webhooks FILE`, a JSON file read
/// at start. It lives beside the control plane, not in the store, because each webhook's
/// signing secret must never reach the policy bundles or the admin API.
///
/// ```json
/// {"webhooks": [{"name": "ops", "url": "https://hooks.example/sluice", "format": "json",
///                "secret_file": "/etc/sluice/alerts/ops"}]}
/// ```
public struct AlertWebhooks: Sendable, Equatable {
    public var webhooks: [AlertWebhook]

    public init(webhooks: [AlertWebhook] = []) { self.webhooks = webhooks }

    /// Reads and checks the file and every secret it names; an error names the field.
    public static func load(from path: String) throws(ControlStartError) -> AlertWebhooks {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ControlStartError("cannot read --alert-webhooks \(path)")
        }
        let file: AlertWebhooksFile
        do {
            file = try WireCoding.decodeStrict(AlertWebhooksFile.self, from: data)
        } catch let error as DecodingError {
            throw ControlStartError("--alert-webhooks \(path): \(WireCoding.describe(error))")
        } catch {
            throw ControlStartError("--alert-webhooks \(path): not JSON (\(error))")
        }
        var webhooks: [AlertWebhook] = []
        for (index, entry) in file.webhooks.enumerated() {
            let at = "--alert-webhooks \(path): webhooks[\(index)]"
            guard Identifier.isSimpleName(entry.name), !webhooks.contains(where: { $0.name == entry.name }) else {
                throw ControlStartError("\(at).name: a unique name of lower-case letters, digits, . _ - is required")
            }
            guard let url = URL(string: entry.url), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
                url.host?.isEmpty == false, entry.url.utf8.count <= 2048
            else { throw ControlStartError("\(at).url: an http(s) URL is required") }
            let format = entry.format ?? "json"
            guard let parsed = AlertWebhook.Format(rawValue: format) else {
                throw ControlStartError("\(at).format: json or slack, not \(Identifier.quoted(format))")
            }
            guard let bytes = FileManager.default.contents(atPath: entry.secretFile) else {
                throw ControlStartError("\(at).secret_file: cannot read \(entry.secretFile)")
            }
            let secret = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard secret.utf8.count >= 16 else {
                throw ControlStartError("\(at).secret_file: the secret must be at least 16 characters")
            }
            webhooks.append(AlertWebhook(name: entry.name, url: url, format: parsed, secret: Secret(secret)))
        }
        guard webhooks.count <= 16 else {
            throw ControlStartError("--alert-webhooks \(path): webhooks: at most 16")
        }
        return AlertWebhooks(webhooks: webhooks)
    }
}

/// One destination for alert notices.
public struct AlertWebhook: Sendable, Equatable {
    /// The body posted: Sluice's own notice (`json`), or `{"text": …}` for a Slack
    /// incoming webhook and the chat tools that read the same body (`slack`).
    public enum Format: String, Sendable {
        case json, slack
    }

    public var name: String
    public var url: URL
    public var format: Format
    /// Signs every post: `Sluice-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
    /// Nil only for the older `settings.budget_webhook_url`, which is posted unsigned.
    public var secret: Secret?

    public init(name: String, url: URL, format: Format = .json, secret: Secret?) {
        self.name = name
        self.url = url
        self.format = format
        self.secret = secret
    }
}

/// The file as written; ``AlertWebhooks/load(from:)`` checks it.
struct AlertWebhooksFile: Decodable {
    struct Entry: Decodable {
        var name: String
        var url: String
        var format: String?
        var secretFile: String

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, url, format
            case secretFile = "secret_file"
        }

        init(from decoder: any Decoder) throws {
            try decoder.refuseUnknownFields(CodingKeys.self)
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            url = try container.decode(String.self, forKey: .url)
            format = try container.decodeIfPresent(String.self, forKey: .format)
            secretFile = try container.decode(String.self, forKey: .secretFile)
        }
    }

    var webhooks: [Entry]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case webhooks
    }

    init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownFields(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        webhooks = try container.decode([Entry].self, forKey: .webhooks)
    }
}
