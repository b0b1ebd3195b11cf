/// One call's usage as the agent spools it: a line of JSON appended before the call's
/// accounting is done. Records are folded into ``UsageDelta`` cells only when a batch is
/// sealed, so the per-call cost is one small write.
public struct UsageRecord: Codable, Sendable, Equatable {
    /// Start of the hour (Unix seconds) the call was made in.
    public var hour: Int64
    public var team: String?
    public var project: String?
    public var service: String
    public var keyID: String?
    /// The alias asked for; empty when the call was refused before a model was known.
    public var model: String
    /// 1 for a call that was forwarded, 0 for a refusal.
    public var requests: Int64
    public var promptTokens: Int64
    public var completionTokens: Int64
    /// The parts of `promptTokens` read from and written to the provider's prompt cache.
    public var cachedPromptTokens: Int64
    public var cacheCreationTokens: Int64
    public var costPicoUSD: Int64
    /// The refusal's reason code, for calls refused by policy.
    public var denial: String?
    /// The rule that refused it (`team "ml" tokens_per_minute`): names only, as the audit
    /// line has it.
    public var denialRule: String?

    public init(
        hour: Int64, team: String? = nil, project: String? = nil, service: String, keyID: String? = nil, model: String,
        requests: Int64, promptTokens: Int64 = 0, completionTokens: Int64 = 0, cachedPromptTokens: Int64 = 0,
        cacheCreationTokens: Int64 = 0, costPicoUSD: Int64 = 0, denial: String? = nil, denialRule: String? = nil
    ) {
        self.hour = hour
        self.team = team
        self.project = project
        self.service = service
        self.keyID = keyID
        self.model = model
        self.requests = requests
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedPromptTokens = cachedPromptTokens
        self.cacheCreationTokens = cacheCreationTokens
        self.costPicoUSD = costPicoUSD
        self.denial = denial
        self.denialRule = denialRule
    }

    /// Short keys: the spool holds one of these per call.
    enum CodingKeys: String, CodingKey {
        case hour = "h"
        case team = "t"
        case project = "p"
        case service = "s"
        case keyID = "k"
        case model = "m"
        case requests = "r"
        case
            promptTokens = "pt"
        case completionTokens = "ct"
        case cachedPromptTokens = "pc"
        case cacheCreationTokens = "pw"
        case costPicoUSD = "c"
        case denial = "d"
        case denialRule = "dr"
    }

