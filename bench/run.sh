#!/usr/bin/env bash
# The data-path benchmark: one run prints one table (see bench/README.md).
#
#   bench/run.sh                 15 s per load point (the default)
#   BENCH_DURATION=5 bench/run.sh
#
# Upstreams, both HTTP/2 + TLS on loopback, each answering in microseconds:
#   mock   sluice-mock-provider (ours)
#   nginx  nginx 1.22 returning a fixed 675-byte chat completion (bench/nginx-completion.json):
#          a server we did not write
# Paths compared for each upstream, with wrk (HTTP/1.1 keep-alive) as the client:
#   direct  wrk → upstream (HTTPS/1.1)
#   sluice  wrk → sluice-agent → upstream (h2 over TLS)
#   nghttpx wrk → nghttpx (HTTP/1.1 in) → upstream (h2 over TLS): the C reverse-proxy reference
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh --test
if ! command -v nginx >/dev/null 2>&1; then
  # Debian starts a packaged daemon (on port 80) after install unless policy-rc.d forbids it;
  # the benchmark runs its own nginx on loopback only.
  sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  guard=""; [[ -e /usr/sbin/policy-rc.d ]] || { guard=1; printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null; $sudo_cmd chmod +x /usr/sbin/policy-rc.d; }
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq nginx-light >/dev/null
  [[ -n "$guard" ]] && $sudo_cmd rm -f /usr/sbin/policy-rc.d
fi
command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }

duration="${BENCH_DURATION:-15}"
mock_port="${BENCH_MOCK_PORT:-18443}"
agent_port="${BENCH_AGENT_PORT:-14000}"
nghttpx_port="${BENCH_NGHTTPX_PORT:-13000}"
nginx_port="${BENCH_NGINX_PORT:-18444}"
nginx_nghttpx_port="${BENCH_NGINX_NGHTTPX_PORT:-13001}"
state=".state/bench"
mkdir -p "$state"

swift build -c release --static-swift-stdlib --product sluice-agent >/dev/null
swift build -c release --static-swift-stdlib --product sluice-mock-provider >/dev/null
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened"; exit 1; }

"$bin/sluice-mock-provider" --listen "127.0.0.1:$mock_port" --cert-dir "$state/cert" >"$state/mock.log" 2>&1 &
pids+=($!)
wait_port "$mock_port"
cert="$state/cert/cert.pem"

# nginx: one process (no master), HTTP/2 and HTTP/1.1 over TLS with the mock's certificate,
# keep-alive without a request limit, the same fixed answer to every request.
mkdir -p "$state/nginx"
cat > "$state/nginx/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $PWD/$state/nginx/nginx.pid;
error_log $PWD/$state/nginx/error.log error;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $PWD/$state/nginx/body;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$nginx_port ssl http2;
    ssl_certificate $PWD/$state/cert/cert.pem;
    ssl_certificate_key $PWD/$state/cert/key.pem;
    location / {
      default_type application/json;
      return 200 '$(cat bench/nginx-completion.json)';
    }
  }
}
NGINX
nginx -e "$PWD/$state/nginx/error.log" -c "$PWD/$state/nginx/nginx.conf" &
pids+=($!)
wait_port "$nginx_port"

cat > "$state/agent.yaml" <<YAML
model_list:
  - model_name: bench
    litellm_params: {model: openai/bench, api_base: "https://127.0.0.1:$mock_port/v1", api_key: sk-bench-not-a-key, ssl_verify: "$cert"}
    model_info: {input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}
  - model_name: bench-claude
    litellm_params: {model: anthropic/mock, api_base: "https://127.0.0.1:$mock_port/v1", api_key: sk-bench-not-a-key, ssl_verify: "$cert"}
    model_info: {input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}
  - model_name: bench-gemini
    litellm_params: {model: gemini/mock, api_base: "https://127.0.0.1:$mock_port/v1beta", api_key: sk-bench-not-a-key, ssl_verify: "$cert"}
    model_info: {input_cost_per_token: 0.0000003, output_cost_per_token: 0.0000025}
  - model_name: bench-stream
    litellm_params: {model: "openai/mock+chunks=50+chunk_delay_ms=20", api_base: "https://127.0.0.1:$mock_port/v1", api_key: sk-bench-not-a-key, ssl_verify: "$cert"}
    model_info: {input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}
  - model_name: bench-nginx
    litellm_params: {model: openai/gpt-4o-mini, api_base: "https://127.0.0.1:$nginx_port/v1", api_key: sk-bench-not-a-key, ssl_verify: "$cert"}
    model_info: {input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}
