import Foundation

/// How results are printed: aligned columns for people, JSON for scripts.
enum OutputFormat: String, CaseIterable, Sendable {
    case table, json
}

enum Printer {
    /// Prints a JSON value either as it is (pretty) or as a table of `columns`.
    static func show(_ data: Data, format: OutputFormat, columns: [String]) throws {
        let value = try JSONSerialization.jsonObject(with: data)
        if format == .json {
            let pretty = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: pretty, as: UTF8.self))
            return
        }
        let rows = (value as? [[String: Any]]) ?? [(value as? [String: Any]) ?? [:]]
        table(rows.map { row in columns.map { text(lookup(row, $0)) } }, headers: columns)
    }

    static func table(_ rows: [[String]], headers: [String]) {
        var widths = headers.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        print(line(headers.map { $0.uppercased() }))
        for row in rows { print(line(row)) }
        if rows.isEmpty { print("(none)") }
    }

    /// `a.b` reads nested fields.
    static func lookup(_ row: [String: Any], _ path: String) -> Any? {
        var current: Any? = row
        for part in path.split(separator: ".") {
            if let index = Int(part), let array = current as? [Any] {
                current = index < array.count ? array[index] : nil
            } else {
                current = (current as? [String: Any])?[String(part)]
            }
        }
        return current
    }

    static func text(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "-"
        case let string as String: return string
        case let flag as Bool: return flag ? "yes" : "no"
        case let integer as Int: return String(integer)
        case let number as Double: return String(number)
        case let array as [Any]: return array.map { text($0) }.joined(separator: ",")
        case let dictionary as [String: Any]:
            return dictionary.keys.sorted().map { "\($0)=\(text(dictionary[$0]))" }.joined(separator: ",")
        default: return "\(value!)"
        }
    }
}
