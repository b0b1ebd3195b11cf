import Foundation
import SluiceAPI
import Testing

@Suite("OpenAIRequest")
struct OpenAIRequestTests {
    func request(_ text: String, endpoint: OpenAIEndpoint = .chatCompletions) throws(RequestBodyError) -> OpenAIRequest
    {
        try OpenAIRequest(endpoint: endpoint, body: Array(text.utf8))
    }

    func code(_ text: String, endpoint: OpenAIEndpoint = .chatCompletions) -> String? {
        do {
            _ = try request(text, endpoint: endpoint)
            return nil
        } catch {
            return error.code
        }
    }

    @Test("rewrites only the model, keeping every other byte")
    func rewriteModel() throws {
        let body =
            #"{ "messages":[{"role":"user","content":"a \"quoted\" é"}],"model" :  "alias",  "temperature":0.25 }"#
        let parsed = try request(body)
        #expect(parsed.model == "alias")
        let out = String(decoding: parsed.upstreamBody(model: "gpt-4o-2024-08-06"), as: UTF8.self)
        #expect(out == body.replacingOccurrences(of: #""alias""#, with: #""gpt-4o-2024-08-06""#))
    }

    @Test("escapes the upstream model name")
    func escapesModel() throws {
        let out = String(decoding: try request(#"{"model":"a"}"#).upstreamBody(model: "we\"ird\\"), as: UTF8.self)
        #expect(out == #"{"model":"we\"ird\\"}"#)
    }

    @Test(
        "adds include_usage to streams in every shape of stream_options",
        arguments: [
            (#"{"model":"a","stream":true}"#, #"{"model":"b","stream":true,"stream_options":{"include_usage":true}}"#),
            (
                #"{"model":"a","stream":true,"stream_options":null}"#,
                #"{"model":"b","stream":true,"stream_options":{"include_usage":true}}"#
            ),
            (
                #"{"model":"a","stream":true,"stream_options":{}}"#,
                #"{"model":"b","stream":true,"stream_options":{"include_usage":true}}"#
            ),
            (
                #"{"model":"a","stream":true,"stream_options":{"x":1}}"#,
                #"{"model":"b","stream":true,"stream_options":{"include_usage":true,"x":1}}"#
            ),
            (
                #"{"model":"a","stream":true,"stream_options":{"include_usage":false}}"#,
                #"{"model":"b","stream":true,"stream_options":{"include_usage":true}}"#
            ),
            (#"{"model":"a","stream":false}"#, #"{"model":"b","stream":false}"#),
        ])
    func includeUsage(input: String, expected: String) throws {
        let parsed = try request(input)
        let out = String(decoding: parsed.upstreamBody(model: "b"), as: UTF8.self)
        #expect(out == expected)
        #expect(!parsed.callerRequestedUsage)
        // The output is itself valid JSON.
        #expect(throws: Never.self) { try request(out) }
    }

    @Test("notices a caller's own include_usage and leaves it alone")
    func callerUsage() throws {
        let parsed = try request(#"{"model":"a","stream":true,"stream_options":{"include_usage":true}}"#)
        #expect(parsed.callerRequestedUsage)
        #expect(
            String(decoding: parsed.upstreamBody(model: "a"), as: UTF8.self)
                == #"{"model":"a","stream":true,"stream_options":{"include_usage":true}}"#)
    }

    @Test(
        "refuses fields that would choose the upstream or its credentials",
        arguments: Array(OpenAIRequest.forbiddenFields))
    func forbidden(field: String) {
        #expect(code(#"{"model":"a","\#(field)":"http://evil.example"}"#) == "forbidden_field")
    }

    @Test("refuses bodies without a usable model or with a bad stream flag")
    func invalid() {
        #expect(code(#"{"messages":[]}"#) == "missing_model")
        #expect(code(#"{"model":""}"#) == "invalid_model")
        #expect(code(#"{"model":7}"#) == "invalid_model")
        #expect(code(#"{"model":"a","stream":"yes"}"#) == "invalid_stream")
        #expect(code(#"{"model":"a","stream":true}"#, endpoint: .embeddings) == "invalid_stream")
        #expect(code(#"{"model":"a","model":"b"}"#) == "duplicate_key")
        #expect(code("not json") == "invalid_json")
        #expect(
            code(#"{"model":"a","x":"# + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}")
                == "json_too_deep")
    }

    @Test("reads the end user")
    func user() throws {
        #expect(try request(#"{"model":"a","user":"u-42"}"#).user == "u-42")
        #expect(try request(#"{"model":"a"}"#).user == nil)
    }
}

@Suite("OpenAIRequest prompt texts")
struct PromptTextTests {
    static func texts(_ body: String, endpoint: OpenAIEndpoint = .chatCompletions, stopAfter: Int = .max) throws
        -> [String]
    {
        let request = try OpenAIRequest(endpoint: endpoint, body: Array(body.utf8))
        var texts: [String] = []
        request.visitPromptTexts { text in
            texts.append(String(decoding: text, as: UTF8.self))
            return texts.count < stopAfter
        }
        return texts
    }

    @Test("chat: string contents and the text of content parts, escapes decoded, escaped keys found")
    func chat() throws {
        let body = #"""
            {"model":"m","messages":[
              {"role":"system","content":"line one\nline \"two\" \u00e9"},
              {"role":"user","content":[{"type":"text","text":"part"},{"type":"image_url","image_url":{"url":"x"}}]},
              {"role":"assistant","content":null},
              {"role":"user","cont\u0065nt":"escaped key"},
              {"role":"user","name":"no content"}
            ]}
            """#
        #expect(try Self.texts(body) == ["line one\nline \"two\" é", "part", "escaped key"])
    }

    @Test("completions, embeddings and Responses read their own fields; token arrays have no text")
    func otherEndpoints() throws {
        #expect(try Self.texts(#"{"model":"m","prompt":["a","b",[1,2]]}"#, endpoint: .completions) == ["a", "b"])
        #expect(try Self.texts(#"{"model":"m","input":[101,102]}"#, endpoint: .embeddings).isEmpty)
        let responses = #"""
            {"model":"m","instructions":"be brief","input":[
              {"role":"user","content":[{"type":"input_text","text":"deep"}]},"plain"]}
            """#
        #expect(try Self.texts(responses, endpoint: .responses) == ["be brief", "deep", "plain"])
    }

    @Test("visiting stops when the visitor says so")
    func stops() throws {
        let body = #"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":["b","c"]}]}"#
        #expect(try Self.texts(body) == ["a", "b", "c"])
        #expect(try Self.texts(body, stopAfter: 1) == ["a"])
        #expect(try Self.texts(body, stopAfter: 2) == ["a", "b"])
    }
}
