#!/usr/bin/env bash
# Checks the three images without a container engine: builds each binary as the
# Containerfiles do (release, static Swift stdlib), assembles its root filesystem with
# deploy/images/rootfs.sh, and runs it from there under chroot as user 65532, with nothing
# else present. The agent and the control plane must answer /healthz; the CLI must run.
# Prints each image's size. Needs root (chroot).
#   deploy/images/check.sh [OUTDIR]    (default .state/images)
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-.state/images}"
[[ $(id -u) -eq 0 ]] || { echo "deploy/images/check.sh: chroot needs root"; exit 1; }
for product in sluice-agent sluice-control sluice; do
  swift build -c release --static-swift-stdlib --product "$product" >/dev/null
done
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)"

pids=()
mounts=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for mount in "${mounts[@]}"; do umount "$mount" 2>/dev/null || true; done
}
trap cleanup EXIT

# A container runtime always gives a process /proc (the Swift runtime reads its arguments
# from /proc/self/cmdline); a bare chroot does not, so mount one, and only that.
with_proc() {
  mkdir -p "$1/proc"
  mount -t proc proc "$1/proc"
  mounts+=("$1/proc")
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until GET /healthz on PORT answers {"status":"ok"}; fails after 20 s or if PID died.
expect_healthy() {
  local name="$1" port="$2" pid="$3" log="$4"
  for _ in $(seq 1 200); do
    if ! kill -0 "$pid" 2>/dev/null; then echo "FAIL $name exited:"; cat "$log"; exit 1; fi
    if [[ "$(curl -s --max-time 1 "http://127.0.0.1:$port/healthz" || true)" == '{"status":"ok"}' ]]; then
      return 0
    fi
    sleep 0.1
  done
  echo "FAIL $name did not answer /healthz on $port"; cat "$log"; exit 1
}

printf '%-16s %10s  %s\n' image bytes contents
for product in sluice-agent sluice-control sluice; do
  root="$out/$product"
  deploy/images/rootfs.sh "$bin/$product" "$root"
  for forbidden in bin/sh usr/bin/sh bin/bash; do
    [[ ! -e "$root/$forbidden" ]] || { echo "FAIL $product image holds /$forbidden"; exit 1; }
  done
  size=$(du -sb "$root" | cut -f1)
  libraries=$(cd "$root" && find lib lib64 -type f | wc -l)
  zones=$( (cd "$root" && find usr/share/zoneinfo -type f 2>/dev/null || true) | wc -l)
  binary=$(stat -c %s "$root/usr/local/bin/$product")
  printf '%-16s %10s  binary %s bytes, %s shared libraries, %s time zones, CA bundle, passwd\n' \
    "$product" "$size" "$binary" "$libraries" "$zones"
  with_proc "$root"
done

# The agent with a configuration of its own in /tmp (the image has none: it is injected
# with --control-plane), serving on loopback.
agent_root="$out/sluice-agent"
printf 'model_list: []\n' > "$agent_root/tmp/agent.yaml"
port=$(free_port)
chroot --userspec=65532:65532 "$agent_root" /usr/local/bin/sluice-agent --config /tmp/agent.yaml \
  --listen "127.0.0.1:$port" --metrics-listen off --reload-poll-seconds 0 > "$out/agent.log" 2>&1 &
pids+=($!)
expect_healthy sluice-agent "$port" "${pids[-1]}" "$out/agent.log"
rm -f "$agent_root/tmp/agent.yaml"

# The control plane on SQLite in its home directory, the admin token from the environment.
port=$(free_port)
SLUICE_ADMIN_TOKEN=image-check-admin-token-0123456789 chroot --userspec=65532:65532 "$out/sluice-control" \
  /usr/local/bin/sluice-control --listen "127.0.0.1:$port" --data-dir /var/lib/sluice > "$out/control.log" 2>&1 &
pids+=($!)
expect_healthy sluice-control "$port" "${pids[-1]}" "$out/control.log"

chroot --userspec=65532:65532 "$out/sluice" /usr/local/bin/sluice --help > "$out/cli.log" 2>&1 \
  || { echo "FAIL sluice --help:"; cat "$out/cli.log"; exit 1; }
grep -q "USAGE" "$out/cli.log" || { echo "FAIL sluice --help printed no usage"; cat "$out/cli.log"; exit 1; }
echo "images: all three start from their root filesystems alone"
