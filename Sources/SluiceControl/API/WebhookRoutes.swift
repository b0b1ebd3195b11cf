import Foundation
import Hummingbird
import Logging
import SluiceKubernetes

extension ControlAPI {
    /// The sidecar injection webhook (`admission.k8s.io/v1` AdmissionReview): `POST /mutate`
    /// injects pods annotated `sluice.dev/inject: "true"`; `POST /mutate/namespace` is the
    /// webhook entry whose namespace selector matched `sluice.dev/inject=true`, so every pod
    /// there is injected unless it opts out. Every review is answered `allowed`: a pod the
    /// injector cannot serve starts without the agent, with a warning, and is logged.
    ///
    /// No credential: the API server authenticates the webhook by its TLS certificate, and
    /// the answer holds nothing secret (the policy public key and the CA are public).
    func addWebhookRoutes(to router: Router<ControlContext>, settings: InjectionSettings) {
        let logger = webhookLogger
        for (path, namespaceOptedIn) in [("/mutate", false), ("/mutate/namespace", true)] {
            router.post(RouterPath(path)) { request, _ in
                let body = try await readBody(request)
                let review: AdmissionRequest
                do throws(AdmissionError) {
                    review = try AdmissionRequest(review: Array(body))
                } catch {
                    throw APIError(400, "not an AdmissionReview: \(error.message)", code: "invalid_admission_review")
                }
                let (answer, injection) = AdmissionWebhook.review(
                    review, namespaceOptedIn: namespaceOptedIn, settings: settings)
                let pod =
                    review.object?["metadata"]?["name"]?.stringValue
                    ?? review.object?["metadata"]?["generateName"]?.stringValue ?? "?"
                let metadata: Logger.Metadata = [
                    "namespace": "\(review.namespace)", "pod": "\(pod)", "uid": "\(review.uid)",
                ]
                if let service = injection.service {
                    logger.info("injected the agent", metadata: metadata.merging(["service": "\(service)"]) { $1 })
                } else if !injection.warnings.isEmpty {
                    logger.warning(
                        "pod admitted without the agent",
                        metadata: metadata.merging(["reason": "\(injection.skipped ?? "")"]) { $1 })
                }
                return Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(bytes: answer)))
            }
        }
    }
}
