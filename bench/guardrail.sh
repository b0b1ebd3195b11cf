#!/usr/bin/env bash
# What one external guardrail adds to a call: the same agent policy with and without a
# guardrail in scope of every call, side by side. The guardrail is a second mock provider
# on the loopback (h2c), answering allow (see docs/guardrails.md). Prints, per setup, the
# latency at c=1 (p50/p99, and what the guardrail added), and req/s and the agent's CPU µs
# per call at c=16.
#   bench/guardrail.sh       (run bench/run.sh first once: it builds and makes the cert)
set -euo pipefail
cd "$(dirname "$0")/.."
state=".state/bench"
[[ -f "$state/agent.yaml" && -f "$state/cert/cert.pem" ]] || { echo "run bench/run.sh once first"; exit 1; }
duration="${BENCH_DURATION:-10}"
swift build -c release --static-swift-stdlib --product sluice-agent >/dev/null
swift build -c release --static-swift-stdlib --product sluice-mock-provider >/dev/null
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)"
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null || true' EXIT
"$bin/sluice-mock-provider" --listen 127.0.0.1:18443 --cert-dir "$state/cert" >/dev/null 2>&1 & pids+=($!)
"$bin/sluice-mock-provider" --listen 127.0.0.1:18444 --mode plaintext >/dev/null 2>&1 & pids+=($!)

# Both setups have a policy section (keyless callers allowed), so the only difference is the guardrail.
cat "$state/agent.yaml" - > "$state/agent-noguard.yaml" <<'YAML'
sluice_policy:
  services: {"*": {keyless: allowed}}
YAML
cat "$state/agent-noguard.yaml" - > "$state/agent-guard.yaml" <<'YAML'
  guardrails:
    - {name: bench, url: "http://127.0.0.1:18444/v1/guardrail", timeout_ms: 1000}
YAML

wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; }
wait_port 18443; wait_port 18444
declare -A p50 p99
for setup in noguard guard; do
  # Audit lines go to standard output.
  "$bin/sluice-agent" --config "$state/agent-$setup.yaml" --listen 127.0.0.1:14000 --metrics-listen off \
    >"$state/audit-$setup.jsonl" 2>"$state/agent-$setup.log" & agent=$!
  pids+=($agent)
  wait_port 14000
  url=http://127.0.0.1:14000/v1/chat/completions
  wrk -t1 -c4 -d2s -s bench/post.lua "$url" >/dev/null
  line=$(wrk -t1 -c1 -d"${duration}s" -s bench/post.lua "$url" | grep '^RESULT')
  p50[$setup]=$(echo "$line" | sed 's/.*p50_us=\([0-9]*\).*/\1/')
  p99[$setup]=$(echo "$line" | sed 's/.*p99_us=\([0-9]*\).*/\1/')
  errors=$(echo "$line" | sed 's/.*errors=\([0-9]*\).*/\1/')
  before=$(awk '{print $14 + $15}' "/proc/$agent/stat")
  load=$(wrk -t2 -c16 -d"${duration}s" -s bench/post.lua "$url" | grep '^RESULT')
  after=$(awk '{print $14 + $15}' "/proc/$agent/stat")
  requests=$(echo "$load" | sed 's/.*requests=\([0-9]*\).*/\1/')
  errors=$((errors + $(echo "$load" | sed 's/.*errors=\([0-9]*\).*/\1/')))
  python3 -c "print('$setup', 'c=1 p50_ms', ${p50[$setup]} / 1000, 'p99_ms', ${p99[$setup]} / 1000, \
'| c=16 req/s', round($requests / $duration), 'cpu_us/req', \
round(($after - $before) / $(getconf CLK_TCK) / $requests * 1e6, 1), '| errors', $errors)"
  kill -9 "$agent"; wait "$agent" 2>/dev/null || true
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/14000) 2>/dev/null || break; sleep 0.05; done
done
verdicts=$(grep -c '"verdict":"allow"' "$state/audit-guard.jsonl" || true)
python3 -c "print('guardrail added at c=1: p50', (${p50[guard]} - ${p50[noguard]}) / 1000, 'ms, p99', \
(${p99[guard]} - ${p99[noguard]}) / 1000, 'ms;', $verdicts, 'calls checked')"
