import Foundation
import SluicePolicy
import SluiceTestSupport
import Testing

@testable import SluiceControl

/// Screenshots of every dashboard page land here (git ignores `.state/`).
private let artifacts: String = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let path = root.appendingPathComponent(".state/test-artifacts/dashboard").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}()

private let viewerToken = "viewer-token-for-tests-0123456789"
private let scriptTeam = "<script>alert(1)</script>"
private let imageOwner = "<img src=x onerror=alert(2)>"

/// A control plane with two teams, a budget, a key whose metadata is markup, an agent that
/// fetched policy and reported usage (one team's name is markup too), and refusals.
private func seed(_ control: ControlHarness) async throws {
    let now = Int64(Date().timeIntervalSince1970)
    let hour = now - now % 3600
    #expect(
        try await control.request(
            "POST", "/v1/admin/teams", json: #"{"name":"eng","limits":{"daily_spend_usd":1}}"#
        ).status == 201)
    #expect(
        try await control.request(
            "POST", "/v1/admin/teams", json: #"{"name":"ml","limits":{"requests_per_minute":600}}"#
        ).status == 201)
    #expect(
        try await control.request(
            "POST", "/v1/admin/keys", json: #"{"id":"ci","team":"ml","metadata":{"owner":"\#(imageOwner)"}}"#
        ).status == 201)
    let token = try await control.agentToken("agent-1")
    #expect(try await control.request("GET", "/v1/agent/policy", token: token).status == 200)
    let renewal =
        #"{"instance":"e1","demands":[{"scope_kind":"team","scope":"ml","limit":"requests_per_minute","#
        + #""per_minute":30,"limit_value":600}]}"#
    #expect(try await control.request("POST", "/v1/agent/leases", json: renewal, token: token).status == 200)
    func delta(_ team: String, key: String?, requests: Int, cost: Int64, denials: String = "{}") -> String {
        let keyField = key.map { #""key_id":"\#($0)","# } ?? ""
        return #"{"hour":\#(hour),"team":"\#(team)",\#(keyField)"service":"shop/checkout","model":"gpt-4o","#
            + #""requests":\#(requests),"prompt_tokens":10,"completion_tokens":5,"cost_pico_usd":\#(cost),"#
            + #""denials":\#(denials)}"#
    }
    let deltas = [
        delta("eng", key: nil, requests: 5, cost: 250_000_000_000),
        delta(
            "ml", key: "ci", requests: 2, cost: 100_000_000_000,
            denials: #"{"budget_exceeded":2},"denial_rules":{"team \"ml\" daily_spend_usd":2}"#),
        delta(scriptTeam, key: nil, requests: 1, cost: 10_000_000_000),
    ]
    let batch = #"{"agent_id":"agent-1","epoch":"e1","sequence":1,"deltas":[\#(deltas.joined(separator: ","))]}"#
    #expect(
        try await control.request(
            "POST", "/v1/agent/usage", json: batch, token: token, headers: [("Sluice-Spool-Backlog", "3")]
        ).status == 200)
}

/// Logs in through the form as a user would.
private func logIn(_ browser: WebDriver, port: Int, token: String) async throws {
    try await browser.open("http://127.0.0.1:\(port)/ui/login")
    try await browser.element("#token").type(token)
    try await browser.element("#login").submit()
}