    /// The record as one line of JSON with its newline, written by hand because it is
    /// built once per call on the event loop (no interpolation, no intermediate
    /// collections); the agent's spool reads it back with its own reader, held to `JSONDecoder`.
    public var jsonLine: [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(192)
        line.append(contentsOf: #"{"h":"#.utf8)
        Self.appendNumber(hour, to: &line)
        Self.appendField(#","t":"#, team, to: &line)
        Self.appendField(#","p":"#, project, to: &line)
        Self.appendField(#","s":"#, service, to: &line)
        Self.appendField(#","k":"#, keyID, to: &line)
        Self.appendField(#","m":"#, model, to: &line)
        Self.appendField(#","d":"#, denial, to: &line)
        Self.appendField(#","dr":"#, denialRule, to: &line)
        line.append(contentsOf: #","r":"#.utf8)
        Self.appendNumber(requests, to: &line)
        // Zero counts are left out: most lines are refusals or calls without cache figures.
        Self.appendCount(#","pt":"#, promptTokens, to: &line)
        Self.appendCount(#","ct":"#, completionTokens, to: &line)
        Self.appendCount(#","pc":"#, cachedPromptTokens, to: &line)
        Self.appendCount(#","pw":"#, cacheCreationTokens, to: &line)
        Self.appendCount(#","c":"#, costPicoUSD, to: &line)
        line.append(contentsOf: "}\n".utf8)
        return line
    }

    private static func appendField(_ key: StaticString, _ value: String?, to line: inout [UInt8]) {
        guard let value else { return }
        key.withUTF8Buffer { line.append(contentsOf: $0) }
        appendQuoted(value, to: &line)
    }

    private static func appendCount(_ key: StaticString, _ value: Int64, to line: inout [UInt8]) {
        guard value != 0 else { return }
        key.withUTF8Buffer { line.append(contentsOf: $0) }
        appendNumber(value, to: &line)
    }

    private static func appendNumber(_ value: Int64, to line: inout [UInt8]) {
        if value < 0 { line.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[19 - count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            line.append(contentsOf: buffer[(20 - count)...])
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        hour = try container.decode(Int64.self, forKey: .hour)
        team = try container.decodeIfPresent(String.self, forKey: .team)
        project = try container.decodeIfPresent(String.self, forKey: .project)
        service = try container.decode(String.self, forKey: .service)
        keyID = try container.decodeIfPresent(String.self, forKey: .keyID)
        model = try container.decode(String.self, forKey: .model)
        requests = try container.decode(Int64.self, forKey: .requests)
        promptTokens = try container.decodeIfPresent(Int64.self, forKey: .promptTokens) ?? 0
        completionTokens = try container.decodeIfPresent(Int64.self, forKey: .completionTokens) ?? 0
        cachedPromptTokens = try container.decodeIfPresent(Int64.self, forKey: .cachedPromptTokens) ?? 0
        cacheCreationTokens = try container.decodeIfPresent(Int64.self, forKey: .cacheCreationTokens) ?? 0
        costPicoUSD = try container.decodeIfPresent(Int64.self, forKey: .costPicoUSD) ?? 0
        denial = try container.decodeIfPresent(String.self, forKey: .denial)
        denialRule = try container.decodeIfPresent(String.self, forKey: .denialRule)
    }

    private static func appendQuoted(_ text: String, to line: inout [UInt8]) {
        line.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): line.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): line.append(contentsOf: #"\\"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                line.append(contentsOf: #"\u00"#.utf8)
                line.append(hex[Int(byte >> 4)])
                line.append(hex[Int(byte & 0xF)])
            default: line.append(byte)
            }
        }
        line.append(UInt8(ascii: "\""))
    }
}

extension UsageRecord {
    /// Folds records into one delta per (hour, team, project, service, key, model) cell,
    /// in a stable order, so a batch is small and its bytes repeatable.
    public static func deltas(_ records: [UsageRecord]) -> [UsageDelta] {
        var cells: [UsageCell: UsageDelta] = [:]
        for record in records {
            let cell = UsageCell(
                hour: record.hour, team: record.team, project: record.project, service: record.service,
                keyID: record.keyID, model: record.model)
            var delta =
                cells[cell]
                ?? UsageDelta(
                    hour: record.hour, team: record.team, project: record.project, service: record.service,
                    keyID: record.keyID, model: record.model)
            delta.requests += record.requests
            delta.promptTokens += record.promptTokens
            delta.completionTokens += record.completionTokens
            delta.cachedPromptTokens += record.cachedPromptTokens
            delta.cacheCreationTokens += record.cacheCreationTokens
            delta.costPicoUSD += record.costPicoUSD
            if let denial = record.denial { delta.denials[denial, default: 0] += 1 }
            // Past the bound a cell's further rules go uncounted by rule; their reasons
            // are still counted above.
            if let rule = record.denialRule, (1...UsageDelta.maxRuleBytes).contains(rule.utf8.count),
                delta.denialRules[rule] != nil || delta.denialRules.count < UsageDelta.maxRules
            {
                delta.denialRules[rule, default: 0] += 1
            }
            cells[cell] = delta
        }
        return cells.values.sorted { left, right in
            (left.hour, left.team ?? "", left.project ?? "", left.service, left.keyID ?? "", left.model)
                < (right.hour, right.team ?? "", right.project ?? "", right.service, right.keyID ?? "", right.model)
        }
    }
}

private struct UsageCell: Hashable {
    var hour: Int64
    var team: String?, project: String?, service: String, keyID: String?, model: String
}
