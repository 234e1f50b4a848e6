#!/usr/bin/env bash
# Dashboard page latency with a large fleet: a temporary server whose database holds DEVICES devices and
# CERTIFICATES certificates with their audit events; every page of /ui/ is requested REQUESTS times, one at a
# time, signed in like a browser; prints p50, p95 and the largest latency of each page (target: under 200 ms).
# Usage: scripts/bench-dashboard.sh [--postgres] [DEVICES] [CERTIFICATES] [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
POSTGRES=0
if [ "${1:-}" = "--postgres" ]; then POSTGRES=1; shift; fi
DEVICES=${1:-100000}
CERTIFICATES=${2:-200000}
REQUESTS=${3:-30}

scripts/build-deps.sh >/dev/null
echo "==> building keygate (release)"
source scripts/lib.sh
build release keygate
KEYGATE="$(swift build -c release --show-bin-path)/keygate"
DATABASE=()
if [ "$POSTGRES" = 1 ]; then
    WORK="$(mktemp -d /tmp/keygate-bench-dashboard.XXXXXX)"
    chmod 755 "$WORK"
    trap 'scripts/postgres.sh stop "$WORK/pg" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
    DATABASE=(--database "$(scripts/postgres.sh start "$WORK/pg")")
fi
echo "==> machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$KEYGATE" bench dashboard --devices "$DEVICES" --certificates "$CERTIFICATES" --requests "$REQUESTS" "${DATABASE[@]}" \
    2> >(grep -v HummingbirdCore >&2)
