#!/usr/bin/env bash
# deps.sh: installs the Debian 12 packages strata builds, tests and benchmarks with.
#
# Root runs apt-get itself; anyone else is told the exact apt-get line to run and the script
# stops, so a build never half-works with a missing library. `deps.sh bench` adds the tools the
# benchmarks need (wrk and the peers are added by later benchmark issues). The python3-*
# packages are for Debian's /usr/bin/python3, which runs the Python client's tests
# (clients/python/tests: pytest, pytest-asyncio, pip with setuptools for the install test, and
# mypy for the typing check).
set -euo pipefail

pkgs=(build-essential cmake pkg-config libevent-dev libhiredis-dev libjansson-dev libxxhash-dev
      libhttp-parser-dev libfyaml-dev libssl-dev libcurl4-openssl-dev libcmocka-dev redis-server redis-sentinel clang clang-format
      cppcheck prometheus python3 curl jq openssl
      python3-pytest python3-pytest-asyncio python3-pip python3-setuptools python3-wheel mypy)
# The deployment files' checks (tests/deploy): dpkg-dev (dpkg-shlibdeps) and lintian for the Debian
# package, systemd for `systemd-analyze verify` (and man-db for the manual page it checks),
# python3-yaml for the compose and Kubernetes files.
pkgs+=(dpkg-dev lintian systemd man-db python3-yaml)
# Chart.js for the dashboard (compiled into strata serve from /usr/share/javascript/chart.js), and
# headless Chromium for its browser test (tests/browser, driven by playwright-core from npm).
pkgs+=(libjs-chart.js chromium)
# Node.js for the openai npm SDK's test (tests/npm): Debian's nodejs and npm, unless a nodejs
# package that carries its own npm (NodeSource's) is there already.
pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
if [ "${1:-}" = "bench" ]; then
    pkgs+=(util-linux)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "strata: missing Debian packages: ${missing[*]}" >&2
    echo "run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "strata: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
