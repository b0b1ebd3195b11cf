#!/usr/bin/env bash
# Renders deploy/base/sluice.yaml from the chart's default values, so the kustomize base and
# the chart cannot drift apart (the test suite renders it again and compares).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-helm.sh
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
HELM_CACHE_HOME=$scratch HELM_CONFIG_HOME=$scratch HELM_DATA_HOME=$scratch \
  .state/tools/bin/helm template sluice helm/sluice --namespace sluice > deploy/base/sluice.yaml
echo "deploy/base/sluice.yaml rendered"
