import Mustache

/// The dashboard's Mustache templates. `{{name}}` escapes for HTML (quotes included), so a
/// team called `<script>` shows as text; only charts, which ``SVGChart`` built and escaped
/// itself, are inserted with `{{{ }}}`. The pages carry no script at all, and the
/// Content-Security-Policy forbids one.
enum DashboardTemplates {
    static func library() throws -> MustacheLibrary {
        var library = MustacheLibrary()
        for (name, text) in templates { try library.register(text, named: name) }
        return library
    }

    static let templates: [(String, String)] = [
        ("header", header), ("footer", footer), ("range", range), ("keepRange", keepRange), ("login", login),
        ("error", error),
        ("spend", spend), ("top", top), ("budgets", budgets), ("denials", denials), ("agents", agents),
        ("keys", keys), ("changes", changes),
    ]

    static let header = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>{{chrome.title}} · Sluice</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <link rel="stylesheet" href="/ui/style.css"></head>
        <body><header><strong>Sluice</strong>
        <nav>{{#chrome.nav}}<a href="{{href}}"{{#current}} aria-current="page"{{/current}}>{{label}}\
        </a>{{/chrome.nav}}</nav>
        <form method="post" action="/ui/logout" class="logout"><input type="hidden" name="csrf" value="{{chrome.csrf}}">
        <span class="role" id="role">{{chrome.role}}</span> <button type="submit">Log out</button></form></header>
        <main><h1>{{chrome.title}}</h1>
        """

    static let footer = """
        </main><footer>All times UTC. Figures from the usage rollups, as <code>GET /v1/admin/usage</code> answers.\
        </footer>
        </body></html>
        """

    static let range = """
        <form method="get" class="range">{{#extra}}<input type="hidden" name="{{name}}" value="{{value}}">{{/extra}}
        <label>Range <select name="range">{{#range.choices}}\
        <option value="{{value}}"{{#selected}} selected{{/selected}}>\
        {{value}}</option>{{/range.choices}}</select></label>
        <label>From <input type="date" name="from" value="{{range.fromDate}}"></label>
        <label>To <input type="date" name="to" value="{{range.toDate}}"></label>
        <label>Step <select name="step">{{#range.steps}}<option value="{{value}}"{{#selected}} selected{{/selected}}>\
        {{value}}</option>{{/range.steps}}</select></label>
        <button type="submit">Show</button></form>
        """

    /// A form's hidden copy of the range it was shown with, custom dates included.
    static let keepRange = """
        <input type="hidden" name="range" value="{{range.name}}">\
        <input type="hidden" name="step" value="{{range.step}}">\
        <input type="hidden" name="from" value="{{range.fromDate}}">\
        <input type="hidden" name="to" value="{{range.toDate}}">
        """

    static let login = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Log in · Sluice</title>
        <link rel="stylesheet" href="/ui/style.css"></head>
        <body class="login"><main><h1>Sluice</h1>
        {{#message}}<p class="error" id="message">{{message}}</p>{{/message}}
        <form method="post" action="/ui/login"><input type="hidden" name="csrf" value="{{csrf}}">
        <label>Admin or viewer token <input type="password" name="token" id="token" autocomplete="off" required></label>
        <button type="submit" id="login">Log in</button></form></main></body></html>
        """

    static let error = """
        {{> header}}<p class="error" id="message">{{message}}</p>{{> footer}}
        """

    static let spend = """
        {{> header}}
        <form method="get" class="range"><label>By <select name="by">{{#page.dimensions}}<option value="{{value}}"\
        {{#selected}} selected{{/selected}}>{{value}}</option>{{/page.dimensions}}</select></label>
        <label>Show <select name="metric">{{#page.metrics}}\
        <option value="{{value}}"{{#selected}} selected{{/selected}}>\
        {{value}}</option>{{/page.metrics}}</select></label>
        {{> keepRange}}
        <button type="submit">Show</button></form>
        {{> range}}
        <figure>{{{page.chart}}}</figure>
        <table id="spend"><thead><tr><th>{{page.by}}</th><th>Spend</th><th>Requests</th><th>Prompt tokens</th>\
        <th>Completion tokens</th></tr></thead><tbody>
        {{#page.rows}}<tr><td class="group">{{group}}</td><td class="spend" data-pico="{{pico}}">{{spend}}</td>\
        <td>{{requests}}</td><td>{{promptTokens}}</td><td>{{completionTokens}}</td></tr>
        {{/page.rows}}{{^page.rows}}<tr><td colspan="5">No usage in this range.</td></tr>{{/page.rows}}
        </tbody><tfoot><tr><th>Total</th><th id="total">{{page.total}}</th><th colspan="3"></th></tr></tfoot></table>
        {{> footer}}
        """

    static let usageTable = """
        <thead><tr><th>Name</th><th>Spend</th><th>Requests</th><th>Prompt tokens</th><th>Completion tokens</th></tr>\
        </thead><tbody>
        """

    static let top = """
        {{> header}}{{> range}}
        <h2>Keys</h2><table id="top-keys">\(usageTable){{#page.keys}}<tr><td class="group">{{group}}</td>\
        <td class="spend" data-pico="{{pico}}">{{spend}}</td><td>{{requests}}</td><td>{{promptTokens}}</td>\
        <td>{{completionTokens}}</td></tr>{{/page.keys}}</tbody></table>
        <h2>Services</h2><table id="top-services">\(usageTable){{#page.services}}<tr><td class="group">{{group}}</td>\
        <td class="spend" data-pico="{{pico}}">{{spend}}</td><td>{{requests}}</td><td>{{promptTokens}}</td>\
        <td>{{completionTokens}}</td></tr>{{/page.services}}</tbody></table>
        <h2>Teams</h2><table id="top-teams">\(usageTable){{#page.teams}}<tr><td class="group">{{group}}</td>\
        <td class="spend" data-pico="{{pico}}">{{spend}}</td><td>{{requests}}</td><td>{{promptTokens}}</td>\
        <td>{{completionTokens}}</td></tr>{{/page.teams}}</tbody></table>
        {{> footer}}
        """

    static let budgets = """
        {{> header}}
        <table id="budgets"><thead><tr><th>Scope</th><th>Window</th><th>Mode</th><th>Budget</th><th>Spent</th>\
        <th>Used</th><th>State</th><th>Burn-down</th><th>Projection</th></tr></thead><tbody>
        {{#page}}<tr><td class="scope">{{kind}} <span class="name">{{name}}</span></td><td>{{window}}</td><td>{{mode}}\
        </td>\
        <td>{{budget}}</td><td class="spend" data-pico="{{pico}}">{{spent}}</td>\
        <td><meter min="0" max="100" value="{{barWidth}}"></meter> {{percent}}%</td>\
        <td class="state">{{state}}</td><td>{{{burnDown}}}</td><td class="projection">{{projection}}</td></tr>
        {{/page}}{{^page}}<tr><td colspan="9">No team, project, key or service has a daily or monthly budget.</td></tr>\
        {{/page}}</tbody></table>
        {{> footer}}
        """

    static let denials = """
        {{> header}}{{> range}}
        <p>Refused calls in range: <strong id="denied">{{page.total}}</strong>.</p>
        <form method="get" class="range"><label>Chart by <select name="by">{{#page.dimensions}}\
        <option value="{{value}}"\
        {{#selected}} selected{{/selected}}>{{value}}</option>{{/page.dimensions}}</select></label>
        {{> keepRange}}
        <button type="submit">Show</button></form>
        <figure>{{{page.chart}}}</figure>
        <h2>By reason</h2><table id="by-reason"><thead><tr><th>Reason</th><th>Refused</th></tr></thead><tbody>
        {{#page.byReason}}<tr><td class="reason">{{reason}}</td><td>{{count}}</td></tr>{{/page.byReason}}</tbody>\
        </table>
        <h2>By rule</h2><table id="by-rule"><thead><tr><th>Rule</th><th>Refused</th></tr></thead><tbody>
        {{#page.byRule}}<tr><td class="rule">{{reason}}</td><td>{{count}}</td></tr>{{/page.byRule}}\
        {{^page.byRule}}<tr>\
        <td colspan="2">No refusal reported by rule in this range (older agents report reasons only).</td></tr>\
        {{/page.byRule}}</tbody></table>
        <h2>By team</h2><table id="by-team"><thead><tr><th>Team</th><th>Reason</th><th>Refused</th></tr></thead><tbody>
        {{#page.byTeam}}<tr><td class="group">{{group}}</td><td>{{reason}}</td><td>{{count}}</td></tr>{{/page.byTeam}}\
        </tbody></table>
        <h2>By service</h2><table id="by-service"><thead><tr><th>Service</th><th>Reason</th><th>Refused</th></tr>\
        </thead><tbody>{{#page.byService}}<tr><td class="group">{{group}}</td><td>{{reason}}</td><td>{{count}}</td>\
        </tr>\
        {{/page.byService}}</tbody></table>
        {{> footer}}
        """

    static let agents = """
        {{> header}}
        <p>Current policy version: <strong id="current-version">v{{page.currentVersion}}</strong>. Activity is what
        this replica has heard; an agent talking to another replica shows there.</p>
        <table id="agents"><thead><tr><th>Agent</th><th>Service</th><th>Registered</th><th>Policy</th>\
        <th>Policy checked</th><th>Last flush</th><th>Spool backlog</th><th>Lease shares</th></tr></thead><tbody>
        {{#page.agents}}<tr><td class="id">{{id}}</td><td>{{service}}</td><td>{{registered}}</td>\
        <td class="policy{{#behind}} behind{{/behind}}">{{policy}}</td><td>{{policyAge}}</td>\
        <td class="flush">{{lastFlush}}\
        </td><td class="backlog">{{backlog}}</td><td><ul class="shares">{{#shares}}<li>{{.}}</li>{{/shares}}</ul></td>\
        </tr>
        {{/page.agents}}{{^page.agents}}<tr><td colspan="8">No agent yet.</td></tr>{{/page.agents}}</tbody></table>
        {{> footer}}
        """

    static let keys = """
        {{> header}}
        <table id="keys"><thead><tr><th>Id</th><th>Prefix</th><th>Team</th><th>Project</th><th>Metadata</th>\
        <th>Limits</th><th>Expires</th><th>Last used</th><th>State</th></tr></thead><tbody>
        {{#page}}<tr data-key="{{id}}"><td class="id">{{id}}</td><td><code>{{prefix}}</code></td>\
        <td class="team">{{team}}\
        </td><td>{{project}}</td><td><dl>{{#metadata}}<dt>{{name}}</dt><dd>{{value}}</dd>{{/metadata}}</dl></td>\
        <td>{{limits}}</td><td>{{expires}}</td><td class="used">{{lastUsed}}</td><td class="state">\
        {{#revoked}}revoked{{/revoked}}{{^revoked}}active{{#chrome.isAdmin}}\
        <form method="post" action="/ui/keys/revoke">\
        <input type="hidden" name="csrf" value="{{chrome.csrf}}"><input type="hidden" name="id" value="{{id}}">\
        <button type="submit" class="revoke">Revoke</button></form>{{/chrome.isAdmin}}{{/revoked}}</td></tr>
        {{/page}}{{^page}}<tr><td colspan="9">No keys.</td></tr>{{/page}}</tbody></table>
        {{> footer}}
        """

    static let changes = """
        {{> header}}
        <table id="changes"><thead><tr><th>When</th><th>Actor</th><th>Action</th><th>Kind</th><th>Name</th>\
        <th>Fields</th></tr></thead><tbody>
        {{#page}}<tr><td>{{at}}</td><td>{{actor}}</td><td class="action">{{action}}</td><td>{{kind}}</td>\
        <td class="name">{{name}}</td><td>{{fields}}</td></tr>
        {{/page}}{{^page}}<tr><td colspan="6">No changes in 30 days.</td></tr>{{/page}}</tbody></table>
        {{> footer}}
        """

    static let style = """
        body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
        header{display:flex;gap:1.5em;align-items:center;padding:.6em 1em;background:#223;color:#fff}
        header a{color:#cde;margin-right:1em;text-decoration:none}header a[aria-current]{color:#fff;font-weight:bold}
        .logout{margin-left:auto}main{padding:1em}table{border-collapse:collapse;margin:.5em 0 1.5em}
        th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
        .spend{font-variant-numeric:tabular-nums}.error{color:#b00}.behind{color:#b60;font-weight:bold}
        form.range{margin:.4em 0}label{margin-right:1em}.login main{max-width:24em;margin:4em auto}
        dl{margin:0}dt{font-weight:bold;display:inline}dd{display:inline;margin:0 .6em 0 .2em}
        ul.shares{margin:0;padding-left:1em}footer{padding:1em;color:#777}
        """
}
