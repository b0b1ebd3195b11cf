import NIOCore
import NIOHTTP1
import SluiceAPI
import SluiceHTTP2
import SluicePolicy

/// A call to a provider endpoint Sluice does not meter (files, batches, images, audio, …),
/// let through by an explicit pass-through in the policy (see ``PassThrough``). It is
/// identified, checked against the pass-through's scopes and its alias's model rules,
/// counted against request limits and budgets (with nothing reserved for tokens), then
/// forwarded as it is, any method and body (multipart uploads included, up to the body
/// cap), to the alias's deployment of the path's provider, with that deployment's
/// credential. The answer streams back untouched; a JSON answer's `usage`, when it has one,
/// is priced at the alias's rates. Upstream errors are scrubbed of credentials. It is never
/// retried: uploads and batch creation are not idempotent. Prompt filters and guardrails do
/// not read these bodies.
enum PassThroughCall {
    /// An admitted pass-through call.
    struct Admitted {
        let passThrough: PassThrough
        let alias: ModelAlias
        let deployment: Deployment
        let call: AdmittedCall
    }

    /// Nil when no pass-through covers `method` on `path` for this caller: the
    /// `endpoint_not_metered` refusal stands.
    static func check(
        method: String, path: String, headers: HTTPHeaders, peer: SocketAddress?, runtime: AgentRuntime
    ) -> Result<Admitted, Authorize.Refusal>? {
        let policy = runtime.activePolicy
        let engine = policy.engine
        guard engine.hasPassThrough(method: method, path: path) else { return nil }
        let now = runtime.now()
        if let refusal = Gate.check(runtime: runtime, now: now) { return .failure(refusal) }
        let caller: Caller
        switch Identify.caller(headers: headers, peer: peer, runtime: runtime, engine: engine, now: now) {
        case .success(let found): caller = found
        case .failure(let denial): return .failure(Authorize.refusal(denial))
        }
        guard let passThrough = engine.passThrough(for: caller, method: method, path: path) else { return nil }
        let alias: ModelAlias
        switch engine.authorize(caller, model: passThrough.alias) {
        case .success(let found): alias = found
        case .failure(let denial): return .failure(Authorize.refusal(denial, caller: caller))
        }
        guard let deployment = alias.deployments.first(where: { $0.dialect == passThrough.dialect }) else {
            return .failure(
                Authorize.Refusal(
                    error: OpenAIError(
                        status: 503,
                        message: "the pass-through \"\(passThrough.name)\" has no \(passThrough.dialect.rawValue)"
                            + " deployment of \(alias.name) on this agent",
                        type: "api_error", code: "no_deployment_available"), caller: caller, alias: alias.name))
        }
        switch engine.admit(
            caller, alias: alias, endUser: caller.vouchedUser, promptTokens: 0, maxOutputTokens: 0, now: now)
        {
        case .success(let admission):
            return .success(
                Admitted(
                    passThrough: passThrough, alias: alias, deployment: deployment,
                    call: AdmittedCall(
                        admission: admission, policy: policy, aliasName: alias.name, endUser: caller.vouchedUser,
                        stream: false,
                        metrics: runtime.metrics.allowed(alias: alias.name, team: caller.team))))
        case .failure(let denial):
            return .failure(Authorize.refusal(denial, caller: caller, alias: alias.name))
        }
    }

    /// Headers of the caller's that go upstream: what describes the body and what the
    /// providers' own SDKs send for these endpoints. Credentials never do.
    static let forwardedRequestHeaders: Set<String> = [
        "content-type", "accept", "openai-beta", "openai-organization", "openai-project", "idempotency-key",
        "anthropic-version", "anthropic-beta",
    ]

    /// Headers of the provider's answer that go back to the caller.
    static let returnedResponseHeaders: Set<String> = [
        "content-type", "content-disposition", "retry-after", "openai-processing-ms", "x-request-id",
        "request-id",
    ]

    /// The upstream request: the caller's method, path (under the deployment's base, whose
    /// `/v1` or `/v1beta` stands for the caller's), query and body.
    static func request(
        _ admitted: Admitted, method: String, uri: String, headers callerHeaders: HTTPHeaders, body: ByteBuffer?,
        settings: AgentSettings
    ) -> UpstreamRequest {
        let deployment = admitted.deployment
        let path = AgentRoute.path(of: uri)
        let query = uri.utf8.count > path.utf8.count ? String(uri.dropFirst(path.count)) : ""
        let version = path.hasPrefix("/v1beta/") ? "/v1beta" : "/v1"
        let base = deployment.endpoint.basePath
        let upstreamPath = (base.hasSuffix(version) ? base + path.dropFirst(version.count) : base + path) + query
        var headers: [(name: String, value: String)] = [("user-agent", "sluice-agent/0.1")]
        for header in callerHeaders where forwardedRequestHeaders.contains(header.name.lowercased()) {
            headers.append((header.name.lowercased(), header.value))
        }
        let credential = deployment.credential
        switch deployment.dialect {
        case .openAI, .azure:
            if !credential.isEmpty { headers.append(("authorization", "Bearer " + credential.reveal())) }
        case .anthropic:
            if !headers.contains(where: { $0.name == "anthropic-version" }) {
                headers.append(("anthropic-version", Forward.anthropicVersion))
            }
            if !credential.isEmpty { headers.append(("x-api-key", credential.reveal())) }
        case .gemini:
            if !credential.isEmpty { headers.append(("x-goog-api-key", credential.reveal())) }
        }
        let firstByte = deployment.timeoutSeconds ?? settings.firstByteTimeoutSeconds
        return UpstreamRequest(
            method: method, path: upstreamPath, headers: headers, body: body ?? ByteBuffer(),
            firstByteTimeout: .nanoseconds(Int64(firstByte * 1e9)),
            idleTimeout: .nanoseconds(Int64(settings.idleTimeoutSeconds * 1e9)))
    }
}
