#!/usr/bin/env bash
# The sandbox under many devices: starts `keygate sandbox` (release build), then
# `keygate bench sandbox` registers DEVICES devices with DPS over TLS MQTT, connects them all to the
# hub and holds the connections while this script samples the sandbox's resident memory.
# Usage: scripts/bench-sandbox.sh [DEVICES] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${1:-1000}
CONCURRENCY=${2:-100}

# Each device holds one TLS connection on each side; leave room for DPS connections in flight.
NEED=$((DEVICES * 2 + 1024))
if [ "$(ulimit -Hn)" != "unlimited" ] && [ "$(ulimit -Hn)" -lt "$NEED" ]; then
    echo "the hard open-files limit ($(ulimit -Hn)) is below $NEED; raise it to run $DEVICES devices" >&2
    exit 1
fi
ulimit -n "$NEED"

echo "==> building keygate (release)"
source scripts/lib.sh
build release keygate
KEYGATE="$(swift build -c release --show-bin-path)/keygate"

WORK="$(mktemp -d /tmp/keygate-bench-sandbox.XXXXXX)"
SANDBOX_PID=""
cleanup() { [ -n "$SANDBOX_PID" ] && kill "$SANDBOX_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

HTTPS_PORT=$(free_port)
MQTT_PORT=$(free_port)
"$KEYGATE" sandbox --data-dir "$WORK/sandbox" --https-port "$HTTPS_PORT" --mqtt-port "$MQTT_PORT" --log-level error \
    > "$WORK/sandbox.log" 2>&1 &
SANDBOX_PID=$!
for _ in $(seq 1 100); do [ -f "$WORK/sandbox/connection.json" ] && break; sleep 0.1; done
[ -f "$WORK/sandbox/connection.json" ] || { cat "$WORK/sandbox.log"; exit 1; }
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$SANDBOX_PID/status"; }

echo "==> machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
IDLE=$(rss)
echo "==> sandbox idle: ${IDLE} MiB resident"
echo "==> $DEVICES devices, concurrency $CONCURRENCY"
"$KEYGATE" bench sandbox --data-dir "$WORK/sandbox" --devices "$DEVICES" --concurrency "$CONCURRENCY" --hold 6 --json \
    > "$WORK/result.json" 2> "$WORK/bench.log" &
BENCH_PID=$!
PEAK=$IDLE
while kill -0 "$BENCH_PID" 2>/dev/null; do
    NOW=$(rss)
    PEAK=$(python3 -c "print(max($PEAK, $NOW))")
    sleep 0.5
done
wait "$BENCH_PID" || { cat "$WORK/bench.log"; exit 1; }
python3 - "$WORK/result.json" "$IDLE" "$PEAK" <<'PY'
import json, sys
result, idle, peak = json.load(open(sys.argv[1])), float(sys.argv[2]), float(sys.argv[3])
print("    DPS registration: %.0f/s (p50 %.0f ms, p99 %.0f ms)" % (
    result["registrationsPerSecond"], result["registerP50Milliseconds"], result["registerP99Milliseconds"]))
print("    hub connect:      %.0f/s (p50 %.1f ms, p99 %.1f ms)" % (
    result["connectsPerSecond"], result["connectP50Milliseconds"], result["connectP99Milliseconds"]))
print("    held:             %d of %d TLS MQTT connections open at once, %d failures" % (
    result["heldConnections"], result["devices"], result["failures"]))
print("    sandbox memory:   %.1f MiB idle, %.1f MiB peak, %.1f KiB per held connection" % (
    idle, peak, (peak - idle) * 1024 / max(result["heldConnections"], 1)))
if result["heldConnections"] != result["devices"] or result["failures"]:
    print("    FAILED: %s" % result.get("firstError"))
    sys.exit(1)
PY
