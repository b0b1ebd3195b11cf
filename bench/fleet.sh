#!/usr/bin/env bash
# Thousands of simulated agents on one sluice-control process (figures, no assertions):
# light clients speaking the real agent API, each holding a policy long-poll open and, every
# flush interval, posting a usage batch that renews its leases. Prints control-plane CPU per
# agent per cycle, batch and renewal latency p50/p99, memory per waiting long-poll, database
# growth per agent-day, and how fast a key revocation reaches every agent.
#   bench/fleet.sh   (BENCH_FLEET_AGENTS=2000, BENCH_FLUSH_SECONDS=5, BENCH_WINDOW_SECONDS=60,
#                     BENCH_FLEET_DB=postgres for PostgreSQL instead of SQLite,
#                     BENCH_FLEET_SEPARATE_RENEWAL=1 for a batch and a renewal call per cycle)
set -euo pipefail
cd "$(dirname "$0")/.."
# Two sockets per simulated agent on each side.
ulimit -n "$(ulimit -Hn)"
swift build -c release --static-swift-stdlib --product sluice-control >/dev/null 2>&1
export SLUICE_CONTROL_BIN="$(swift build -c release --static-swift-stdlib --show-bin-path)/sluice-control"
cd bench/sync
swift build -c release --static-swift-stdlib --product FleetSim >/dev/null
"$(swift build -c release --static-swift-stdlib --show-bin-path)/FleetSim"
