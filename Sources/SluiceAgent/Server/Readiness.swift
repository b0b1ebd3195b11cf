import SluiceAPI

/// `/readyz`: 200 while the agent can serve calls, 503 while it drains or while its policy
/// is missing or past the maximum age. The body says why, and shows the policy version,
/// its age, the last sync error and the usage spool's state.
struct Readiness {
    let status: Int
    let body: [UInt8]

    init(runtime: AgentRuntime) {
        let now = runtime.now()
        let policy = runtime.activePolicy
        var state = "ready"
        if runtime.isDraining {
            state = "draining"
        } else if let sync = runtime.sync, sync.staleness(at: now) != nil {
            state = sync.version == nil ? "no_policy" : "policy_stale"
        } else if let spool = runtime.spool, spool.refusesCalls {
            state = "usage_spool_unavailable"
        }
        status = state == "ready" ? 200 : 503

        var body: [UInt8] = []
        func field(_ name: String, _ value: String?) {
            body.append(contentsOf: ",\"\(name)\":".utf8)
            if let value { appendJSONString(value, to: &body) } else { body.append(contentsOf: "null".utf8) }
        }
        func number(_ name: String, _ value: String?) {
            body.append(contentsOf: ",\"\(name)\":\(value ?? "null")".utf8)
        }
        body.append(contentsOf: #"{"status":"#.utf8)
        appendJSONString(state, to: &body)
        number("aliases", String(policy.configuration.catalog.names.count))
        // Deployments needing these are left out; the rest of the policy is served, so the
        // agent stays ready and the list says what to mount.
        body.append(contentsOf: #","missing_credentials":["#.utf8)
        for (index, reference) in policy.configuration.catalog.missingCredentials.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            appendJSONString(reference, to: &body)
        }
        body.append(UInt8(ascii: "]"))
        body.append(contentsOf: #","policy":{"source":"#.utf8)
        if let sync = runtime.sync {
            let report = sync.report(at: now)
            appendJSONString("control_plane", to: &body)
            number("version", report.version.map(String.init))
            number("age_seconds", report.ageSeconds.map { String(Int($0)) })
            number("max_age_seconds", String(sync.maxPolicyAgeNanoseconds / 1_000_000_000))
            field("last_sync_error", report.lastError)
            field("agent_id", report.agentID)
            body.append(UInt8(ascii: "}"))
            if let spool = runtime.spool {
                let health = spool.health
                body.append(contentsOf: #","usage_spool":{"epoch":"#.utf8)
                appendJSONString(health.epoch, to: &body)
                number("acknowledged_sequence", String(health.acknowledgedSequence))
                number("held_in_memory", String(health.heldInMemory))
                number("quarantined_files", String(health.quarantined))
                field("disk_error", health.lastError)
                field("last_flush_error", report.lastFlushError)
                body.append(UInt8(ascii: "}"))
            }
        } else {
            appendJSONString("file", to: &body)
            field("version", policy.version)
            number("age_seconds", String((now - policy.loadedAt) / 1_000_000_000))
            body.append(UInt8(ascii: "}"))
        }
        body.append(UInt8(ascii: "}"))
        self.body = body
    }
}
