#!/usr/bin/env bash
# The agent ↔ control plane benchmark (figures, no assertions): 50 in-process agents on one
# sluice-control process (SQLite), sharing a team's requests per minute by leases under
# uneven load; revocation propagation to all 50; control-plane CPU per agent per flush
# cycle; usage flush bytes per agent per minute at 100 calls/s.
#   bench/sync.sh      (BENCH_AGENTS=N, BENCH_WINDOW_SECONDS=N change the fleet run)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product sluice-control >/dev/null 2>&1
export SLUICE_CONTROL_BIN="$(swift build -c release --show-bin-path)/sluice-control"
cd bench/sync
swift build -c release >/dev/null 2>&1
"$(swift build -c release --show-bin-path)/SyncBench"
