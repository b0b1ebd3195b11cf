import NIOCore
import NIOHTTP1
import SluiceAPI
import SluicePolicy

/// `GET /v1/models`: the aliases this caller may call, in OpenAI's list shape. It asks for
/// the same identity as a call (a caller refused a call is refused the list, with the same
/// status and rule) and lists only what the model rules let that identity use, so the list
/// never tells a caller more than a call would.
enum ListModels {
    static func answer(headers: HTTPHeaders, peer: SocketAddress?, runtime: AgentRuntime)
        -> Result<[UInt8], Authorize.Refusal>
    {
        let now = runtime.now()
        if let refusal = Gate.check(runtime: runtime, now: now) { return .failure(refusal) }
        let engine = runtime.activePolicy.engine
        let caller: Caller
        switch Identify.caller(headers: headers, peer: peer, runtime: runtime, engine: engine, now: now) {
        case .success(let found): caller = found
        case .failure(let denial): return .failure(Authorize.refusal(denial))
        }
        var body: [UInt8] = Array(#"{"object":"list","data":["#.utf8)
        var first = true
        let catalog = runtime.activePolicy.configuration.catalog
        // A model_group_alias name is listed when its alias may be used, as LiteLLM lists it.
        let groupNames = catalog.groupAliases.keys.filter { !catalog.hiddenGroupAliases.contains($0) }.sorted()
        for name in catalog.names + groupNames {
            guard case .success = engine.authorize(caller, model: name) else { continue }
            if !first { body.append(UInt8(ascii: ",")) }
            first = false
            body.append(contentsOf: #"{"id":"#.utf8)
            appendJSONString(name, to: &body)
            body.append(contentsOf: #","object":"model","created":0,"owned_by":"sluice"}"#.utf8)
        }
        body.append(contentsOf: "]}".utf8)
        return .success(body)
    }
}
