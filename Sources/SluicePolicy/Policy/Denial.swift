/// Why a call was refused, ready to be written as an OpenAI-shaped error. The message names
/// the rule or limit and its scope; it never holds a key, a prompt or matched text.
public struct Denial: Error, Sendable, Equatable {
    /// Why a call was refused; the raw value is the `code` in the error body and audit line.
    public enum Reason: String, Sendable, CaseIterable {
        case missingKey = "missing_api_key"
        case invalidKey = "invalid_api_key"
        case revokedKey = "api_key_revoked"
        case expiredKey = "api_key_expired"
        case unknownModel = "model_not_found"
        case modelNotAllowed = "model_not_allowed"
        case promptBlocked = "prompt_blocked"
        case priceMissing = "price_missing"
        case rateLimited = "rate_limit_exceeded"
        case budgetExceeded = "budget_exceeded"
        case parallelLimit = "parallel_limit_exceeded"
        case requestTooLarge = "request_exceeds_limit"
        case tooManyEndUsers = "end_user_table_full"
        /// The request's `user` is an end user an admin blocked.
        case endUserBlocked = "end_user_blocked"
        /// Every deployment of the alias needs a provider credential this agent does not hold.
        case credentialUnavailable = "credential_unavailable"
        /// A guardrail denied the prompt.
        case guardrailBlocked = "guardrail_blocked"
        /// A fail-closed guardrail gave no verdict.
        case guardrailUnavailable = "guardrail_unavailable"
        /// A gateway token came before the agent could read the gateway's signing keys.
        case identityKeysUnavailable = "identity_keys_unavailable"
    }

    public var reason: Reason
    public var message: String
    /// The rule that decided, e.g. `team "ml" tokens_per_minute` or `filter "ssn"`.
    public var rule: String
    /// Whole seconds after which the same call could succeed, for `Retry-After`.
    public var retryAfterSeconds: Int?
    /// For limit denials: the tightest limits as they stood, for the `x-ratelimit-*` headers.
    public var rateLimits: RateLimitStatus?

    public init(_ reason: Reason, _ message: String, rule: String, retryAfterSeconds: Int? = nil) {
        self.reason = reason
        self.message = message
        self.rule = rule
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// HTTP status: 401 identity, 404 unknown model, 403 not allowed, 429 limits, 503 no credential here.
    public var status: Int {
        switch reason {
        case .missingKey, .invalidKey, .revokedKey, .expiredKey: 401
        case .unknownModel: 404
        case .modelNotAllowed, .promptBlocked, .priceMissing, .guardrailBlocked, .endUserBlocked: 403
        case .rateLimited, .budgetExceeded, .parallelLimit, .requestTooLarge, .tooManyEndUsers: 429
        case .credentialUnavailable, .guardrailUnavailable, .identityKeysUnavailable: 503
        }
    }

    /// The OpenAI error `type` a client library keys its exception class on.
    public var type: String {
        switch reason {
        case .missingKey, .invalidKey, .revokedKey, .expiredKey: "invalid_request_error"
        case .unknownModel: "invalid_request_error"
        case .modelNotAllowed, .promptBlocked, .priceMissing, .guardrailBlocked, .endUserBlocked: "permission_error"
        case .budgetExceeded: "insufficient_quota"
        case .rateLimited, .parallelLimit, .requestTooLarge, .tooManyEndUsers: "requests"
        case .credentialUnavailable, .guardrailUnavailable, .identityKeysUnavailable: "api_error"
        }
    }
}
