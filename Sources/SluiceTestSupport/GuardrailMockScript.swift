import SluiceAPI

/// The mock's guardrail (`POST …/guardrail`), speaking Sluice's guardrail exchange (see
/// `docs/guardrails.md`), for tests and the benchmark. A directive in the text of the last
/// message chooses the answer:
/// - none: `{"action":"allow"}`;
/// - `guard=deny`: a deny with the reason "mock policy";
/// - `guard=modify`: every digit of every message replaced by `#`;
/// - `guard=modify_bad`: a modify with one message too few (not a verdict);
/// - `guard=hang`: no answer at all;
/// - `guard=garbage`: 200 with a body that is not JSON;
/// - `guard=error`: 500;
/// - `guard_delay_ms=N`: the answer (any of the above) N ms late.
///
/// At the completion stage (`"stage": "completion"`) the same answers are chosen by
/// `guard_completion=…` instead (`deny`, `modify`, `hang`, `garbage`, `error`); the prompt
/// stage ignores those.
struct GuardrailMockScript {
    func steps(body: [UInt8]) -> [MockStep] {
        guard let request = try? JSONValue.parseObject(body), let messages = request["messages"]?.arrayValue else {
            return MockScript.json(400, #"{"error":"not a guardrail request"}"#)
        }
        var last = messages.last?["content"]?.stringValue ?? ""
        if request["stage"]?.stringValue == "completion" {
            guard let range = last.range(of: "guard_completion=") else {
                return MockScript.json(200, #"{"action":"allow"}"#)
            }
            last = "guard=" + last[range.upperBound...].prefix(while: { $0.isLetter || $0 == "_" })
            if last == "guard=modify" {
                return MockScript.json(200, #"{"action":"modify","reason":"answer masked","messages":[]}"#)
            }
        } else {
            last = last.replacingOccurrences(of: "guard_completion=", with: "completion_directive=")
        }
        var steps: [MockStep] = []
        if let delay = Self.number(after: "guard_delay_ms=", in: last), delay > 0 {
            steps.append(.delay(milliseconds: delay))
        }
        if last.contains("guard=hang") { return steps + [.hang] }
        if last.contains("guard=garbage") {
            let bytes = Array("<html>not a verdict</html>".utf8)
            return steps + [
                .head(status: 200, headers: [("content-type", "text/html"), ("content-length", String(bytes.count))]),
                .data(bytes), .end,
            ]
        }
        if last.contains("guard=error") { return steps + MockScript.json(500, #"{"error":"guardrail broke"}"#) }
        if last.contains("guard=deny") {
            return steps + MockScript.json(200, #"{"action":"deny","reason":"mock policy"}"#)
        }
        if last.contains("guard=modify") {
            var masked: [JSONValue] = messages.map { message in
                let text = message["content"]?.stringValue ?? ""
                let role = message["role"]?.stringValue ?? "user"
                let replaced = String(text.map { $0.isNumber ? "#" : $0 })
                return .object([("role", .string(role)), ("content", .string(replaced))])
            }
            if last.contains("guard=modify_bad") { masked.removeLast() }
            let answer = JSONValue.object([
                ("action", .string("modify")), ("reason", .string("digits masked")), ("messages", .array(masked)),
            ])
            return steps + MockScript.json(200, String(decoding: answer.bytes, as: UTF8.self))
        }
        return steps + MockScript.json(200, #"{"action":"allow"}"#)
    }

    private static func number(after marker: String, in text: String) -> Int? {
        guard let range = text.range(of: marker) else { return nil }
        return Int(text[range.upperBound...].prefix(while: \.isNumber))
    }
}
