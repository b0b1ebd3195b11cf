import Crypto
import Foundation
import SluiceControl
import SluiceTestSupport
import SluiceWire
import Testing

/// Webhook destinations written to a real `--alert-webhooks` file and read back through it.
struct AlertFixture {
    static let secret = "alert-signing-secret-0123456789"
    let directory: TemporaryDirectory
    let webhooks: AlertWebhooks

    /// - Parameter receivers: name, receiver and format of each webhook.
    init(_ receivers: [(name: String, receiver: WebhookReceiver, format: String)]) throws {
        directory = try TemporaryDirectory()
        let secretFile = directory.file("secret")
        try "\(Self.secret)\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
        let entries = receivers.map {
            #"{"name":"\#($0.name)","url":"http://127.0.0.1:\#($0.receiver.port)/hook","format":"\#($0.format)","#
                + #""secret_file":"\#(secretFile)"}"#
        }
        let file = directory.file("alerts.json")
        try #"{"webhooks":[\#(entries.joined(separator: ","))]}"#.write(
            toFile: file, atomically: true, encoding: .utf8)
        webhooks = try AlertWebhooks.load(from: file)
    }

    /// Checks `Sluice-Signature` as a receiver would: HMAC-SHA256 over "t.body" with the secret.
    static func signatureHolds(_ post: WebhookReceiver.Post) -> Bool {
        guard let header = post.headers["sluice-signature"] else { return false }
        let parts = Dictionary(
            header.split(separator: ",").map { $0.split(separator: "=", maxSplits: 1).map(String.init) }
                .filter { $0.count == 2 }.map { ($0[0], $0[1]) }
        ) { first, _ in first }
        guard let time = parts["t"], let given = parts["v1"] else { return false }
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("\(time).".utf8) + Data(post.body), using: SymmetricKey(data: Data(secret.utf8)))
        return given == mac.map { String(format: "%02x", $0) }.joined()
    }

    static func notice(_ post: WebhookReceiver.Post) throws -> AlertNotice {
        try WireCoding.decoder.decode(AlertNotice.self, from: Data(post.body))
    }
}

