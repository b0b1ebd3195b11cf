#!/usr/bin/env bash
# The control plane's benchmark: usage ingest (batches/s, 1,000 agents), bundle build for
# 10,000 keys, and usage queries over rollups standing for about 10 million requests, on
# SQLite and PostgreSQL. Needs Debian's postgresql package (scripts/install-deps.sh --test).
#   bench/control.sh       (BENCH_BATCHES_PER_AGENT=N changes the ingest length; default 10)
set -euo pipefail
cd "$(dirname "$0")/control"
swift build -c release >/dev/null
"$(swift build -c release --show-bin-path)/ControlBench"
