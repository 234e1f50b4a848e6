#!/usr/bin/env bash
# Times `keygate allowlist import` of a generated CSV (default 100,000 rows) against a fresh server,
# then imports it again (idempotent: nothing changes). Usage: scripts/bench-allowlist-import.sh [ROWS] [debug|release]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-100000}
CONFIG=${2:-release}
source scripts/lib.sh
build "$CONFIG" keygate
KEYGATE="$(swift build -c "$CONFIG" --show-bin-path)/keygate"
WORK="$(mktemp -d /tmp/keygate-import.XXXXXX)"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
"$KEYGATE" init --data-dir "$WORK/data" --https-port "$(free_port)" --http-port "$(free_port)" > /dev/null
"$KEYGATE" serve --data-dir "$WORK/data" > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
wait_for_serving "$WORK/serve.log" > /dev/null
"$KEYGATE" group create fleet --data-dir "$WORK/data" > /dev/null
python3 - "$ROWS" "$WORK/fleet.csv" <<'PY'
import sys
rows, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("deviceId,group\n")
    for i in range(rows):
        f.write(f"device-{i:07d},fleet\n")
PY
echo "==> machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); build: $CONFIG"
echo "==> first import of $ROWS rows"
/usr/bin/time -f "    %e s wall, %M KiB max RSS (client)" "$KEYGATE" allowlist import "$WORK/fleet.csv" --data-dir "$WORK/data"
echo "==> the same file again"
/usr/bin/time -f "    %e s wall" "$KEYGATE" allowlist import "$WORK/fleet.csv" --data-dir "$WORK/data"
