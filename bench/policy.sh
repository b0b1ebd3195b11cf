#!/usr/bin/env bash
# The policy decision microbenchmark: per-decision time and heap allocations on the allow
# path (target: ≤ 1 µs and none). Builds its own package under bench/policy.
#   bench/policy.sh
set -euo pipefail
cd "$(dirname "$0")/policy"
swift package --disable-sandbox benchmark --no-progress --format markdown 2>&1 | grep -v '^\[' 
