#!/usr/bin/env bash
# A quick before/after check for request-path changes: the agent alone at c=64 against the
# mock, two 10 s wrk runs, printing req/s and the agent's CPU µs per request.
#   bench/quick.sh LABEL     (run bench/run.sh first once: it builds and makes the cert)
#   BENCH_POLICY=1 bench/quick.sh LABEL   adds a policy: a virtual key on every request,
#                            limits on key, team, service and model, and a prompt filter
#   BENCH_ANTHROPIC=1 bench/quick.sh LABEL  the same calls to an anthropic/ deployment:
#                            every request and answer translated (BENCH_STREAM=1 streams)
#   BENCH_EXPORT=1 bench/quick.sh LABEL   exports every audit line to a loopback webhook
#                            sink (bench/export-sink.py), as --export-audit-webhook does
#   BENCH_TRACE=1 bench/quick.sh LABEL    sends every call's spans (--otlp-traces, all sampled)
#                            to the same sink
#   BENCH_CONTROL=1 bench/quick.sh LABEL  runs the agent on a control plane instead of a
#                            file: policy from a signed bundle, every call's usage spooled
#                            to disk and flushed every 5 s
set -euo pipefail
cd "$(dirname "$0")/.."
label="${1:-run}"
state=".state/bench"
[[ -f "$state/agent.yaml" && -f "$state/cert/cert.pem" ]] || { echo "run bench/run.sh once first"; exit 1; }
swift build -c release --static-swift-stdlib --product sluice-agent >/dev/null
swift build -c release --static-swift-stdlib --product sluice-mock-provider >/dev/null
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)"
"$bin/sluice-mock-provider" --listen 127.0.0.1:18443 --cert-dir "$state/cert" >/dev/null 2>&1 & mock=$!
config="$state/agent.yaml"
if [[ "${BENCH_POLICY:-0}" == "1" ]]; then
  export SLUICE_KEY_PEPPER=bench-pepper-0123456789abcdef
  export BENCH_KEY=sk-sluice-BenchKey00000000000000000000000
  hash=$(echo "$BENCH_KEY" | "$bin/sluice-agent" hash-key)
  config="$state/agent-policy.yaml"
  cat "$state/agent.yaml" - > "$config" <<YAML
sluice_policy:
  key_pepper: os.environ/SLUICE_KEY_PEPPER
  prompt_filters: [{name: us-ssn, pattern: '\\b\\d{3}-\\d{2}-\\d{4}\\b'}]
  teams: {bench: {limits: {requests_per_minute: 100000000, tokens_per_minute: 1000000000}}}
  services: {"default/unknown": {limits: {max_parallel_requests: 100000}}}
  models: {bench: {limits: {requests_per_minute: 100000000}}}
  keys:
    - {id: bench, hash: "$hash", team: bench, limits: {requests_per_minute: 100000000, daily_spend_usd: 1000000}}
YAML
fi
if [[ "${BENCH_ANTHROPIC:-0}" == "1" ]]; then
  config="$state/agent-anthropic.yaml"
  sed 's#model: openai/bench#model: anthropic/bench#' "$state/agent.yaml" > "$config"
fi
control=""
if [[ "${BENCH_CONTROL:-0}" == "1" ]]; then
  swift build -c release --static-swift-stdlib --product sluice-control >/dev/null 2>&1
  control_bin="$bin"
  rm -rf "$state/control" "$state/agent-state" && mkdir -p "$state/control"
  export SLUICE_ADMIN_TOKEN=bench-admin-token-0123456789
  "$control_bin/sluice-control" --listen 127.0.0.1:18080 --data-dir "$state/control" --db "sqlite:$state/control/control.db" \
    >"$state/control.log" 2>&1 & control=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && break; sleep 0.05; done
  admin() { curl -sf -X "$1" "http://127.0.0.1:18080$2" -H "authorization: Bearer $SLUICE_ADMIN_TOKEN" -d "${3:-}"; }
  admin POST /v1/admin/models '{"alias":"bench","deployments":[{"api_base":"https://127.0.0.1:18443/v1","upstream_model":"mock"}],"input_cost_per_token":0.000001,"output_cost_per_token":0.000002}' >/dev/null
  admin POST /v1/admin/services '{"name":"*","keyless":true}' >/dev/null
  admin POST /v1/admin/agents '{"id":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' > "$state/control/agent-token"
  # The bundle names no CA; the mock's self-signed certificate is trusted through OpenSSL's default store.
  SSL_CERT_FILE="$state/cert/cert.pem" "$bin/sluice-agent" --control-plane http://127.0.0.1:18080 \
    --agent-token-file "$state/control/agent-token" --policy-public-key "$state/control/signing-key.pub" \
    --state-dir "$state/agent-state" --listen 127.0.0.1:14000 --metrics-listen off >/dev/null 2>&1 & agent=$!
else
  export_flags=()
  if [[ "${BENCH_EXPORT:-0}" == "1" || "${BENCH_TRACE:-0}" == "1" ]]; then
    python3 bench/export-sink.py 18999 & sink=$!
  fi
  [[ "${BENCH_EXPORT:-0}" == "1" ]] && export_flags+=(--export-audit-webhook http://127.0.0.1:18999/audit)
  [[ "${BENCH_TRACE:-0}" == "1" ]] && export_flags+=(--otlp-traces http://127.0.0.1:18999/v1/traces)
  "$bin/sluice-agent" --config "$config" --listen 127.0.0.1:14000 --metrics-listen off "${export_flags[@]}" \
    >/dev/null 2>&1 & agent=$!
fi
sink="${sink:-}"
trap 'kill -9 $agent $mock $control 2>/dev/null || true; [[ -n "$sink" ]] && kill $sink 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/14000) 2>/dev/null && break; sleep 0.05; done
if [[ -n "$control" ]]; then
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:14000/readyz >/dev/null && break; sleep 0.05; done
fi
url=http://127.0.0.1:14000/v1/chat/completions
wrk -t2 -c64 -d2s -s bench/post.lua "$url" >/dev/null
for _ in 1 2; do
  before=$(awk '{print $14 + $15}' "/proc/$agent/stat")
  line=$(wrk -t2 -c64 -d10s -s bench/post.lua "$url" | grep '^RESULT')
  after=$(awk '{print $14 + $15}' "/proc/$agent/stat")
  requests=$(echo "$line" | sed 's/.*requests=\([0-9]*\).*/\1/')
  python3 -c "print('$label', 'req/s', round($requests / 10), 'cpu_us/req', round(($after - $before) / $(getconf CLK_TCK) / $requests * 1e6, 1))"
done
