#!/usr/bin/env bash
# End to end: N devices through the nine steps against the sandbox, with `keygate serve`, `keygate
# sandbox` and the fleet simulator (`keygate-agent simulate`) as separate processes (release build).
# Prints devices/s, the simulator's p50/p99 per step and the server's peak resident memory.
#   scripts/bench-e2e.sh [N] [CONCURRENCY]        (default 10,000 devices, 200 at a time)
#   scripts/bench-e2e.sh --quota [N] [CONCURRENCY] with the sandbox enforcing Azure's quotas; prints the DPS
#                                                  service calls, how many were answered 429 and how much of
#                                                  the allowance the connector used while it had work
#   scripts/bench-e2e.sh --quota --dps-limit L [N] [C] the same with a DPS allowance of L calls a minute (the
#                                                  sandbox enforces it, the connector is given it), so that
#                                                  the onboarding outruns it and the pacing shows
#   scripts/bench-e2e.sh --postgres [N] [CONCURRENCY] Keygate on a throwaway PostgreSQL server instead of SQLite
set -euo pipefail
cd "$(dirname "$0")/.."
QUOTA=0
POSTGRES=0
DPS_LIMIT=""
while [ "${1:-}" = "--quota" ] || [ "${1:-}" = "--postgres" ] || [ "${1:-}" = "--dps-limit" ]; do
    case "$1" in
    --quota) QUOTA=1 ;;
    --postgres) POSTGRES=1 ;;
    --dps-limit) QUOTA=1; DPS_LIMIT="$2"; shift ;;
    esac
    shift
done
DEVICES=${1:-10000}
CONCURRENCY=${2:-200}
source scripts/lib.sh
build release keygate
build release keygate-agent
BIN="$(swift build -c release --show-bin-path)"
ulimit -n "$((CONCURRENCY * 8 + 4096))" 2>/dev/null || true

WORK="$(mktemp -d /tmp/keygate-e2e.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    [ "$POSTGRES" = 1 ] && scripts/postgres.sh stop "$WORK/pg" > /dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

HTTPS=$(free_port); HTTP=$(free_port)
# Above 5,000 devices the sandbox keeps its state in memory: rewriting its state file per change would
# be what is measured.
SANDBOX_FLAGS=()
[ "$DEVICES" -gt 5000 ] && SANDBOX_FLAGS=(--in-memory)
start_sandbox "$BIN" "$WORK/sandbox" "${SANDBOX_FLAGS[@]}"
json() { sandbox_json "$WORK/sandbox" "$1"; }
PACE=()
if [ "$QUOTA" = 1 ]; then
    if [ -n "$DPS_LIMIT" ]; then
        # Only the DPS service API is held to the (lower) allowance: what is measured is the connector.
        "$BIN/keygate" sandbox faults --data-dir "$WORK/sandbox" --surface dps-service --quota on \
            --quota-limit "$DPS_LIMIT" --quota-window 60 > /dev/null
        PACE=(--max-calls-per-minute "$DPS_LIMIT")
    else
        "$BIN/keygate" sandbox faults --data-dir "$WORK/sandbox" --quota on > /dev/null
    fi
fi

DATABASE=()
if [ "$POSTGRES" = 1 ]; then
    chmod 755 "$WORK"
    DATABASE=(--database "$(scripts/postgres.sh start "$WORK/pg")")
fi
"$BIN/keygate" init --device-rate-limit 0 --data-dir "$WORK/kg" --https-port "$HTTPS" --http-port "$HTTP" \
    "${DATABASE[@]}" > /dev/null
"$BIN/keygate" serve --data-dir "$WORK/kg" --log-level warning > "$WORK/serve.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_for_serving "$WORK/serve.log" > /dev/null
json "['dps']['serviceConnectionString']" > "$WORK/dps.cs"
json "['hub']['registryConnectionString']" > "$WORK/hub.cs"
"$BIN/keygate" connector add azure --data-dir "$WORK/kg" --type dps --connection-string "@$WORK/dps.cs" \
    --hub-connection-string "@$WORK/hub.cs" --id-scope "$(json "['dps']['idScope']")" \
    --global-endpoint "$(json "['dps']['deviceEndpoint']")" --azure-ca-cert "$WORK/sandbox/ca.pem" "${PACE[@]}" > /dev/null