YAML
# Audit lines go to a file, as a container runtime would collect them.
"$bin/sluice-agent" --config "$state/agent.yaml" --listen "127.0.0.1:$agent_port" >"$state/audit.jsonl" 2>"$state/agent.log" &
agent_pid=$!
pids+=($agent_pid)
wait_port "$agent_port"

# One nghttpx per upstream. sni=localhost: nghttpx checks DNS names only, and the
# certificate names localhost. --conf=/dev/null: ignore the packaged /etc/nghttpx/nghttpx.conf.
# nghttpx forks a worker that does the proxying; its CPU is what compares with the agent's,
# so the worker's pid is what start_nghttpx leaves in started_worker.
start_nghttpx() {  # frontend-port backend-port log-name
  nghttpx --conf=/dev/null --frontend="127.0.0.1,$1;no-tls" --backend="127.0.0.1,$2;;tls;sni=localhost;proto=h2" \
    --cacert="$cert" --workers=1 --no-ocsp --log-level=ERROR --accesslog-file=/dev/null \
    --errorlog-file="$state/$3" >/dev/null 2>&1 &
  pids+=($!)
  wait_port "$1"
  started_worker=$(pgrep -P "${pids[-1]}" | head -1)
  pids+=($started_worker)
}
start_nghttpx "$nghttpx_port" "$mock_port" nghttpx.log
nghttpx_pid=$started_worker
start_nghttpx "$nginx_nghttpx_port" "$nginx_port" nghttpx-nginx.log
nginx_nghttpx_pid=$started_worker
curl -sf -o /dev/null "http://127.0.0.1:$nginx_nghttpx_port/v1/chat/completions" -d '{"model":"bench"}' \
  || { echo "nghttpx cannot reach nginx: see $state/nghttpx-nginx.log"; exit 1; }
curl -sf -o /dev/null "http://127.0.0.1:$agent_port/v1/chat/completions" -d '{"model":"bench-nginx"}' \
  || { echo "the agent cannot reach nginx: see $state/agent.log and $state/nginx/error.log"; exit 1; }
curl -sf -o /dev/null "http://127.0.0.1:$nghttpx_port/v1/chat/completions" -d '{"model":"bench"}' \
  || { echo "nghttpx cannot reach the mock: see $state/nghttpx.log"; exit 1; }
curl -sf -o /dev/null "http://127.0.0.1:$agent_port/v1/chat/completions" -d '{"model":"bench"}' \
  || { echo "the agent cannot reach the mock: see $state/agent.log"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk "/^$2:/ {print \$2}" "/proc/$1/status"; }
start_rss=$(rss_kb "$agent_pid" VmRSS)
ticks_per_second=$(getconf CLK_TCK)

# Warm up every path (connections, TLS sessions, page cache).
for url in "https://127.0.0.1:$mock_port" "http://127.0.0.1:$agent_port" "http://127.0.0.1:$nghttpx_port" \
  "https://127.0.0.1:$nginx_port" "http://127.0.0.1:$nginx_nghttpx_port"; do
  wrk -t1 -c4 -d2s -s bench/post.lua "$url/v1/chat/completions" >/dev/null
done
BENCH_MODEL=bench-nginx wrk -t1 -c4 -d2s -s bench/post.lua "http://127.0.0.1:$agent_port/v1/chat/completions" >/dev/null
idle_rss=$(rss_kb "$agent_pid" VmRSS)

declare -A rps p50 p99 errs cpu_us
run_point() {  # name url connections [pid-to-measure] [model]
  local name=$1 url=$2 connections=$3 pid=${4:-} model=${5:-bench}
  local threads=2; [[ $connections -lt 2 ]] && threads=1
  local before=0; [[ -n "$pid" ]] && before=$(cpu_ticks "$pid")
  local line
  line=$(BENCH_MODEL="$model" wrk -t"$threads" -c"$connections" -d"${duration}s" --timeout 10s -s bench/post.lua "$url/v1/chat/completions" | grep '^RESULT')
  local requests duration_us errors p50_us p99_us
  eval "$(echo "$line" | sed 's/^RESULT //')"
  local key="$name/$connections"
  rps[$key]=$(python3 -c "print(round($requests / ($duration_us / 1e6)))")
  p50[$key]=$(python3 -c "print(f'{$p50_us / 1000:.3f}')")
  p99[$key]=$(python3 -c "print(f'{$p99_us / 1000:.3f}')")
  errs[$key]=$errors
  if [[ -n "$pid" ]]; then
    local after; after=$(cpu_ticks "$pid")
    cpu_us[$key]=$(python3 -c "print(f'{($after - $before) / $ticks_per_second / max(1, $requests) * 1e6:.1f}')")
  else
    cpu_us[$key]="-"
  fi
}

