import NIOCore
import SluiceAPI
import SluiceHTTP2
import SluicePolicy

/// Step 6 (forward): the upstream request, in the deployment's dialect. Headers come from
/// an allowlist plus the provider credential; nothing the caller sent in headers goes
/// upstream unchecked. A body that cannot be said in the provider's dialect is refused
/// here (400), before anything is sent.
enum Forward {
    /// The Messages API version sent to Anthropic.
    static let anthropicVersion = "2023-06-01"

    static func request(
        for permit: Authorize.Permit, alias: ModelAlias, deployment: Deployment, settings: AgentSettings,
        identity: ServiceIdentity,
        allocator: ByteBufferAllocator
    ) throws(RequestBodyError) -> UpstreamRequest {
        var headers: [(name: String, value: String)] = [
            ("content-type", "application/json"),
            ("accept", permit.request.stream ? "text/event-stream" : "application/json"),
            ("user-agent", "sluice-agent/0.1"),
        ]
        let body: [UInt8]
        let path: String
        switch deployment.dialect {
        case .openAI:
            // The provider's `user` field names the workload when the caller named no end
            // user, so the provider's own abuse reports point at a service rather than at nobody.
            body = permit.request.upstreamBody(model: deployment.upstreamModel, defaultUser: identity.qualifiedName)
            path = deployment.endpoint.basePath + permit.request.endpoint.upstreamSuffix
            if !deployment.credential.isEmpty {
                headers.append(("authorization", "Bearer " + deployment.credential.reveal()))
            }
        case .azure:
            // The OpenAI wire format at the deployment's own URL; the body's model is the
            // deployment name, which Azure ignores in favour of the path.
            body = permit.request.upstreamBody(model: deployment.upstreamModel, defaultUser: identity.qualifiedName)
            if permit.request.endpoint == .responses {
                // Azure serves the Responses API once per resource, not per deployment: the
                // body's model names the deployment. Versions before it (dates compare as
                // text) cannot serve it at all, so the first that can stands in for them.
                let configured = deployment.apiVersion ?? ProviderDialect.defaultAzureAPIVersion
                let version = max(configured, ProviderDialect.firstAzureResponsesAPIVersion)
                path = deployment.endpoint.basePath + "/openai/responses?api-version=" + version
            } else {
                path =
                    deployment.endpoint.basePath + "/openai/deployments/" + deployment.upstreamModel
                    + permit.request.endpoint.upstreamSuffix
                    + "?api-version=" + (deployment.apiVersion ?? ProviderDialect.defaultAzureAPIVersion)
            }
            if !deployment.credential.isEmpty { headers.append(("api-key", deployment.credential.reveal())) }
        case .anthropic:
            if let native = permit.messagesRequest {
                // A Messages caller to a Messages provider: its own body, model swapped.
                body = nativeMessagesBody(
                    native, upstreamModel: deployment.upstreamModel, defaultUser: identity.qualifiedName)
            } else {
                let request = try chatRequest(permit, alias: alias, provider: "Anthropic", settings: settings)
                body = try AnthropicRequest.body(
                    from: request, upstreamModel: deployment.upstreamModel,
                    defaultMaxTokens: alias.maxOutputTokens ?? permit.engine.policy.defaultMaxOutputTokens,
                    defaultUser: identity.qualifiedName)
            }
            let base = deployment.endpoint.basePath
            path = base + (base.hasSuffix("/v1") ? "/messages" : "/v1/messages")
            headers.append(("anthropic-version", anthropicVersion))
            if !deployment.credential.isEmpty { headers.append(("x-api-key", deployment.credential.reveal())) }
        case .gemini where permit.request.endpoint == .embeddings:
            body = try GeminiEmbeddings.body(
                from: try parsedBody(permit, settings: settings), upstreamModel: deployment.upstreamModel)
            path = deployment.endpoint.basePath + "/models/" + deployment.upstreamModel + ":batchEmbedContents"
            if !deployment.credential.isEmpty { headers.append(("x-goog-api-key", deployment.credential.reveal())) }
        case .gemini:
            let request = try chatRequest(permit, alias: alias, provider: "Gemini", settings: settings)
            body = try GeminiRequest.body(from: request)
            path =
                deployment.endpoint.basePath + "/models/" + deployment.upstreamModel
                + (permit.request.stream ? ":streamGenerateContent?alt=sse" : ":generateContent")
            if !deployment.credential.isEmpty { headers.append(("x-goog-api-key", deployment.credential.reveal())) }
        }
        let firstByte = deployment.timeoutSeconds ?? settings.firstByteTimeoutSeconds
        return UpstreamRequest(
            method: "POST",
            path: path,
            headers: headers,
            body: allocator.buffer(bytes: body),
            firstByteTimeout: .nanoseconds(Int64(firstByte * 1e9)),
            idleTimeout: .nanoseconds(Int64(settings.idleTimeoutSeconds * 1e9)))
    }

    /// The caller's chat body as a value, for a provider that needs it rebuilt; only chat
    /// completions can be, and Responses API calls as the chat call they amount to.
    private static func chatRequest(
        _ permit: Authorize.Permit, alias: ModelAlias, provider: String,
        settings: AgentSettings
    ) throws(RequestBodyError) -> JSONValue {
        if permit.request.endpoint == .responses {
            return try ResponsesIngress.chatRequest(from: try parsedBody(permit, settings: settings))
        }
        guard permit.request.endpoint == .chatCompletions else {
            throw RequestBodyError(
                "\(alias.name) is served by \(provider),"
                    + " which has no \(permit.request.endpoint.rawValue); use /v1/chat/completions",
                code: "unsupported_endpoint")
        }
        return try parsedBody(permit, settings: settings)
    }

    /// The caller's body as a value, for a provider that needs it rebuilt.
    private static func parsedBody(_ permit: Authorize.Permit, settings: AgentSettings) throws(RequestBodyError)
        -> JSONValue
    {
        do {
            return try JSONValue.parseObject(permit.request.body, maxDepth: settings.maxJSONDepth)
        } catch {
            throw RequestBodyError("the body is not valid JSON: \(error)", code: "invalid_json")
        }
    }

    /// A caller's Messages body for an Anthropic deployment: every field kept, the model
    /// replaced, and the workload named in `metadata.user_id` when the caller named no one.
    private static func nativeMessagesBody(_ request: JSONValue, upstreamModel: String, defaultUser: String) -> [UInt8]
    {
        var members: [(key: String, value: JSONValue)] = (request.objectValue ?? []).map {
            $0.key == "model" ? ("model", .string(upstreamModel)) : $0
        }
        if !members.contains(where: { $0.key == "metadata" }) {
            members.append(("metadata", .object([("user_id", .string(defaultUser))])))
        }
        return JSONValue.object(members).bytes
    }
}
