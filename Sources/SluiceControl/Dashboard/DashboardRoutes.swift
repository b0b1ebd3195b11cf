import Foundation
import Hummingbird
import Mustache

/// The dashboard under `/ui`: server-rendered pages on the same port as the API, behind a
/// login that exchanges the admin or viewer token for a session cookie (HttpOnly,
/// SameSite=Strict, Secure when served over TLS, eight hours). Every form that changes
/// something carries a CSRF token; only an admin session may revoke a key. Pages carry no
/// script, and their Content-Security-Policy allows none.
extension ControlAPI {
    func addDashboardRoutes(to router: Router<ControlContext>) {
        let library: MustacheLibrary
        do {
            library = try DashboardTemplates.library()
        } catch {
            preconditionFailure("the dashboard's templates do not parse: \(error)")
        }
        let (sessions, secure, store, audit) = (self.sessions, self.secureCookies, self.store, self.audit)
        let pages = DashboardPages(store: store, activity: activity)
        let dashboard = Dashboard(library: library, sessions: sessions, secure: secure)

        router.get("/ui") { _, _ in Dashboard.redirect("/ui/spend") }
        router.get("/ui/style.css") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "max-age=3600"],
                body: .init(byteBuffer: ByteBuffer(string: DashboardTemplates.style)))
        }
        router.get("/ui/login") { _, _ in dashboard.loginPage(message: nil, status: .ok) }
        router.post("/ui/login") { request, _ in
            let form = try await Dashboard.form(request)
            let loginCookie = request.cookies[DashboardSessions.loginCookieName]?.value
            guard sessions.checkLoginCSRF(form["csrf"], cookie: loginCookie) else {
                return dashboard.loginPage(
                    message: "The login form expired or came from another site; log in again.", status: .forbidden)
            }
            guard let role = sessions.role(forToken: form["token"] ?? "") else {
                return dashboard.loginPage(message: "That token opens nothing here.", status: .unauthorized)
            }
            var response = Dashboard.redirect("/ui/spend")
            response.setCookie(dashboard.cookie(DashboardSessions.cookieName, sessions.issue(role, now: unixNow())))
            response.setCookie(dashboard.cookie(DashboardSessions.loginCookieName, "", path: "/ui/login", maxAge: 0))
            return response
        }
        router.post("/ui/logout") { request, _ in
            let form = try await Dashboard.form(request)
            if let session = dashboard.session(request), sessions.checkCSRF(form["csrf"], for: session) {
                sessions.logOut(session, now: unixNow())
            }
            var response = Dashboard.redirect("/ui/login")
            response.setCookie(dashboard.cookie(DashboardSessions.cookieName, "", maxAge: 0))
            return response
        }

        dashboard.page(router, "spend", title: "Spend") { request, _ in
            let parameters = Dashboard.parameters(request)
            let range = try DashboardRange.parse(parameters, now: unixNow())
            let page = try await pages.spend(parameters, range: range)
            return (
                page,
                Dashboard.rangeModel(range, extra: [("by", page.by), ("metric", parameters["metric"] ?? "spend")])
            )
        }
        dashboard.page(router, "top", title: "Top spenders") { request, _ in
            let range = try DashboardRange.parse(Dashboard.parameters(request), now: unixNow())
            return (try await pages.top(range: range), Dashboard.rangeModel(range))
        }
        dashboard.page(router, "budgets", title: "Budgets") { _, _ in (try await pages.budgets(now: unixNow()), nil) }
        dashboard.page(router, "denials", title: "Denials") { request, _ in
            let parameters = Dashboard.parameters(request)
            let range = try DashboardRange.parse(parameters, now: unixNow())
            return (
                try await pages.denials(parameters, range: range),
                Dashboard.rangeModel(range, extra: [("by", parameters["by"] ?? "reason")])
            )
        }
        dashboard.page(router, "agents", title: "Agents") { _, _ in (try await pages.agents(now: unixNow()), nil) }
        dashboard.page(router, "keys", title: "Keys") { _, _ in (try await pages.keys(now: unixNow()), nil) }
        dashboard.page(router, "changes", title: "Change log") { _, _ in
            (try await pages.changes(now: unixNow()), nil)
        }
        router.post("/ui/keys/revoke") { request, context in
            let form = try await Dashboard.form(request)
            guard let session = dashboard.session(request) else { return Dashboard.redirect("/ui/login") }
            guard sessions.checkCSRF(form["csrf"], for: session) else {
                return dashboard.errorPage(session, "The form expired or came from another site.", status: .forbidden)
            }
            guard session.role == .admin else {
                return dashboard.errorPage(session, "A viewer cannot revoke keys.", status: .forbidden)
            }
            let id = form["id"] ?? ""
            do {
                _ = try await ControlAPI.revokeKey(id, in: store)
            } catch let error as APIError {
                return dashboard.errorPage(session, error.message, status: .init(code: error.status))
            } catch let error as StoreError {
                return dashboard.errorPage(session, error.message, status: .init(code: error.status))
            }
            await audit.changed(request, "revoke", "key", id, actor: "dashboard")
            context.logger.info("key revoked from the dashboard", metadata: ["key": "\(id)"])
            return Dashboard.redirect("/ui/keys")
        }
    }
}

