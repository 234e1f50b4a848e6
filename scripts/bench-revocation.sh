#!/usr/bin/env bash
# Revocation at scale: records CERTIFICATES device certificates, revokes every one through the
# certificate service, then times the CRL of all of them and measures OCSP answers per second
# (in process, and over HTTP to /pki/ocsp on the same two cores as the load generator).
# Usage: scripts/bench-revocation.sh [CERTIFICATES] [OCSP_REQUESTS] [OCSP_CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
CERTIFICATES=${1:-100000}
OCSP_REQUESTS=${2:-200000}
OCSP_CONCURRENCY=${3:-64}

scripts/build-deps.sh >/dev/null
if ! command -v wrk >/dev/null 2>&1; then
    echo "==> installing wrk (the HTTP load generator)"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
echo "==> building keygate (release)"
source scripts/lib.sh
build release keygate
KEYGATE="$(swift build -c release --show-bin-path)/keygate"

echo "==> machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$KEYGATE" bench revocation --certificates "$CERTIFICATES" --ocsp-requests "$OCSP_REQUESTS" \
    --ocsp-concurrency "$OCSP_CONCURRENCY" --wrk "$(command -v wrk)"