for connections in 1 16 64; do
  run_point direct "https://127.0.0.1:$mock_port" "$connections"
  run_point sluice "http://127.0.0.1:$agent_port" "$connections" "$agent_pid"
  run_point nghttpx "http://127.0.0.1:$nghttpx_port" "$connections" "$nghttpx_pid"
  run_point nginx-direct "https://127.0.0.1:$nginx_port" "$connections"
  run_point nginx-sluice "http://127.0.0.1:$agent_port" "$connections" "$agent_pid" bench-nginx
  run_point nginx-nghttpx "http://127.0.0.1:$nginx_nghttpx_port" "$connections" "$nginx_nghttpx_pid"
done
busy_hwm=$(rss_kb "$agent_pid" VmHWM)

# 256 concurrent streams held open (50 chunks, 20 ms apart: about 1 s each).
BENCH_MODEL=bench-stream BENCH_STREAM=1 wrk -t2 -c256 -d10s --timeout 10s -s bench/post.lua \
  "http://127.0.0.1:$agent_port/v1/chat/completions" > "$state/streams.txt"
stream_line=$(grep '^RESULT' "$state/streams.txt")
stream_hwm=$(rss_kb "$agent_pid" VmHWM)

# Added time to first byte on streams (steady state, one keep-alive connection each).
read -r ttfb_direct_p50 ttfb_direct_p99 < <(python3 bench/ttfb.py "https://127.0.0.1:$mock_port/v1/chat/completions" mock 300 "$cert")
read -r ttfb_agent_p50 ttfb_agent_p99 < <(python3 bench/ttfb.py "http://127.0.0.1:$agent_port/v1/chat/completions" bench 300)

# Time to first token through each dialect: the provider's own stream direct from the mock,
# then through the agent, passed through (OpenAI) or translated (Anthropic, Gemini, and
# Anthropic's Messages API served by an OpenAI deployment).
ttft() { python3 bench/ttfb.py "$@" --token; }
read -r ttft_openai_direct_p50 ttft_openai_direct_p99 < <(ttft "https://127.0.0.1:$mock_port/v1/chat/completions" mock 300 "$cert")
read -r ttft_openai_agent_p50 ttft_openai_agent_p99 < <(ttft "http://127.0.0.1:$agent_port/v1/chat/completions" bench 300)
read -r ttft_claude_direct_p50 ttft_claude_direct_p99 < <(ttft "https://127.0.0.1:$mock_port/v1/messages" mock 300 "$cert" --dialect anthropic)
read -r ttft_claude_agent_p50 ttft_claude_agent_p99 < <(ttft "http://127.0.0.1:$agent_port/v1/chat/completions" bench-claude 300)
read -r ttft_gemini_direct_p50 ttft_gemini_direct_p99 < <(ttft "https://127.0.0.1:$mock_port/v1beta/models/mock:streamGenerateContent?alt=sse" mock 300 "$cert" --dialect gemini)
read -r ttft_gemini_agent_p50 ttft_gemini_agent_p99 < <(ttft "http://127.0.0.1:$agent_port/v1/chat/completions" bench-gemini 300)
read -r ttft_ingress_agent_p50 ttft_ingress_agent_p99 < <(ttft "http://127.0.0.1:$agent_port/v1/messages" bench 300 --dialect anthropic)

ratio() { python3 -c "a, b = $1, $2; print(f'{a / b:.2f}' if b else '-')"; }
added() { python3 -c "print(f'{$1 - $2:.3f}')"; }

