import NIOCore
import SluiceAPI
import SluiceHTTP2
import SluicePolicy

/// Step 6 (forward): the upstream request. Headers come from an allowlist plus the
/// provider credential; nothing the caller sent in headers goes upstream unchecked.
enum Forward {
    static func request(for permit: Authorize.Permit, deployment: Deployment, settings: AgentSettings, identity: ServiceIdentity,
                        allocator: ByteBufferAllocator) -> UpstreamRequest {
        // The provider's `user` field names the workload when the caller named no end user,
        // so the provider's own abuse reports point at a service rather than at nobody.
        let body = permit.request.upstreamBody(model: deployment.upstreamModel, defaultUser: identity.qualifiedName)
        var headers: [(name: String, value: String)] = [
            ("content-type", "application/json"),
            ("accept", permit.request.stream ? "text/event-stream" : "application/json"),
            ("user-agent", "sluice-agent/0.1"),
        ]
        if !deployment.credential.isEmpty {
            headers.append(("authorization", "Bearer " + deployment.credential.reveal()))
        }
        let firstByte = deployment.timeoutSeconds ?? settings.firstByteTimeoutSeconds
        return UpstreamRequest(
            method: "POST",
            path: deployment.endpoint.basePath + permit.request.endpoint.upstreamSuffix,
            headers: headers,
            body: allocator.buffer(bytes: body),
            firstByteTimeout: .nanoseconds(Int64(firstByte * 1e9)),
            idleTimeout: .nanoseconds(Int64(settings.idleTimeoutSeconds * 1e9)))
    }
}
