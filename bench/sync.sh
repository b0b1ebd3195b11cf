#!/usr/bin/env bash
# The agent ↔ control plane benchmark (figures, no assertions): in-process agents on one
# sluice-control process (SQLite). Fleet-wide limits under uneven open-loop demand for 8 and
# 50 agents (share of the limit admitted, overshoot, quiet agents refused, fairness);
# revocation propagation to all of them; control-plane CPU per agent per flush cycle; usage
# flush bytes per agent per minute at 100 calls/s. About five minutes.
#   bench/sync.sh   (BENCH_AGENTS=N agents in all, BENCH_FAIR_FLEETS=8,50 fleet sizes,
#                    BENCH_WARMUP_SECONDS=40, BENCH_WINDOW_SECONDS=60)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib --product sluice-control >/dev/null 2>&1
export SLUICE_CONTROL_BIN="$(swift build -c release --static-swift-stdlib --show-bin-path)/sluice-control"
cd bench/sync
swift build -c release --static-swift-stdlib >/dev/null 2>&1
"$(swift build -c release --static-swift-stdlib --show-bin-path)/SyncBench"
