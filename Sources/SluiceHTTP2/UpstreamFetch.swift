import NIOConcurrencyHelpers
import NIOCore

/// One answer read whole: what small control-plane and API-server calls need, where the
/// caller wants the body at once rather than streamed.
public struct FetchedResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of header `name` (lower-case), if the answer has it.
    public func header(_ name: String) -> String? { headers.first(where: { $0.name == name })?.value }
}

/// Why a fetch got no answer: the connection failed, timed out, the answer was larger than
/// allowed, or the task was cancelled.
public struct FetchFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

extension UpstreamClient {
    /// Sends `request` to `origin` and reads the answer whole, up to `limit` bytes of body.
    /// Cancelling the task cancels the call; the answer or the cancellation ends it, once.
    /// `subject` names the peer in failures ("the control plane", "the API server").
    /// `deadline`, when set, bounds the whole call (connecting included): past it the call
    /// is cancelled and fails saying so.
    public func fetch(
        _ request: UpstreamRequest, to origin: UpstreamOrigin, on eventLoop: any EventLoop, limit: Int,
        subject: String, deadline: TimeAmount? = nil
    ) async throws(FetchFailure) -> FetchedResponse {
        let pending = NIOLockedValueBox<PendingFetch>(PendingFetch())
        let result: Result<FetchedResponse, FetchFailure> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let alreadyCancelled = pending.withLockedValue { state in
                    state.continuation = continuation
                    return state.cancelled
                }
                if alreadyCancelled {
                    pending.withLockedValue { $0.take() }?.resume(returning: .failure(.init(message: "cancelled")))
                    return
                }
                eventLoop.execute {
                    let collector = WholeResponseCollector(limit: limit, subject: subject) { result in
                        pending.withLockedValue { $0.take() }?.resume(returning: result)
                    }
                    let call = self.execute(request, to: origin, on: eventLoop, delegate: collector)
                    collector.call = call
                    if let deadline {
                        let milliseconds = deadline.nanoseconds / 1_000_000
                        let timer = eventLoop.assumeIsolated().scheduleTask(in: deadline) {
                            collector.expire("\(subject) gave no answer within \(milliseconds) ms")
                        }
                        collector.deadline = timer
                    }
                    let cancelled = pending.withLockedValue { state in
                        state.call = call
                        return state.cancelled
                    }
                    if cancelled { call.cancel() }
                }
            }
        } onCancel: {
            let (call, continuation) = pending.withLockedValue { state in
                state.cancelled = true
                return (state.call, state.take())
            }
            call?.cancel()
            continuation?.resume(returning: .failure(.init(message: "cancelled")))
        }
        return try result.get()
    }
}

/// One fetch's continuation and handle, shared by the answer and a cancellation.
private struct PendingFetch {
    var continuation: CheckedContinuation<Result<FetchedResponse, FetchFailure>, Never>?
    var call: UpstreamCall?
    var cancelled = false

    mutating func take() -> CheckedContinuation<Result<FetchedResponse, FetchFailure>, Never>? {
        defer { continuation = nil }
        return continuation
    }
}

/// Gathers one answer on its event loop and hands it over once, whole or failed.
private final class WholeResponseCollector: UpstreamResponseDelegate {
    private let limit: Int
    private let subject: String
    private var done: ((Result<FetchedResponse, FetchFailure>) -> Void)?
    private var head: UpstreamResponseHead?
    private var body: [UInt8] = []
    var call: UpstreamCall?
    /// The whole-call deadline's timer, cancelled when the answer comes first.
    var deadline: Scheduled<Void>?

    init(limit: Int, subject: String, done: @escaping (Result<FetchedResponse, FetchFailure>) -> Void) {
        self.limit = limit
        self.subject = subject
        self.done = done
    }

    func upstreamReceivedHead(_ head: UpstreamResponseHead) { self.head = head }

    func upstreamReceivedBody(_ chunk: ByteBuffer) {
        guard done != nil else { return }
        guard body.count + chunk.readableBytes <= limit else {
            call?.cancel()
            finish(.failure(.init(message: "\(subject)'s answer exceeds \(limit) bytes")))
            return
        }
        body.append(contentsOf: chunk.readableBytesView)
        call?.consumed(chunk.readableBytes)
    }

    func upstreamFinished() {
        guard let head else {
            finish(.failure(.init(message: "\(subject) closed the stream without an answer")))
            return
        }
        finish(.success(.init(status: head.status, headers: head.headers, body: body)))
    }

    func upstreamFailed(_ error: UpstreamError) {
        finish(.failure(.init(message: error.description)))
    }

    /// The deadline passed first: the call is cancelled and fails with `message`.
    func expire(_ message: String) {
        deadline = nil
        guard done != nil else { return }
        call?.cancel()
        finish(.failure(.init(message: message)))
    }

    private func finish(_ result: Result<FetchedResponse, FetchFailure>) {
        let done = self.done
        self.done = nil
        call = nil
        deadline?.cancel()
        deadline = nil
        done?(result)
    }
}
