import Foundation

/// The time range and step a dashboard chart covers, read from `range` (`24h`, `7d`, `30d`
/// or `custom` with `from` and `to` UTC dates, `to` inclusive) and `step` (`hour` or `day`).
/// Buckets are whole UTC hours or days, as the rollups are.
struct DashboardRange: Sendable, Equatable {
    var name: String
    var step: UsageQuery.Dimension
    /// Unix seconds: inclusive start, exclusive end.
    var from: Int64
    var to: Int64
    /// The custom range's dates as given, for the form.
    var fromDate: String
    var toDate: String

    /// Most buckets one chart draws: 31 days of hours.
    static let maxBuckets = 744

    static func parse(_ parameters: [String: String], now: Int64) throws(DashboardError) -> DashboardRange {
        let name = parameters["range"] ?? "7d"
        let today = now - now % 86_400
        let (from, to): (Int64, Int64)
        switch name {
        case "24h": (from, to) = (now - now % 3600 - 23 * 3600, now - now % 3600 + 3600)
        case "7d": (from, to) = (today - 6 * 86_400, today + 86_400)
        case "30d": (from, to) = (today - 29 * 86_400, today + 86_400)
        case "custom":
            guard let start = date(parameters["from"]), let end = date(parameters["to"]), start <= end else {
                throw DashboardError(400, "a custom range needs from and to as UTC dates (YYYY-MM-DD), from ≤ to")
            }
            (from, to) = (start, end + 86_400)
        default:
            throw DashboardError(400, "range must be 24h, 7d, 30d or custom")
        }
        let stepName = parameters["step"] ?? (name == "24h" ? "hour" : "day")
        guard let step = UsageQuery.Dimension(rawValue: stepName), step.isTime else {
            throw DashboardError(400, "step must be hour or day")
        }
        let range = DashboardRange(
            name: name, step: step, from: from, to: to, fromDate: Self.format(date: from),
            toDate: Self.format(date: to - 86_400))
        guard range.bucketStarts.count <= maxBuckets else {
            throw DashboardError(400, "that range has more than \(maxBuckets) \(stepName)s: pick step=day")
        }
        return range
    }

    var stepSeconds: Int64 { step == .hour ? 3600 : 86_400 }

    /// Each bucket's start, in order.
    var bucketStarts: [Int64] {
        let first = from - from % stepSeconds
        return Array(stride(from: first, to: to, by: Int(stepSeconds)))
    }

    /// A bucket's label: `12-07` for days, `12-07 14h` for hours (UTC).
    func label(_ start: Int64) -> String {
        let components = Self.calendar.dateComponents(
            [.month, .day, .hour], from: Date(timeIntervalSince1970: TimeInterval(start)))
        let day = String(format: "%02d-%02d", components.month ?? 0, components.day ?? 0)
        return step == .hour ? day + String(format: " %02dh", components.hour ?? 0) : day
    }

    /// The query string that keeps this range (for links between pages).
    var query: String {
        var query = "range=\(name)&step=\(step.rawValue)"
        if name == "custom" { query += "&from=\(fromDate)&to=\(toDate)" }
        return query
    }

    static func format(date seconds: Int64) -> String {
        let components = calendar.dateComponents(
            [.year, .month, .day], from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        return String(format: "%04d-%02d-%02d", components.year ?? 0, components.month ?? 0, components.day ?? 0)
    }

    static func format(time seconds: Int64) -> String {
        let components = calendar.dateComponents(
            [.hour, .minute], from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        return format(date: seconds) + String(format: " %02d:%02d UTC", components.hour ?? 0, components.minute ?? 0)
    }

    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// A `YYYY-MM-DD` UTC date's first second, or nil.
    private static func date(_ text: String?) -> Int64? {
        guard let text, text.utf8.count == 10 else { return nil }
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3, (1970...9999).contains(parts[0]), (1...12).contains(parts[1]),
            (1...31).contains(parts[2])
        else { return nil }
        var components = DateComponents()
        (components.year, components.month, components.day) = (parts[0], parts[1], parts[2])
        guard let date = calendar.date(from: components), calendar.component(.day, from: date) == parts[2] else {
            return nil
        }
        return Int64(date.timeIntervalSince1970)
    }
}

/// A dashboard request that cannot be answered: the page says why, with this status.
struct DashboardError: Error {
    var status: Int
    var message: String

    init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// Money as the dashboard writes it: dollars with six decimals, exactly, from pico-USD.
func dashboardUSD(_ picoUSD: Int64) -> String {
    let sign = picoUSD < 0 ? "-" : ""
    let magnitude = picoUSD.magnitude
    let micro = (magnitude % 1_000_000_000_000) / 1_000_000
    return "\(sign)$\(magnitude / 1_000_000_000_000)." + String(format: "%06d", Int(micro))
}

/// How long ago, in the largest whole unit: `45s`, `12m`, `3h`, `2d`.
func dashboardAge(_ seconds: Int64) -> String {
    switch max(0, seconds) {
    case ..<120: "\(max(0, seconds))s"
    case ..<7200: "\(seconds / 60)m"
    case ..<172_800: "\(seconds / 3600)h"
    default: "\(seconds / 86_400)d"
    }
}