/// Rendering and session plumbing shared by the dashboard's routes.
struct Dashboard: Sendable {
    let library: MustacheLibrary
    let sessions: DashboardSessions
    let secure: Bool

    static let navigation = [
        ("spend", "Spend"), ("top", "Top"), ("budgets", "Budgets"), ("denials", "Denials"), ("agents", "Agents"),
        ("keys", "Keys"), ("changes", "Change log"),
    ]

    struct NavItem: Sendable {
        var href: String
        var label: String
        var current: Bool
    }

    struct Chrome: Sendable {
        var title: String
        var role: String
        var isAdmin: Bool
        var csrf: String
        var nav: [NavItem]
    }

    struct RangeModel: Sendable {
        var name: String
        var step: String
        var fromDate: String
        var toDate: String
        var choices: [DashboardPages.Choice]
        var steps: [DashboardPages.Choice]
    }

    /// `GET /ui/NAME`: a logged-in page; without a session, the login page.
    func page<Model: Sendable>(
        _ router: Router<ControlContext>, _ name: String, title: String,
        _ build: @escaping @Sendable (Request, DashboardSessions.Session) async throws -> (
            Model, (RangeModel, [DashboardPages.Field])?
        )
    ) {
        router.get(RouterPath("/ui/\(name)")) { request, context in
            guard let session = session(request) else { return Self.redirect("/ui/login") }
            do {
                let (model, range) = try await build(request, session)
                var object: [String: Any] = ["chrome": chrome(session, title: title, current: name), "page": model]
                if let range {
                    object["range"] = range.0
                    object["extra"] = range.1
                }
                return html(library.render(object, withTemplate: name) ?? "", status: .ok)
            } catch let error as DashboardError {
                return errorPage(session, error.message, status: .init(code: error.status), title: title)
            } catch {
                context.logger.error("dashboard page failed", metadata: ["page": "\(name)", "error": "\(error)"])
                return errorPage(session, "The store did not answer; try again.", status: .serviceUnavailable)
            }
        }
    }

    func chrome(_ session: DashboardSessions.Session, title: String, current: String) -> Chrome {
        Chrome(
            title: title, role: session.role.rawValue, isAdmin: session.role == .admin,
            csrf: sessions.csrfToken(for: session),
            nav: Self.navigation.map { NavItem(href: "/ui/\($0.0)", label: $0.1, current: $0.0 == current) })
    }

    func errorPage(
        _ session: DashboardSessions.Session, _ message: String, status: HTTPResponse.Status, title: String = "Error"
    ) -> Response {
        let object: [String: Any] = ["chrome": chrome(session, title: title, current: ""), "message": message]
        return html(library.render(object, withTemplate: "error") ?? "", status: status)
    }

    /// The login form, with a fresh CSRF pair: a cookie for this path and the form's token.
    func loginPage(message: String?, status: HTTPResponse.Status) -> Response {
        let (nonce, csrf) = sessions.loginForm()
        var object: [String: Any] = ["csrf": csrf]
        if let message { object["message"] = message }
        var response = html(library.render(object, withTemplate: "login") ?? "", status: status)
        response.setCookie(cookie(DashboardSessions.loginCookieName, nonce, path: "/ui/login", maxAge: 1800))
        return response
    }

    func session(_ request: Request) -> DashboardSessions.Session? {
        request.cookies[DashboardSessions.cookieName].flatMap { sessions.verify($0.value, now: unixNow()) }
    }

    func cookie(_ name: String, _ value: String, path: String = "/ui", maxAge: Int? = nil) -> Cookie {
        Cookie(
            name: name, value: value, maxAge: maxAge ?? Int(sessions.lifetime), path: path, secure: secure,
            httpOnly: true, sameSite: .strict)
    }

    func html(_ text: String, status: HTTPResponse.Status) -> Response {
        Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                .contentSecurityPolicy:
                    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
                    + " frame-ancestors 'none'; base-uri 'none'",
                .init("x-content-type-options")!: "nosniff", .init("referrer-policy")!: "no-referrer",
            ],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    static func rangeModel(
        _ range: DashboardRange, extra: [(String, String)] = []
    ) -> (RangeModel, [DashboardPages.Field]) {
        (
            RangeModel(
                name: range.name, step: range.step.rawValue, fromDate: range.fromDate, toDate: range.toDate,
                choices: ["24h", "7d", "30d", "custom"].map { .init(value: $0, selected: $0 == range.name) },
                steps: ["hour", "day"].map { .init(value: $0, selected: $0 == range.step.rawValue) }),
            extra.map { DashboardPages.Field(name: $0.0, value: $0.1) }
        )
    }

    static func parameters(_ request: Request) -> [String: String] {
        var parameters: [String: String] = [:]
        for (name, value) in request.uri.queryParameters { parameters[String(name)] = String(value) }
        return parameters
    }

    /// An `application/x-www-form-urlencoded` body (at most 16 KiB), first value per name.
    static func form(_ request: Request) async throws -> [String: String] {
        var request = request
        let body = try await request.collectBody(upTo: 16 << 10)
        var form: [String: String] = [:]
        for pair in String(buffer: body).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decoded(_ text: Substring) -> String {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            let name = decoded(parts[0])
            if form[name] == nil { form[name] = parts.count > 1 ? decoded(parts[1]) : "" }
        }
        return form
    }
}