/// A usage batch of one delta per (hour, requests, cost), for `team` and optionally `key`.
func usageBatch(
    _ sequence: Int, team: String, key: String? = nil,
    deltas: [(hour: Int64, requests: Int, cost: Int64)]
) -> String {
    let rows = deltas.map { delta in
        let keyField = key.map { #""key_id":"\#($0)","# } ?? ""
        return
            #"{"hour":\#(delta.hour),"team":"\#(team)",\#(keyField)"service":"shop/checkout","model":"m","#
            + #""requests":\#(delta.requests),"prompt_tokens":1,"completion_tokens":1,"#
            + #""cost_pico_usd":\#(delta.cost),"denials":{}}"#
    }
    return
        #"{"agent_id":"agent-1","epoch":"e1","sequence":\#(sequence),"deltas":[\#(rows.joined(separator: ","))]}"#
}

@Suite("Alerts: alert-only limits, spikes, signed webhooks")
struct AlertTests {
    @Test(
        "an alert-only budget is never exhausted; its notices are signed, retried, and sent as JSON and for Slack",
        .timeLimit(.minutes(1)))
    func alertOnlyBudget() async throws {
        let ops = try await WebhookReceiver(failFirst: 2)
        let chat = try await WebhookReceiver()
        let fixture = try AlertFixture([("ops", ops, "json"), ("chat", chat, "slack")])
        try await ControlHarness.with(configure: {
            $0.alertWebhooks = fixture.webhooks
            $0.alertRetryBackoff = .milliseconds(20)
        }) { control in
            let token = try await control.agentToken("agent-1")
            #expect(
                try await control.request(
                    "POST", "/v1/admin/teams",
                    json:
                        #"{"name":"eng","limits":{"daily_spend_usd":0.00001,"mode":"alert","soft_budget_percent":40}}"#
                ).status == 201)
            let hour = Int64(Date().timeIntervalSince1970) / 3600 * 3600
            var opsPosts = ops.posts.makeAsyncIterator()
            var chatPosts = chat.posts.makeAsyncIterator()

            // Half the budget (5,000,000 of 10,000,000 pico-USD): past the team's own 40 %.
            let first = usageBatch(1, team: "eng", deltas: [(hour, 1, 5_000_000)])
            #expect(
                try await control.request("POST", "/v1/agent/usage", json: first, token: token).status
                    == 200)
            let failed = [try #require(await opsPosts.next()), try #require(await opsPosts.next())]
            let delivered = try #require(await opsPosts.next())
            #expect(failed.map(\.status) == [503, 503] && delivered.status == 204)
            #expect(Set((failed + [delivered]).map { $0.headers["sluice-notice-id"] ?? "" }).count == 1)
            #expect(AlertFixture.signatureHolds(delivered))
            let soft = try AlertFixture.notice(delivered)
            #expect(
                soft.event == "soft_budget_reached" && soft.scope == "eng" && soft.mode == "alert"
                    && soft.percent == 50)
            let chatSoft = try #require(await chatPosts.next())
            let chatBody =
                try JSONSerialization.jsonObject(with: Data(chatSoft.body)) as? [String: String]
            #expect(chatBody?.keys.sorted() == ["text"])
            #expect(
                chatBody?["text"]?.contains("team `eng` has spent $0.00 of its $0.00 daily budget (50 %)")
                    == true)
            #expect(AlertFixture.signatureHolds(chatSoft))

            // Past the budget: a notice that says so, and still nothing refused.
            let second = usageBatch(2, team: "eng", deltas: [(hour, 1, 6_000_000)])
            #expect(
                try await control.request("POST", "/v1/agent/usage", json: second, token: token).status
                    == 200)
            let exceeded = try AlertFixture.notice(try #require(await opsPosts.next()))
            #expect(
                exceeded.event == "budget_exceeded" && exceeded.mode == "alert" && exceeded.percent == 110)
            let bundle = try await control.request("GET", "/v1/agent/policy", token: token)
            let document = try WireCoding.decoder.decode(SignedBundle.self, from: Data(bundle.body))
                .verified(
                    with: control.publicKey)
            #expect(document.exhausted.isEmpty)
            let team = try #require(document.teams.first { $0.name == "eng" })
            // Agents get the mode, not the control plane's own alert settings.
            #expect(team.limits?.mode == "alert" && team.limits?.softBudgetPercent == nil)
            try await ops.stop()
            try await chat.stop()
        }
    }

    @Test("a spike in requests against the trailing day's baseline posts one notice", .timeLimit(.minutes(1)))
    func requestSpike() async throws {
        let ops = try await WebhookReceiver()
        let fixture = try AlertFixture([("ops", ops, "json")])
        try await ControlHarness.with(configure: { $0.alertWebhooks = fixture.webhooks }) { control in
            let token = try await control.agentToken("agent-1")
            #expect(
                try await control.request(
                    "POST", "/v1/admin/teams",
                    json: #"{"name":"ml","limits":{"spike":{"metric":"requests","factor":3,"minimum":50}}}"#
                ).status == 201)
            let hour = Int64(Date().timeIntervalSince1970) / 3600 * 3600
            // The day before: 10 requests an hour. This hour: 20, below the minimum of 50.
            let baseline = (1...24).map { (hour - Int64($0) * 3600, 10, Int64(1)) }
            let quiet = usageBatch(1, team: "ml", deltas: baseline + [(hour, 20, 1)])
            #expect(
                try await control.request("POST", "/v1/agent/usage", json: quiet, token: token).status
                    == 200)
            // 40 more: 60 this hour, over 3 × 10 and over the minimum.
            let busy = usageBatch(2, team: "ml", deltas: [(hour, 40, 1)])
            #expect(
                try await control.request("POST", "/v1/agent/usage", json: busy, token: token).status == 200
            )
            var posts = ops.posts.makeAsyncIterator()
            let spike = try AlertFixture.notice(try #require(await posts.next()))
            #expect(
                spike.event == "spike" && spike.scope == "ml" && spike.metric == "requests"
                    && spike.value == 60
                    && spike.baseline == 10 && spike.factor == 3 && spike.windowStart == hour)
            // The same window again sends nothing more.
            let more = usageBatch(3, team: "ml", deltas: [(hour, 40, 1)])
            #expect(
                try await control.request("POST", "/v1/agent/usage", json: more, token: token).status == 200
            )
            try await ops.stop()
            var later = 0
            while await posts.next() != nil { later += 1 }
            #expect(later == 0)
        }
    }

    @Test(
        "alert settings are strict: each mistake is refused with its field path, and nothing is written"
    )
    func strictness() async throws {
        try await ControlHarness.with { control in
            let cases: [(body: String, says: String)] = [
                (
                    #"{"name":"a","limits":{"daily_spend_usd":1,"mode":"alrt"}}"#,
                    "limits.mode must be enforce or alert"
                ),
                (
                    #"{"name":"a","limits":{"requests_per_minute":5,"daily_spend_usd":1,"mode":"alert"}}"#,
                    "limits.requests_per_minute cannot be alert-only"
                ),
                (#"{"name":"a","limits":{"mode":"alert"}}"#, "limits.mode"),
                (
                    #"{"name":"a","limits":{"soft_budget_percent":50}}"#,
                    "soft_budget_percent needs daily_spend_usd"
                ),
                (
                    #"{"name":"a","limits":{"daily_spend_usd":1,"soft_budget_percent":0}}"#,
                    "must be 1 to 100"
                ),
                (#"{"name":"a","limits":{"spike":{"metric":"requests","factor":0.5}}}"#, "spike.factor"),
                (#"{"name":"a","limits":{"spike":{"metric":"tokens","factor":2}}}"#, "spike.metric"),
                (
                    #"{"name":"a","limits":{"spike":{"metric":"spend","factor":2,"window_hours":6,"#
                        + #""baseline_hours":3}}}"#,
                    "spike.baseline_hours"
                ),
                (
                    #"{"name":"a","limits":{"spike":{"metric":"spend","factor":2,"windw_hours":2}}}"#,
                    "windw_hours"
                ),
            ]
            for (body, says) in cases {
                let response = try await control.request("POST", "/v1/admin/teams", json: body)
                #expect(response.status == 400 && response.text.contains(says), "\(body): \(response.text)")
            }
            let models = try await control.request(
                "POST", "/v1/admin/models",
                json: """
                    {"alias":"m","deployments":[{"api_base":"https://api.openai.com/v1","upstream_model":"gpt-4o"}],
                     "limits":{"daily_spend_usd":1,"mode":"alert"}}
                    """)
            #expect(
                models.status == 400
                    && models.text.contains("applies to teams, projects, keys and services only"))
            let settings = try await control.request(
                "PATCH", "/v1/admin/settings",
                json: #"{"default_limits":{"spike":{"metric":"spend","factor":2}}}"#)
            #expect(settings.status == 400 && settings.text.contains("settings.default_limits.spike"))
            #expect(try await control.request("GET", "/v1/admin/teams/a").status == 404)
        }
    }

    @Test("the webhook file is strict: each mistake stops the start with its field named")
    func webhookFile() throws {
        let directory = try TemporaryDirectory()
        try "short".write(toFile: directory.file("short"), atomically: true, encoding: .utf8)
        try AlertFixture.secret.write(toFile: directory.file("good"), atomically: true, encoding: .utf8)
        let good = directory.file("good")
        let cases: [(file: String, says: String)] = [
            (
                #"{"webhooks":[{"name":"a","url":"https://h.example/x","secret_file":"\#(good)","fromat":"json"}]}"#,
                "webhooks[0].fromat: unknown field"
            ),
            (
                #"{"webhooks":[{"name":"a","url":"ftp://h.example/x","secret_file":"\#(good)"}]}"#,
                "webhooks[0].url"
            ),
            (
                #"{"webhooks":[{"name":"a","url":"https://h.example/x","secret_file":"\#(good)","format":"teams"}]}"#,
                "webhooks[0].format: json or slack"
            ),
            (
                #"{"webhooks":[{"name":"a","url":"https://h.example/x","secret_file":"\#(directory.file("short"))"}]}"#,
                "webhooks[0].secret_file: the secret must be at least 16 characters"
            ),
            (
                #"{"webhooks":[{"name":"a","url":"https://h.example/x","secret_file":"/nonexistent/secret"}]}"#,
                "webhooks[0].secret_file: cannot read"
            ),
            (
                #"{"webhooks":[{"name":"a","url":"https://h.example/x"}]}"#,
                "webhooks[0].secret_file: missing field"
            ),
            (
                #"{"webhooks":[{"name":"a","url":"https://h.example/x","secret_file":"\#(good)"},"#
                    + #"{"name":"a","url":"https://h.example/y","secret_file":"\#(good)"}]}"#,
                "webhooks[1].name"
            ),
        ]
        for (index, (text, says)) in cases.enumerated() {
            let path = directory.file("alerts-\(index).json")
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            #expect {
                _ = try AlertWebhooks.load(from: path)
            } throws: { error in
                "\(error)".contains(says) && !"\(error)".contains(AlertFixture.secret)
            }
        }
    }
}
