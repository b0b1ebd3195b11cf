#!/usr/bin/env bash
# Translation cost per request, per answer and per streamed event for each dialect pair
# (ordo-one/benchmark), beside the OpenAI pass-through work it replaces. Prints a table.
#   bench/translation.sh [extra `swift package benchmark` arguments]
set -euo pipefail
cd "$(dirname "$0")/translation"
swift package --disable-sandbox benchmark --format markdown --no-progress "$@"
