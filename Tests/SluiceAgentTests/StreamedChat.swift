import Foundation
import SluiceTestSupport

/// An OpenAI chat stream as a caller reads it: the text of its content deltas, its finish
/// reasons, its usage chunk, and whether it ended with `[DONE]`. Throws when any event
/// before `[DONE]` is not a `chat.completion.chunk` object.
struct StreamedChat {
    var text = ""
    var finishReasons: [String] = []
    var usage: [String: Any]?
    var endedWithDone = false

    struct NotAChunk: Error { var line: String }

    init(_ response: TestResponse) throws {
        let lines = response.text.split(separator: "\n").filter { $0.hasPrefix("data: ") }.map { $0.dropFirst(6) }
        endedWithDone = lines.last == "[DONE]"
        for line in endedWithDone ? lines.dropLast() : lines[...] {
            guard let chunk = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                chunk["object"] as? String == "chat.completion.chunk"
            else { throw NotAChunk(line: String(line)) }
            if let choice = (chunk["choices"] as? [[String: Any]])?.first {
                text += ((choice["delta"] as? [String: Any])?["content"] as? String) ?? ""
                if let reason = choice["finish_reason"] as? String { finishReasons.append(reason) }
            }
            if let found = chunk["usage"] as? [String: Any] { usage = found }
        }
    }
}
