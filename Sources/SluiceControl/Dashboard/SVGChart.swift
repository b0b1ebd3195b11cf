/// Charts drawn on the server as inline SVG: no script, nothing fetched, so the dashboard
/// works offline in a cluster and under a policy that forbids every script. Every label is
/// escaped here, since the templates insert the SVG as it is.
enum SVGChart {
    /// One layer of a stacked chart: a value per bucket.
    struct Series: Sendable, Equatable {
        var name: String
        var values: [Double]
    }

    /// Colours for the layers, in order; the last is for "other".
    static let palette = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    ]

    /// Stacked bars, one per bucket, with a legend. `format` writes a value for the axis and
    /// the tooltips.
    static func stackedBars(
        buckets: [String], series: [Series], format: (Double) -> String, title: String,
        width: Int = 860, height: Int = 260
    ) -> String {
        let (left, top, bottom) = (70.0, 10.0, 40.0)
        let legendHeight = Double((series.count + 3) / 4) * 18
        let plotWidth = Double(width) - left - 10
        let plotHeight = Double(height) - top - bottom
        let totals = buckets.indices.map { index in series.reduce(0) { $0 + ($1.values[safe: index] ?? 0) } }
        let peak = niceCeiling(totals.max() ?? 0)
        let slot = buckets.isEmpty ? plotWidth : plotWidth / Double(buckets.count)
        let barWidth = max(1, slot * 0.8)
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="\(width)" \
            height="\(Int(Double(height) + legendHeight))" \
            viewBox="0 0 \(width) \(Int(Double(height) + legendHeight))">\
            <title>\(escape(title))</title>
            """
        for step in 0...4 {
            let value = peak * Double(step) / 4
            let y = top + plotHeight - plotHeight * Double(step) / 4
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(y))\""
            svg += " stroke=\"#ddd\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\" font-size=\"11\">"
            svg += "\(escape(format(value)))</text>"
        }
        let labelEvery = max(1, buckets.count / 12)
        for (index, bucket) in buckets.enumerated() {
            let x = left + slot * Double(index) + (slot - barWidth) / 2
            var base = top + plotHeight
            for (layer, line) in series.enumerated() {
                let value = line.values[safe: index] ?? 0
                guard value > 0, peak > 0 else { continue }
                let barHeight = plotHeight * value / peak
                base -= barHeight
                svg += "<rect x=\"\(f(x))\" y=\"\(f(base))\" width=\"\(f(barWidth))\" height=\"\(f(barHeight))\""
                svg += " fill=\"\(palette[min(layer, palette.count - 1)])\">"
                svg += "<title>\(escape(line.name)) · \(escape(bucket)): \(escape(format(value)))</title></rect>"
            }
            if index % labelEvery == 0 {
                svg += "<text x=\"\(f(x + barWidth / 2))\" y=\"\(f(top + plotHeight + 16))\" text-anchor=\"middle\""
                svg += " font-size=\"11\">\(escape(bucket))</text>"
            }
        }
        for (layer, line) in series.enumerated() {
            let x = left + Double(layer % 4) * (plotWidth / 4)
            let y = Double(height) + Double(layer / 4) * 18 - 4
            svg += "<rect x=\"\(f(x))\" y=\"\(f(y - 10))\" width=\"10\" height=\"10\""
            svg += " fill=\"\(palette[min(layer, palette.count - 1)])\"/>"
            svg += "<text x=\"\(f(x + 14))\" y=\"\(f(y))\" font-size=\"12\">\(escape(truncated(line.name)))</text>"
        }
        if series.isEmpty {
            svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(top + plotHeight / 2))\" text-anchor=\"middle\""
            svg += " font-size=\"13\">no usage in this range</text>"
        }
        return svg + "</svg>"
    }

    /// A budget's burn-down: what is left after each bucket's cumulative spend, falling from
    /// the budget toward zero, drawn against the straight line that would spend it exactly
    /// by the window's end.
    static func burnDown(remaining: [Double], buckets: Int, budget: Double, title: String) -> String {
        let (width, height) = (220.0, 48.0)
        let slot = width / Double(max(buckets, 1))
        func y(_ value: Double) -> Double {
            budget > 0 ? height - height * max(0, min(value, budget)) / budget : height
        }
        var points = "0,\(f(y(budget)))"
        for (index, value) in remaining.enumerated() { points += " \(f(slot * Double(index + 1))),\(f(y(value)))" }
        return """
            <svg xmlns="http://www.w3.org/2000/svg" class="burn" role="img" \
            width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))"><title>\(escape(title))</title>\
            <line x1="0" y1="0" x2="\(f(width))" y2="\(f(height))" stroke="#bbb" stroke-dasharray="3,3"/>\
            <polyline points="\(points)" fill="none" stroke="#e15759" stroke-width="2"/></svg>
            """
    }

    /// A round number at or above `value` for the axis top: 1, 2 or 5 times a power of ten.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0, value.isFinite else { return 1 }
        var magnitude = 1.0
        while magnitude * 10 <= value { magnitude *= 10 }
        while magnitude > value { magnitude /= 10 }
        for factor in [1.0, 2, 5, 10] where magnitude * factor >= value { return magnitude * factor }
        return magnitude * 10
    }

    /// Escapes text for HTML and SVG: element content and quoted attributes.
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "&": escaped += "&amp;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    private static func truncated(_ name: String) -> String { name.count > 28 ? name.prefix(27) + "…" : name }

    /// Coordinates with at most one decimal.
    private static func f(_ value: Double) -> String {
        let tenths = (value * 10).rounded()
        return tenths.truncatingRemainder(dividingBy: 10) == 0 ? String(Int(tenths / 10)) : String(tenths / 10)
    }
}

extension Array {
    fileprivate subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
