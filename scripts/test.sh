#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs, builds app and tests once, runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh --test

# One build for app and tests, then run without rebuilding (avoids a second pass over deps).
swift build --build-tests
swift test --skip-build
