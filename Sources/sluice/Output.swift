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
            let pretty = try JSONSerialization.data(
                withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: pretty, as: UTF8.self))
            return
        }
        let rows = (value as? [[String: Any]]) ?? [(value as? [String: Any]) ?? [:]]
        table(rows.map { row in columns.map { text(lookup(row, $0), field: $0) } }, headers: columns)
    }

    static func table(_ rows: [[String]], headers: [String]) {
        var widths = headers.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(
                separator: "  "
            )
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

    /// A cell for people: JSON booleans as yes/no (a number never is one), `*_at` fields as
    /// UTC times, `*_usd` amounts in dollars, and other numbers in plain decimals.
    static func text(_ value: Any?, field: String = "") -> String {
        switch value {
        case nil, is NSNull: return "-"
        case let string as String: return string
        case let number as NSNumber:
            // JSONSerialization gives NSNumber for both; only a JSON true/false is a boolean.
            if String(describing: type(of: number)) == "__NSCFBoolean" { return number.boolValue ? "yes" : "no" }
            if field.hasSuffix("_at"), let seconds = Int64(exactly: number.doubleValue) {
                return timestamp(Date(timeIntervalSince1970: Double(seconds)))
            }
            if field.hasSuffix("_usd") { return "$" + decimal(number.doubleValue, minimumFraction: 2) }
            return decimal(number.doubleValue)
        case let array as [Any]: return array.map { text($0) }.joined(separator: ",")
        case let dictionary as [String: Any]:
            return dictionary.keys.sorted().map { "\($0)=\(text(dictionary[$0], field: $0))" }.joined(separator: ",")
        default: return "\(value!)"
        }
    }

    /// `2026-12-05 12:30:00Z`.
    static func timestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss'Z'"
        return formatter.string(from: date)
    }

    /// A number without exponent: `1000000`, `0.0000025`, `12.5`.
    static func decimal(_ value: Double, minimumFraction: Int = 0) -> String {
        if value == value.rounded(), abs(value) < 1e15, minimumFraction == 0 { return String(Int64(value)) }
        var text = String(format: "%.12f", value)
        while text.hasSuffix("0"), let dot = text.firstIndex(of: "."),
            text.distance(from: dot, to: text.endIndex) > minimumFraction + 1
        {
            text.removeLast()
        }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