{
  echo "## Data-path benchmark ($(date -u +%Y-%m-%d), ${duration}s per point, $(nproc) cores)"
  echo
  echo "| upstream | path | conns | req/s | p50 ms | p99 ms | errors | CPU µs/req |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for upstream in mock nginx; do
    prefix=""; [[ $upstream == nginx ]] && prefix="nginx-"
    for connections in 1 16 64; do
      for name in direct sluice nghttpx; do
        key="$prefix$name/$connections"
        echo "| $upstream | $name | $connections | ${rps[$key]} | ${p50[$key]} | ${p99[$key]} | ${errs[$key]} | ${cpu_us[$key]} |"
      done
    done
  done
  echo
  echo "| upstream | target | sluice | nghttpx | ratio | goal |"
  echo "| --- | --- | ---: | ---: | ---: | --- |"
  for upstream in mock nginx; do
    p=""; [[ $upstream == nginx ]] && p="nginx-"
    sluice_added_p99_c1=$(added "${p99[${p}sluice/1]}" "${p99[${p}direct/1]}")
    nghttpx_added_p99_c1=$(added "${p99[${p}nghttpx/1]}" "${p99[${p}direct/1]}")
    sluice_added_p99=$(added "${p99[${p}sluice/16]}" "${p99[${p}direct/16]}")
    nghttpx_added_p99=$(added "${p99[${p}nghttpx/16]}" "${p99[${p}direct/16]}")
    echo "| $upstream | throughput at c=64 (req/s) | ${rps[${p}sluice/64]} | ${rps[${p}nghttpx/64]} | $(ratio "${rps[${p}sluice/64]}" "${rps[${p}nghttpx/64]}") | ≥ 0.8 |"
    echo "| $upstream | CPU per request at c=64 (µs) | ${cpu_us[${p}sluice/64]} | ${cpu_us[${p}nghttpx/64]} | $(ratio "${cpu_us[${p}sluice/64]}" "${cpu_us[${p}nghttpx/64]}") | ≤ 1.5 |"
    echo "| $upstream | added p99 at c=1 (ms) | $sluice_added_p99_c1 | $nghttpx_added_p99_c1 | $(ratio "$sluice_added_p99_c1" "$nghttpx_added_p99_c1") | ≤ 1.5 |"
    echo "| $upstream | added p99 at c=16 (ms) | $sluice_added_p99 | $nghttpx_added_p99 | $(ratio "$sluice_added_p99" "$nghttpx_added_p99") | (queueing) |"
  done
  echo
  echo "| agent memory | value | goal |"
  echo "| --- | ---: | --- |"
  echo "| idle RSS at start | $((start_rss / 1024)) MB ($start_rss kB) | ≤ 16 MB |"
  echo "| idle RSS after warm-up | $((idle_rss / 1024)) MB ($idle_rss kB) | ≤ 16 MB |"
  echo "| peak RSS during the c=1…64 runs | $((busy_hwm / 1024)) MB | |"
  echo "| peak RSS with 256 streams open | $((stream_hwm / 1024)) MB ($stream_hwm kB) | ≤ 48 MB |"
  echo
  echo "256-stream run: $(echo "$stream_line" | sed 's/^RESULT //')"
  echo
  echo "| time to first byte, streams | p50 ms | p99 ms |"
  echo "| --- | ---: | ---: |"
  echo "| direct to the mock (HTTPS/1.1) | $ttfb_direct_p50 | $ttfb_direct_p99 |"
  echo "| through sluice-agent | $ttfb_agent_p50 | $ttfb_agent_p99 |"
  echo "| added by the agent | $(added "$ttfb_agent_p50" "$ttfb_direct_p50") | $(added "$ttfb_agent_p99" "$ttfb_direct_p99") |"
  echo
  echo "| time to first token, streams | direct p50 ms | through the agent p50 ms | added p50 ms | direct p99 ms | through the agent p99 ms | added p99 ms |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  echo "| OpenAI, passed through | $ttft_openai_direct_p50 | $ttft_openai_agent_p50 | $(added "$ttft_openai_agent_p50" "$ttft_openai_direct_p50") | $ttft_openai_direct_p99 | $ttft_openai_agent_p99 | $(added "$ttft_openai_agent_p99" "$ttft_openai_direct_p99") |"
  echo "| Anthropic, translated to chat chunks | $ttft_claude_direct_p50 | $ttft_claude_agent_p50 | $(added "$ttft_claude_agent_p50" "$ttft_claude_direct_p50") | $ttft_claude_direct_p99 | $ttft_claude_agent_p99 | $(added "$ttft_claude_agent_p99" "$ttft_claude_direct_p99") |"
  echo "| Gemini, translated to chat chunks | $ttft_gemini_direct_p50 | $ttft_gemini_agent_p50 | $(added "$ttft_gemini_agent_p50" "$ttft_gemini_direct_p50") | $ttft_gemini_direct_p99 | $ttft_gemini_agent_p99 | $(added "$ttft_gemini_agent_p99" "$ttft_gemini_direct_p99") |"
  echo "| Messages API caller, OpenAI deployment | $ttft_openai_direct_p50 | $ttft_ingress_agent_p50 | $(added "$ttft_ingress_agent_p50" "$ttft_openai_direct_p50") | $ttft_openai_direct_p99 | $ttft_ingress_agent_p99 | $(added "$ttft_ingress_agent_p99" "$ttft_openai_direct_p99") |"
} | tee "$state/results.md"