"$BIN/keygate" group create fleet --data-dir "$WORK/kg" --connector azure > /dev/null
python3 -c "
print('deviceId,group')
for i in range($DEVICES): print('e2e-%04d,fleet' % i)" > "$WORK/devices.csv"
"$BIN/keygate" allowlist import "$WORK/devices.csv" --data-dir "$WORK/kg" --tokens-out "$WORK/tokens.csv" > /dev/null

echo "==> machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "==> $DEVICES devices, $CONCURRENCY at a time, on $( [ "$POSTGRES" = 1 ] && echo PostgreSQL || echo SQLite)$( [ "$QUOTA" = 1 ] && echo ', sandbox quotas on')"
PEAK_FILE="$WORK/peak"
( while kill -0 "$SERVER" 2>/dev/null; do
      awk '/VmHWM/ {print $2}' "/proc/$SERVER/status" > "$PEAK_FILE.tmp" 2>/dev/null && mv "$PEAK_FILE.tmp" "$PEAK_FILE"
      echo "$(date +%s.%N) $(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status" 2>/dev/null)" >> "$WORK/rss"
      sleep 1
  done ) &
PIDS+=($!)
START=$(date +%s.%N)
"$BIN/keygate-agent" simulate --server "https://127.0.0.1:$HTTPS" --ca-cert "$WORK/kg/ca/root.crt.pem" \
    --devices "$DEVICES" --prefix e2e --concurrency "$CONCURRENCY" --state-dir "$WORK/fleet" \
    --azure-ca-cert "$WORK/sandbox/ca.pem" --dps-port "$SANDBOX_PORT" --mqtt-port "$MQTT_PORT" --messages 1 \
    --tokens "$WORK/tokens.csv" > "$WORK/simulate.out" 2> "$WORK/simulate.err" || {
    echo "simulate failed:"; tail -n 20 "$WORK/simulate.out" "$WORK/simulate.err"; exit 1; }
END=$(date +%s.%N)
# Every step's p50/p99, then the same by tenth of the fleet (devices start in ID order).
sed -n '/^All /,$p' "$WORK/simulate.out"
python3 - "$START" "$END" "$DEVICES" "$(cat "$PEAK_FILE" 2>/dev/null || echo 0)" <<'PY'
import sys
start, end, devices, peak_kib = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
seconds = end - start
print(f"==> {devices} devices in {seconds:.1f} s = {devices / seconds:.1f} devices/s; server peak memory {peak_kib / 1024:.0f} MiB")
PY
# The server's resident memory at each tenth of the run: flat after warm-up, or growing.
python3 - "$START" "$END" "$WORK/rss" <<'PY'
import sys
start, end = float(sys.argv[1]), float(sys.argv[2])
samples = [tuple(map(float, line.split())) for line in open(sys.argv[3]) if len(line.split()) == 2]
samples = [(t, kib) for t, kib in samples if start <= t <= end]
if samples:
    marks = []
    for tenth in range(1, 11):
        at = start + (end - start) * tenth / 10
        kib = min(samples, key=lambda s: abs(s[0] - at))[1]
        marks.append(kib)
    print("==> server memory (MiB) at each tenth of the run: " + " ".join(f"{m / 1024:.0f}" for m in marks))
PY
if [ "$QUOTA" = 1 ]; then
    "$BIN/keygate" sandbox faults --data-dir "$WORK/sandbox" --json > "$WORK/faults.json"
    python3 - "$WORK/faults.json" "$START" "$END" "${DPS_LIMIT:-1000}" "$DEVICES" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
start, end, limit, devices = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
passed = report["passed"].get("dps-service", 0)
throttled = report["injected"].get("dps-service", 0)
calls = passed + throttled
minutes = (end - start) / 60
print(f"==> DPS service API: {calls} calls, {throttled} answered 429 ({100 * throttled / max(1, calls):.2f} %); "
      f"{passed / minutes:.0f} calls a minute over the run = {100 * passed / minutes / limit:.0f} % of the "
      f"{limit}-a-minute allowance; {devices / minutes:.0f} enrollments a minute")
for surface in ("dps-device", "hub", "hub-device"):
    if report["injected"].get(surface, 0):
        print(f"    {surface}: {report['injected'][surface]} answered 429 of {report['passed'].get(surface, 0) + report['injected'][surface]}")
PY
fi
