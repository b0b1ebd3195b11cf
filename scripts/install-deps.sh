#!/usr/bin/env bash
# Installs the Debian packages Sluice builds and tests with, only when something is missing.
# Usage: scripts/install-deps.sh [--test]   (--test adds the tools the test suite and benchmark use)
set -euo pipefail

packages=(libnghttp2-dev libssl-dev libsqlite3-dev libcurl4-openssl-dev pkg-config curl tzdata ca-certificates)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(nghttp2-server nghttp2-client nghttp2-proxy wrk postgresql python3-venv chromium chromium-driver)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if (( ${#missing[@]} > 0 )); then
  echo "Installing: ${missing[*]}"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  for candidate in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
    [[ -x "$candidate/swift" ]] && export PATH="$candidate:$PATH"
  done
fi
command -v swift >/dev/null 2>&1 || { echo "Swift 6.1 or newer is required (https://swift.org/install)"; exit 1; }