@Suite("Dashboard: pages in a real browser, sessions, CSRF, escaping")
struct DashboardTests {
    @Test(
        "headless Chromium logs in, reads every page, finds the API's figures, and never runs injected markup",
        .timeLimit(.minutes(3)))
    func browser() async throws {
        try #require(WebDriver.executables != nil, "install chromium and chromium-driver (scripts/install-deps.sh)")
        try await ControlHarness.with(configure: { $0.viewerToken = Secret(viewerToken) }) { control in
            try await seed(control)
            let browser = try await WebDriver(group: control.group)
            do {
                let base = "http://127.0.0.1:\(control.port)"
                // No session: every page sends the browser to the login form.
                try await browser.open(base + "/ui/budgets")
                #expect(try await browser.currentURL() == base + "/ui/login")
                try await logIn(browser, port: control.port, token: "not-a-token-of-this-plane")
                #expect(try await browser.element("#message").text().contains("opens nothing"))
                try await browser.screenshot(to: artifacts + "/login-refused.png")

                try await logIn(browser, port: control.port, token: ControlHarness.adminToken)
                #expect(try await browser.currentURL() == base + "/ui/spend")
                let cookie = try #require(try await browser.cookie("sluice_session"))
                #expect(cookie["httpOnly"] as? Bool == true)
                #expect(cookie["sameSite"] as? String == "Strict")
                #expect(cookie["path"] as? String == "/ui")
                #expect((cookie["expiry"] as? Int).map { $0 > Int(Date().timeIntervalSince1970) + 7 * 3600 } == true)
                #expect(try await browser.element("#role").text() == "admin")

                // Spend: each team's figure is the usage API's, and the markup team is text.
                let answer = try await control.request("GET", "/v1/admin/usage?group_by=team&since=1d")
                let rows = try #require(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [[String: Any]])
                let apiSpend = Dictionary(
                    uniqueKeysWithValues: rows.map {
                        (
                            ($0["group"] as? [String: String])?["team"] ?? "",
                            ($0["cost_pico_usd"] as? NSNumber)?.int64Value
                        )
                    })
                var pageSpend: [String: String] = [:]
                for row in try await browser.elements("#spend tbody tr") {
                    let cells = try await row.elements("td")
                    guard cells.count == 5 else { continue }
                    pageSpend[try await cells[0].text()] = try await cells[1].attribute("data-pico")
                    if try await cells[0].text() == "eng" { #expect(try await cells[1].text() == "$0.250000") }
                }
                #expect(pageSpend.count == 3)
                for (team, pico) in apiSpend { #expect(pageSpend[team] == pico.map(String.init), "team \(team)") }
                #expect(pageSpend[scriptTeam] == "10000000000")
                #expect(try await browser.element("#total").text() == "$0.360000")
                #expect(try await browser.elements("script").isEmpty)
                #expect(try await browser.elements("svg.chart rect").count >= 3)
                try await browser.screenshot(to: artifacts + "/spend.png")

                try await browser.open(base + "/ui/spend?by=model&metric=requests&range=24h&step=hour")
                #expect(try await browser.element("#spend td.group").text() == "gpt-4o")
                try await browser.screenshot(to: artifacts + "/spend-by-model-hourly.png")

                try await browser.open(base + "/ui/top?range=30d")
                // Keyless calls (eng's, $0.26 with the markup team's) outspent key ci ($0.10).
                var topKeys: [String] = []
                for cell in try await browser.elements("#top-keys td.group") { topKeys.append(try await cell.text()) }
                #expect(topKeys == ["(none)", "ci"])
                #expect(try await browser.element("#top-teams td.group").text() == "eng")
                try await browser.screenshot(to: artifacts + "/top.png")

                try await browser.open(base + "/ui/budgets")
                #expect(try await browser.element("#budgets .name").text() == "eng")
                #expect(try await browser.element("#budgets .spend").attribute("data-pico") == "250000000000")
                #expect(try await browser.element("#budgets .state").text() == "ok")
                #expect(try await browser.elements("#budgets svg.burn polyline").count == 1)
                try await browser.screenshot(to: artifacts + "/budgets.png")

                try await browser.open(base + "/ui/denials")
                #expect(try await browser.element("#denied").text() == "2")
                #expect(try await browser.element("#by-reason .reason").text() == "budget_exceeded")
                #expect(try await browser.element("#by-team .group").text() == "ml")
                #expect(try await browser.element("#by-rule .rule").text() == #"team "ml" daily_spend_usd"#)
                try await browser.open(base + "/ui/denials?by=rule")
                let legend = try await browser.element("svg.chart text[font-size='12']").text()
                #expect(legend == #"team "ml" daily_spend_usd"#)
                try await browser.screenshot(to: artifacts + "/denials.png")

                try await browser.open(base + "/ui/agents")
                let agentRow = try await browser.element("#agents tbody tr")
                #expect(try await agentRow.elements("td")[0].text() == "agent-1")
                #expect(try await browser.element("#agents .backlog").text() == "3")
                #expect(try await browser.element("#agents .flush").text().hasSuffix("ago"))
                #expect(try await browser.element("#agents .policy").text().hasPrefix("v"))
                // Alone on the limit, the agent was granted all of it.
                let share = try await browser.element("#agents .shares li").text()
                #expect(share == "team ml requests_per_minute: 600/min")
                try await browser.screenshot(to: artifacts + "/agents.png")

                // Keys: metadata that is markup shows as text, no image element exists.
                try await browser.open(base + "/ui/keys")
                #expect(try await browser.element("#keys dd").text() == imageOwner)
                #expect(try await browser.element("#keys dd").innerHTML().contains("&lt;img"))
                #expect(try await browser.elements("img").isEmpty)
                #expect(try await browser.element("#keys .used").text().hasPrefix("hour of "))
                try await browser.screenshot(to: artifacts + "/keys.png")
                try await browser.element("#keys button.revoke").submit()
                #expect(try await browser.currentURL() == base + "/ui/keys")
                #expect(try await browser.element("#keys td.state").text() == "revoked")
                #expect(try await control.request("GET", "/v1/admin/keys/ci").text.contains(#""revoked":true"#))

                try await browser.open(base + "/ui/changes")
                #expect(try await browser.element("#changes .action").text() == "revoke")
                #expect(try await browser.element("#changes .name").text() == "ci")
                try await browser.screenshot(to: artifacts + "/changes.png")

                // Log out: the session is over, here and in the browser.
                try await browser.element("header button").submit()
                #expect(try await browser.currentURL() == base + "/ui/login")
                try await browser.open(base + "/ui/keys")
                #expect(try await browser.currentURL() == base + "/ui/login")

                // A viewer sees the pages but no control that changes anything.
                try await logIn(browser, port: control.port, token: viewerToken)
                #expect(try await browser.element("#role").text() == "viewer")
                try await browser.open(base + "/ui/keys")
                #expect(try await browser.elements("button.revoke").isEmpty)
                try await browser.screenshot(to: artifacts + "/keys-viewer.png")
            } catch {
                await browser.quit()
                throw error
            }
            await browser.quit()
        }
    }

    @Test("state-changing forms need the session's CSRF token and an admin; forged cookies open nothing")
    func csrf() async throws {
        try await ControlHarness.with(configure: { $0.viewerToken = Secret(viewerToken) }) { control in
            try await seed(control)
            let sessions = DashboardSessions(adminToken: Secret(ControlHarness.adminToken), viewerToken: nil)
            let now = Int64(Date().timeIntervalSince1970)
            let admin = sessions.issue(.admin, now: now)
            let csrf = sessions.csrfToken(for: try #require(sessions.verify(admin, now: now)))
            func revoke(cookie: String, csrf: String?) async throws -> TestResponse {
                let body = "id=ci" + (csrf.map { "&csrf=" + $0 } ?? "")
                return try await control.request(
                    "POST", "/ui/keys/revoke", json: body, token: nil,
                    headers: [("Cookie", "sluice_session=" + cookie)])
            }
            #expect(try await revoke(cookie: admin, csrf: nil).status == 403)
            #expect(try await revoke(cookie: admin, csrf: String(repeating: "0", count: 64)).status == 403)
            // Another session's token does not do either.
            let other = try #require(sessions.verify(sessions.issue(.admin, now: now), now: now))
            #expect(try await revoke(cookie: admin, csrf: sessions.csrfToken(for: other)).status == 403)
            // A viewer's own valid token: refused for the role.
            let viewerSessions = DashboardSessions(
                adminToken: Secret(ControlHarness.adminToken), viewerToken: Secret(viewerToken))
            let viewer = viewerSessions.issue(.viewer, now: now)
            let viewerCSRF = viewerSessions.csrfToken(for: try #require(viewerSessions.verify(viewer, now: now)))
            let refused = try await revoke(cookie: viewer, csrf: viewerCSRF)
            #expect(refused.status == 403 && refused.text.contains("viewer cannot revoke"))
            // A viewer cookie rewritten to say admin fails its MAC: no session at all.
            let forged = viewer.replacingOccurrences(of: "v1.viewer.", with: "v1.admin.")
            #expect(try await revoke(cookie: forged, csrf: viewerCSRF).header("location") == "/ui/login")
            #expect(try await control.request("GET", "/v1/admin/keys/ci").text.contains(#""revoked":false"#))
            // The session's own token revokes.
            #expect(try await revoke(cookie: admin, csrf: csrf).status == 303)
            #expect(try await control.request("GET", "/v1/admin/keys/ci").text.contains(#""revoked":true"#))
            // A login posted without the form's cookie (from another site) is refused.
            let login = try await control.request(
                "POST", "/ui/login", json: "token=\(ControlHarness.adminToken)&csrf=x", token: nil)
            #expect(login.status == 403 && login.header("set-cookie")?.contains("sluice_session=v1") != true)
            // Pages answer with a policy that runs no script.
            let page = try await control.request(
                "GET", "/ui/spend", token: nil, headers: [("Cookie", "sluice_session=" + admin)])
            #expect(page.status == 200)
            #expect(page.header("content-security-policy")?.contains("default-src 'none'") == true)
            #expect(!page.text.contains(scriptTeam) && page.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            // A custom range survives the page's other forms (by, metric).
            let custom = try await control.request(
                "GET", "/ui/spend?range=custom&from=2026-11-01&to=2026-11-30&by=model", token: nil,
                headers: [("Cookie", "sluice_session=" + admin)])
            #expect(custom.status == 200)
            #expect(custom.text.components(separatedBy: #"name="from" value="2026-11-01""#).count - 1 == 2)
            #expect(custom.text.components(separatedBy: #"name="to" value="2026-11-30""#).count - 1 == 2)
        }
    }

    @Test("sessions: a MAC over role and expiry, ended by logout, by expiry and by a new admin token")
    func sessions() async throws {
        let sessions = DashboardSessions(
            adminToken: Secret(ControlHarness.adminToken), viewerToken: Secret(viewerToken))
        #expect(sessions.role(forToken: ControlHarness.adminToken) == .admin)
        #expect(sessions.role(forToken: viewerToken) == .viewer)
        #expect(sessions.role(forToken: viewerToken + "x") == nil)
        let cookie = sessions.issue(.viewer, now: 1_000)
        let session = try #require(sessions.verify(cookie, now: 1_001))
        #expect(session.role == .viewer && session.expiresAt == 1_000 + sessions.lifetime)
        #expect(sessions.verify(cookie, now: 1_000 + sessions.lifetime) == nil)
        #expect(sessions.verify(cookie + "0", now: 1_001) == nil)
        let rotated = DashboardSessions(adminToken: Secret("another-admin-token-0123456789"), viewerToken: nil)
        #expect(rotated.verify(cookie, now: 1_001) == nil)
        sessions.logOut(session, now: 1_002)
        #expect(sessions.verify(cookie, now: 1_003) == nil)
        let (loginCookie, loginCSRF) = sessions.loginForm()
        #expect(sessions.checkLoginCSRF(loginCSRF, cookie: loginCookie))
        #expect(!sessions.checkLoginCSRF(loginCSRF, cookie: sessions.loginForm().cookie))
    }

    @Test("charts escape every label and scale to a round axis; ranges refuse what they cannot draw")
    func chartsAndRanges() throws {
        let svg = SVGChart.stackedBars(
            buckets: ["12-01", "12-02"], series: [.init(name: scriptTeam, values: [1, 2])], format: { "\($0)" },
            title: "a \"title\"")
        #expect(!svg.contains("<script>") && svg.contains("&lt;script&gt;") && svg.contains("a &quot;title&quot;"))
        #expect(svg.components(separatedBy: "<rect").count - 1 == 3)
        #expect([0.3, 1, 1.2, 7, 45, 101].map(SVGChart.niceCeiling) == [0.5, 1, 2, 10, 50, 200])
        let now: Int64 = 1_796_000_000
        let week = try DashboardRange.parse([:], now: now)
        #expect(week.bucketStarts.count == 7 && week.step == .day && week.to == now - now % 86_400 + 86_400)
        let day = try DashboardRange.parse(["range": "24h"], now: now)
        #expect(day.bucketStarts.count == 24 && day.step == .hour)
        let custom = try DashboardRange.parse(["range": "custom", "from": "2026-11-01", "to": "2026-11-30"], now: now)
        #expect(custom.bucketStarts.count == 30 && custom.fromDate == "2026-11-01")
        #expect(throws: DashboardError.self) {
            try DashboardRange.parse(
                ["range": "custom", "from": "2026-01-01", "to": "2026-03-01", "step": "hour"], now: now)
        }
        #expect(throws: DashboardError.self) {
            try DashboardRange.parse(["range": "custom", "from": "2026-02-30", "to": "2026-03-01"], now: now)
        }
        #expect(throws: DashboardError.self) { try DashboardRange.parse(["range": "1y"], now: now) }
        #expect(dashboardUSD(1_234_567_890_123) == "$1.234567" && dashboardUSD(0) == "$0.000000")
        #expect([0, 0.5, 1.5, 2, 40].map(DashboardPages.count) == ["0", "0.5", "1.5", "2", "40"])
    }
}
