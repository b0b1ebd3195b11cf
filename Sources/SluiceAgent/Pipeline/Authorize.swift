import SluiceAPI
import SluicePolicy

/// Step 3 (authorize): the body is well-formed and the alias exists. Later issues add
/// keys, allow/deny lists and prompt filters here; each denial names its rule.
enum Authorize {
    struct Permit {
        let request: OpenAIRequest
        let alias: ModelAlias
    }

    static func check(endpoint: OpenAIEndpoint, body: [UInt8], runtime: AgentRuntime) -> Result<Permit, OpenAIError> {
        let request: OpenAIRequest
        do {
            request = try OpenAIRequest(endpoint: endpoint, body: body, maxDepth: runtime.configuration.settings.maxJSONDepth)
        } catch {
            return .failure(OpenAIError(status: 400, message: error.message, type: "invalid_request_error", code: error.code, param: error.param))
        }
        guard let alias = runtime.configuration.catalog.alias(named: request.model) else {
            // The name is echoed JSON-escaped and truncated: it is caller input.
            return .failure(OpenAIError(status: 404, message: "The model `\(request.model.prefix(128))` does not exist or is not configured in this agent.",
                                        type: "invalid_request_error", code: "model_not_found", param: "model"))
        }
        return .success(Permit(request: request, alias: alias))
    }
}
