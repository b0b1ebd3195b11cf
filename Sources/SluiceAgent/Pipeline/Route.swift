import SluiceHTTP2
import SluicePolicy

/// Step 5 (route): alias → one deployment, by weight.
enum Route {
    static func pick(_ alias: ModelAlias) -> Deployment {
        alias.deployments.count == 1 ? alias.deployments[0] : alias.deployment(forRoll: Int.random(in: 0..<alias.totalWeight))
    }

    static func origin(of deployment: Deployment) -> UpstreamOrigin {
        let endpoint = deployment.endpoint
        return UpstreamOrigin(scheme: endpoint.scheme == .https ? .https : .http, host: endpoint.host, port: endpoint.port,
                              trustRoots: deployment.caFile.map { .caFile($0) } ?? .system)
    }
}
