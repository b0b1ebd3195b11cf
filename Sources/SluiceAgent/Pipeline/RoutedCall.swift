import NIOCore
import SluiceAPI
import SluiceHTTP2
import SluicePolicy

/// What a ``ResponseRelay`` tells the call it is one attempt of.
protocol AttemptOwner: AnyObject {
    /// The attempt failed before anything reached the caller. Returns true when the owner
    /// takes over (a retry or a fallback follows), and the relay must then stay silent;
    /// false when the relay should pass the failure to the caller.
    func attemptFailed(_ failure: AttemptFailure) -> Bool
    /// The attempt is over and accounted: its answer is written, or the caller went away.
    /// `failure` is set when it failed in a way routing counts.
    func attemptEnded(
        _ ending: ResponseEnding, timeToFirstByte: TimeAmount?, usage: TokenUsage?, failure: AttemptFailure?)
}

/// One admitted call, through as many upstream attempts as routing allows: a deployment
/// chosen by the strategy, retries with backoff on 429/5xx/connect failures while nothing
/// has reached the caller, then the configured fallbacks. Runs on the caller's event loop.
final class RoutedCall: AttemptOwner {
    private let channel: any Channel
    private let permit: Authorize.Permit
    private let account: Account
    private let runtime: AgentRuntime
    private let onComplete: (ResponseEnding) -> Void
    private var plan: RoutePlan
    private var tried: Set<DeploymentKey> = []
    private var attempts = 0
    /// The attempt in progress, and its deployment and alias.
    private var relay: ResponseRelay?
    private var current: (deployment: Deployment, alias: ModelAlias)?
    private var pendingAttempt: Scheduled<Void>?
    private var lastFailure: AttemptFailure?
    private var callerGone = false
    /// Tokens counted against a deployment's `tpm` when it is chosen, put right at the end.
    private let estimatedTokens: Int

    init(
        channel: any Channel, permit: Authorize.Permit, account: Account, runtime: AgentRuntime,
        onComplete: @escaping (ResponseEnding) -> Void
    ) {
        self.channel = channel
        self.permit = permit
        self.account = account
        self.runtime = runtime
        self.onComplete = onComplete
        plan = RoutePlan(alias: permit.alias.name, settings: permit.policy.configuration.catalog.router)
        estimatedTokens = TokenUsage.estimate(promptBytes: permit.request.body.count, completionBytes: 0).promptTokens
    }

    private var settings: RouterSettings { plan.settings }

    func start() { attempt() }

    private func attempt() {
        pendingAttempt = nil
        guard !callerGone else { return }
        let catalog = permit.policy.configuration.catalog
        guard let alias = catalog.alias(named: plan.alias) else { return giveUp(unavailable: nil) }
        let deployment: Deployment
        switch runtime.router.choose(
            from: alias, settings: settings, tried: tried, estimatedTokens: estimatedTokens, now: runtime.now())
        {
        case .chosen(let chosen):
            deployment = chosen
        case .unavailable(let why):
            runtime.metrics.deploymentsUnavailable(alias: alias.name)
            switch plan.nextWhenUnavailable() {
            case .fallback(let next):
                runtime.metrics.fellBack(from: alias.name, to: next)
                return attempt()
            case .retry, .giveUp:
                return giveUp(unavailable: why)
            }
        }
        var upstreamRequest: UpstreamRequest
        do throws(RequestBodyError) {
            upstreamRequest = try Forward.request(
                for: permit, alias: alias, deployment: deployment, settings: runtime.settings,
                identity: runtime.identity, allocator: channel.allocator)
        } catch {
            finishRouting(deployment, ttfb: nil, usage: nil, failure: nil)
            // Admitted, but not expressible in the provider's dialect: the reservation goes back.
            let refusal = OpenAIError(
                status: 400, message: error.message, type: "invalid_request_error", code: error.code, param: error.param
            )
            account.settle(
                CallOutcome(
                    status: 400, deployment: deployment, servedBy: alias, attempts: max(attempts, 1),
                    errorCode: error.code))
            writeJSONResponse(
                permit.callerDialect.body(refusal), status: 400, on: channel, requestID: account.requestID, close: false
            )
            onComplete(.complete)
            return
        }
        if let trace = account.trace {
            upstreamRequest.headers.append(("traceparent", trace.attemptStarted(deployment, at: runtime.now())))
        }
        attempts += 1
        tried.insert(deployment.key)
        current = (deployment, alias)
        let relay = ResponseRelay(
            channel: channel, permit: permit, alias: alias, deployment: deployment, attempt: attempts,
            account: account, runtime: runtime, owner: self)
        self.relay = relay
        relay.call = runtime.upstream.execute(
            upstreamRequest, to: DeploymentRouter.origin(of: deployment), on: channel.eventLoop, delegate: relay)
    }

