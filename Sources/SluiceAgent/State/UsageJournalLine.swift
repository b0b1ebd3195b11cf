import SluiceAPI
import SluiceWire

/// Reads one spool journal line (``UsageRecord/jsonLine``) back into its record.
///
/// Every call's record is read once more when its journal is sealed, and Foundation's
/// `JSONDecoder` spent about 65 k instructions on each: more than the call itself cost on
/// the event loop. This reader validates the line with ``JSONScanner`` (strict JSON, no
/// duplicate keys) and reads the fields by name. It accepts what `JSONDecoder` accepts of
/// a well-formed line: a key it does not know is ignored, a `null` optional is absent. It
/// is stricter in one way: a count must be an integer literal (`jsonLine` writes no other).
/// `UsageJournalLineTests` holds the two to the same answers.
enum UsageJournalLine {
    private static let names: [StaticString] = [
        "h", "t", "p", "s", "k", "m", "r", "pt", "ct", "pc", "pw", "c", "d", "dr",
    ]

    /// The record on `line` (without its newline), or nil when the line is not one.
    static func record(_ line: UnsafeRawBufferPointer) -> UsageRecord? {
        guard let values = try? JSONScanner.scanObject(line, values: names) else { return nil }
        func integer(_ index: Int) -> Int64?? {
            guard let value = values[index], value.kind != .null else { return .some(nil) }
            guard value.kind == .number, let number = JSONScanner.integer(at: value.range, in: line) else { return nil }
            return .some(number)
        }
        func string(_ index: Int) -> String?? {
            guard let value = values[index], value.kind != .null else { return .some(nil) }
            guard value.kind == .string, let text = JSONScanner.decodeString(at: value.range, in: line) else {
                return nil
            }
            return .some(text)
        }
        guard let hour = integer(0), let hour,
            let team = string(1), let project = string(2),
            let service = string(3), let service,
            let keyID = string(4),
            let model = string(5), let model,
            let requests = integer(6), let requests,
            let promptTokens = integer(7), let completionTokens = integer(8),
            let cachedPromptTokens = integer(9), let cacheCreationTokens = integer(10),
            let cost = integer(11),
            let denial = string(12), let denialRule = string(13)
        else { return nil }
        return UsageRecord(
            hour: hour, team: team, project: project, service: service, keyID: keyID, model: model,
            requests: requests, promptTokens: promptTokens ?? 0, completionTokens: completionTokens ?? 0,
            cachedPromptTokens: cachedPromptTokens ?? 0, cacheCreationTokens: cacheCreationTokens ?? 0,
            costPicoUSD: cost ?? 0, denial: denial, denialRule: denialRule)
    }
}
