import Foundation
import NIOCore

/// Headless Chromium driven through chromedriver's W3C WebDriver protocol (plain HTTP and
/// JSON on loopback): the dashboard tests log in, click and read the DOM as a user's
/// browser would. Debian's `chromium` and `chromium-driver` packages provide both.
public final class WebDriver: Sendable {
    private let driver: ExternalProcess
    private let session: String
    private let group: any EventLoopGroup

    /// chromedriver and chromium, when both are installed.
    public static var executables: (driver: String, browser: String)? {
        guard let driver = ExternalProcess.find(["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]),
            let browser = ExternalProcess.find(["/usr/bin/chromium", "/usr/lib/chromium/chromium"])
        else { return nil }
        return (driver, browser)
    }

    /// Starts chromedriver and one headless browser session with a 1280×1000 window.
    public init(group: any EventLoopGroup) async throws {
        guard let (driverPath, browserPath) = Self.executables else {
            throw TestClientError(
                message: "chromium and chromedriver are not installed (scripts/install-deps.sh --test)")
        }
        self.group = group
        let port = try await ExternalProcess.freePort(group: group)
        driver = try await ExternalProcess(
            executable: driverPath, arguments: ["--port=\(port)", "--allowed-ips=127.0.0.1"], port: port, group: group)
        let capabilities: [String: Any] = [
            "capabilities": [
                "alwaysMatch": [
                    "browserName": "chrome",
                    "goog:chromeOptions": [
                        "binary": browserPath,
                        "args": [
                            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                        ],
                    ],
                ]
            ]
        ]
        do {
            let answer = try await Self.call(
                "POST", "/session", capabilities, port: port, group: group)
            guard let value = answer as? [String: Any], let id = value["sessionId"] as? String else {
                throw TestClientError(message: "chromedriver answered no session: \(answer)")
            }
            session = id
        } catch {
            await driver.stop()
            throw error
        }
    }

    /// Loads `url` and waits for the page to finish loading.
    public func open(_ url: String) async throws { _ = try await call("POST", "url", ["url": url]) }

    /// The page's current address.
    public func currentURL() async throws -> String { try await call("GET", "url") as? String ?? "" }

    /// The page's title.
    public func title() async throws -> String { try await call("GET", "title") as? String ?? "" }

    /// Every element matching a CSS selector, in document order.
    public func elements(_ selector: String) async throws -> [Element] {
        let answer = try await call("POST", "elements", ["using": "css selector", "value": selector])
        return (answer as? [[String: Any]] ?? []).compactMap { $0.values.first as? String }
            .map { Element(id: $0, driver: self) }
    }

    /// The first element matching a CSS selector; throws when there is none.
    public func element(_ selector: String) async throws -> Element {
        guard let first = try await elements(selector).first else {
            throw TestClientError(message: "no element matches \(selector) on \(try await currentURL())")
        }
        return first
    }

    /// A cookie the browser holds for the current page, as WebDriver describes it (`name`,
    /// `value`, `path`, `httpOnly`, `secure`, `sameSite`, `expiry`).
    public func cookie(_ name: String) async throws -> [String: Any]? {
        try? await call("GET", "cookie/\(name)") as? [String: Any]
    }

    /// A PNG of the window, written to `path`.
    public func screenshot(to path: String) async throws {
        guard let text = try await call("GET", "screenshot") as? String, let png = Data(base64Encoded: text) else {
            throw TestClientError(message: "chromedriver returned no screenshot")
        }
        try png.write(to: URL(fileURLWithPath: path))
    }

    /// Ends the browser session and stops chromedriver.
    public func quit() async {
        _ = try? await Self.call("DELETE", "/session/\(session)", nil, port: driver.port, group: group)
        await driver.stop()
    }

    /// One element of the page.
    public struct Element: Sendable {
        let id: String
        let driver: WebDriver

        /// Its rendered text.
        public func text() async throws -> String {
            try await driver.call("GET", "element/\(id)/text") as? String ?? ""
        }

        /// An attribute's value, or nil.
        public func attribute(_ name: String) async throws -> String? {
            try await driver.call("GET", "element/\(id)/attribute/\(name)") as? String
        }

        /// Its inner HTML as the browser serialises it.
        public func innerHTML() async throws -> String {
            try await driver.call("GET", "element/\(id)/property/innerHTML") as? String ?? ""
        }

        public func type(_ text: String) async throws {
            _ = try await driver.call("POST", "element/\(id)/value", ["text": text])
        }

        public func click() async throws { _ = try await driver.call("POST", "element/\(id)/click", [:]) }

        /// Clicks a button that submits its form, and returns once the page it was on is gone
        /// (this element has gone stale): the browser then answers for the next page, which
        /// chromedriver waits to finish loading before its next command.
        public func submit(timeout: Duration = .seconds(10)) async throws {
            try await click()
            let deadline = ContinuousClock.now + timeout
            while (try? await driver.call("GET", "element/\(id)/name")) != nil {
                guard ContinuousClock.now < deadline else {
                    throw TestClientError(message: "the page did not change within \(timeout) of the click")
                }
                // Each check is a round trip to the browser: no sleep stands in for the signal.
                await Task.yield()
            }
        }

        /// Every element inside it matching a CSS selector.
        public func elements(_ selector: String) async throws -> [Element] {
            let answer = try await driver.call(
                "POST", "element/\(id)/elements", ["using": "css selector", "value": selector])
            return (answer as? [[String: Any]] ?? []).compactMap { $0.values.first as? String }
                .map { Element(id: $0, driver: driver) }
        }
    }

    func call(_ method: String, _ path: String, _ body: [String: Any]? = nil) async throws -> Any {
        try await Self.call(method, "/session/\(session)/\(path)", body, port: driver.port, group: group)
    }

    private static func call(
        _ method: String, _ path: String, _ body: [String: Any]?, port: Int, group: any EventLoopGroup
    ) async throws -> Any {
        let json = try body.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
        let response = try await TestHTTPClient.request(method, path, json: json, port: port, group: group)
        let object = try JSONSerialization.jsonObject(with: Data(response.body), options: [.fragmentsAllowed])
        let value = (object as? [String: Any])?["value"] ?? NSNull()
        guard response.status == 200 else {
            let message = ((value as? [String: Any])?["message"] as? String) ?? response.text
            throw TestClientError(
                message: "WebDriver \(method) \(path): HTTP \(response.status): \(message.prefix(400))")
        }
        return value
    }
}
