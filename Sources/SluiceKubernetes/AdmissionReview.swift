import Foundation
import SluiceAPI

/// An `admission.k8s.io/v1` AdmissionReview, as the API server sends it to `POST /mutate`
/// and as the webhook answers.
public struct AdmissionRequest: Sendable {
    /// The review's id, echoed in the answer.
    public var uid: String
    /// `{group, version, kind}` of the object; only core `v1` Pods are injected.
    public var kind: String
    /// The object's API group; empty for core objects such as Pods.
    public var group: String
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    public var operation: String
    /// The request's namespace (a pod being created may not carry one in its metadata yet).
    public var namespace: String
    /// The object as submitted.
    public var object: JSONValue?

    /// Reads the review's `request`; an error names what is missing or malformed.
    public init(review body: [UInt8]) throws(AdmissionError) {
        let review: JSONValue
        do {
            review = try JSONValue.parseObject(body, maxDepth: 128)
        } catch {
            throw AdmissionError("the body is not a JSON object: \(error)")
        }
        guard review["apiVersion"]?.stringValue == "admission.k8s.io/v1",
            review["kind"]?.stringValue == "AdmissionReview"
        else {
            throw AdmissionError("expected apiVersion admission.k8s.io/v1 and kind AdmissionReview")
        }
        guard let request = review["request"], let uid = request["uid"]?.stringValue, !uid.isEmpty else {
            throw AdmissionError("request.uid is missing")
        }
        self.uid = uid
        kind = request["kind"]?["kind"]?.stringValue ?? ""
        group = request["kind"]?["group"]?.stringValue ?? ""
        operation = request["operation"]?.stringValue ?? ""
        namespace = request["namespace"]?.stringValue ?? request["object"]?["metadata"]?["namespace"]?.stringValue ?? ""
        object = request["object"]
    }
}

/// Why an AdmissionReview could not be read (answered with HTTP 400).
public struct AdmissionError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Turns a review into the webhook's answer.
public enum AdmissionWebhook {
    /// The answer to one review: always `allowed`, with the injection patch when there is
    /// one. Anything but a Pod being created is admitted unchanged.
    public static func review(
        _ request: AdmissionRequest, namespaceOptedIn: Bool, settings: InjectionSettings
    ) -> (response: [UInt8], injection: Injection) {
        let injection: Injection
        if request.kind == "Pod", request.group.isEmpty, request.operation == "CREATE", let pod = request.object {
            injection = PodInjector.inject(
                pod: pod, namespace: request.namespace, namespaceOptedIn: namespaceOptedIn, settings: settings)
        } else {
            injection = Injection(patch: [], warnings: [], skipped: "not a pod being created")
        }
        var response: [(key: String, value: JSONValue)] = [("uid", .string(request.uid)), ("allowed", .bool(true))]
        if !injection.patch.isEmpty {
            let patch = JSONValue.array(injection.patch.map(\.json)).bytes
            response.append(("patchType", .string("JSONPatch")))
            response.append(("patch", .string(Data(patch).base64EncodedString())))
        }
        if !injection.warnings.isEmpty {
            response.append(("warnings", .array(injection.warnings.map { .string($0) })))
        }
        let review = JSONValue.object([
            ("apiVersion", .string("admission.k8s.io/v1")), ("kind", .string("AdmissionReview")),
            ("response", .object(response)),
        ])
        return (review.bytes, injection)
    }
}
