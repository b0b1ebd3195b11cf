#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs, builds app and tests once, runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh --test

# The official openai and anthropic Python SDKs from PyPI, in a venv of their own, for the
# tests that drive the agent with them unchanged but for base_url; and kubernetes-validate,
# which checks every generated Kubernetes object against the API's schemas offline.
venv=.state/sdk-venv
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import openai, anthropic, kubernetes_validate" 2>/dev/null
then
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "openai>=1.40,<3" "anthropic>=0.40,<1" \
    "kubernetes-validate>=1.31,<2"
fi
export SLUICE_SDK_PYTHON="$PWD/$venv/bin/python"
export SLUICE_K8S_VALIDATE="$PWD/$venv/bin/kubernetes-validate"
# helm (and kubectl if missing) for the chart and kustomize tests; helm keeps its state in
# scratch directories so the tests touch nothing of the machine's.
scripts/install-helm.sh
export SLUICE_HELM="$PWD/.state/tools/bin/helm"
export SLUICE_KUBECTL="$(command -v kubectl || echo "$PWD/.state/tools/bin/kubectl")"

# Swift lines fit in 120 columns (wire fixtures inside multi-line literals excepted).
python3 scripts/check-line-length.py

# One build for app and tests, then run without rebuilding (avoids a second pass over deps).
swift build --build-tests
swift test --skip-build

# The container images' root filesystems, assembled as the Containerfiles do and started
# under chroot with nothing else present (release builds, as the images ship).
deploy/images/check.sh
