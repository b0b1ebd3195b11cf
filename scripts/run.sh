#!/usr/bin/env bash
# Builds and starts a working agent. With no arguments it serves config/example.yaml against
# the bundled mock provider (HTTP/2 over TLS with a self-signed certificate), so it works
# with no provider keys. Pass a config path to use your own: scripts/run.sh my-config.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh

config="${1:-config/example.yaml}"
swift build -c release --static-swift-stdlib --product sluice-agent
swift build -c release --static-swift-stdlib --product sluice-mock-provider
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)"

mkdir -p .state
mock_pid=""
if [[ "$config" == "config/example.yaml" ]]; then
  "$bin/sluice-mock-provider" --listen 127.0.0.1:8443 --cert-dir .state/mock-provider > .state/mock-provider.log 2>&1 &
  mock_pid=$!
  trap '[[ -n "$mock_pid" ]] && kill "$mock_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do [[ -f .state/mock-provider/cert.pem ]] && grep -q listening .state/mock-provider.log && break; sleep 0.1; done
fi

cat <<'MSG'

sluice-agent is starting on http://127.0.0.1:4000. Try:

  curl -s http://127.0.0.1:4000/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'

  curl -sN http://127.0.0.1:4000/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}]}'

  # refused by the example policy's prompt filter (403, names the filter):
  curl -s http://127.0.0.1:4000/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"my ssn is 123-45-6789"}]}'

  curl -s http://127.0.0.1:9464/metrics     # Prometheus metrics

Audit lines (one JSON object per request) print below. Ctrl-C stops it.

MSG
SLUICE_SERVICE="${SLUICE_SERVICE:-demo}" "$bin/sluice-agent" --config "$config" --listen 127.0.0.1:4000