    // MARK: - AttemptOwner

    func attemptFailed(_ failure: AttemptFailure) -> Bool {
        guard let (deployment, alias) = current, !callerGone else { return false }
        account.trace?.attemptEnded(outcome: failure.label, at: runtime.now())
        let step = plan.next(after: failure, roll: Double.random(in: 0..<1))
        if case .giveUp = step { return false }
        finishRouting(deployment, ttfb: nil, usage: nil, failure: failure)
        relay = nil
        current = nil
        lastFailure = failure
        switch step {
        case .retry(_, let delay):
            runtime.metrics.retried(alias: alias.name)
            pendingAttempt = channel.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) {
                [self] in
                self.attempt()
            }
        case .fallback(let next):
            runtime.metrics.fellBack(from: alias.name, to: next)
            pendingAttempt = channel.eventLoop.assumeIsolated().scheduleTask(in: .zero) { [self] in self.attempt() }
        case .giveUp:
            break
        }
        return true
    }

    func attemptEnded(
        _ ending: ResponseEnding, timeToFirstByte: TimeAmount?, usage: TokenUsage?, failure: AttemptFailure?
    ) {
        guard let (deployment, _) = current else { return }
        account.trace?.attemptEnded(outcome: failure?.label ?? "ok", at: runtime.now())
        finishRouting(deployment, ttfb: timeToFirstByte, usage: usage, failure: failure)
        current = nil
        relay = nil
        if !callerGone { onComplete(ending) }
    }

    /// The caller went away: stop the attempt in progress, or the one waiting to start.
    func clientDisconnected() {
        callerGone = true
        if let pendingAttempt {
            pendingAttempt.cancel()
            self.pendingAttempt = nil
            account.settle(CallOutcome(status: 499, attempts: attempts, errorCode: "client_disconnected"))
            return
        }
        relay?.clientDisconnected()
    }

    // MARK: -

    private func finishRouting(
        _ deployment: Deployment, ttfb: TimeAmount?, usage: TokenUsage?, failure: AttemptFailure?
    ) {
        runtime.router.finished(
            deployment, timeToFirstByteSeconds: ttfb.map { Double($0.nanoseconds) / 1e9 },
            tokensUsed: usage.map { $0.promptTokens + $0.completionTokens }, estimatedTokens: estimatedTokens,
            failure: failure, settings: settings, now: runtime.now())
    }

    /// No deployment can take the call and no fallback is left: 429 when they are all at
    /// their own caps, 503 when some are cooling down, with when to come back.
    private func giveUp(unavailable: DeploymentBoard.Unavailable?) {
        let why = unavailable ?? DeploymentBoard.Unavailable(coolingDown: 0, atCap: 0, retryAfterSeconds: 1)
        let allCapped = why.atCap > 0 && why.coolingDown == 0
        var message = "no deployment of \(plan.alias) can take the call now"
        if why.coolingDown > 0 { message += ": \(why.coolingDown) cooling down after failures" }
        if why.atCap > 0 { message += "\(why.coolingDown > 0 ? "," : ":") \(why.atCap) at their rpm/tpm caps" }
        if let lastFailure { message += " (the last attempt failed: \(lastFailure.label))" }
        if plan.visited.count > 1 { message += "; tried \(plan.visited.joined(separator: ", "))" }
        let error = OpenAIError(
            status: allCapped ? 429 : 503, message: message, type: allCapped ? "rate_limit_error" : "server_error",
            code: "no_deployment_available")
        account.settle(CallOutcome(status: error.status, attempts: attempts, errorCode: error.code))
        writeJSONResponse(
            permit.callerDialect.body(error), status: error.status, on: channel, requestID: account.requestID,
            close: false,
            extraHeaders: [("retry-after", String(why.retryAfterSeconds))]
                + RateLimitHeaders.fields(for: permit.admission.reservation.status))
        onComplete(.complete)
    }
}
