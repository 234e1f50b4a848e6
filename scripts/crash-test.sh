#!/usr/bin/env bash
# Kills `keygate serve` with SIGKILL in the middle of onboarding DEVICES devices (the fleet simulator
# against the sandbox), restarts it, and checks that every device still ends connected and that every
# certificate a device holds is in Keygate's database. Uses the debug build (BUILD=release for release).
# Usage: scripts/crash-test.sh [DEVICES] [SECONDS-BEFORE-THE-KILL]
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${1:-500}
KILL_AFTER=${2:-4}
CONFIG=${BUILD:-debug}
command -v sqlite3 >/dev/null || { echo "sqlite3 is needed (scripts/test-tools.sh installs it)" >&2; exit 1; }
source scripts/lib.sh
build "$CONFIG" keygate
build "$CONFIG" keygate-agent
BIN="$(swift build -c "$CONFIG" --show-bin-path)"
ulimit -n "$((DEVICES * 4 + 1024))" 2>/dev/null || true

WORK="$(mktemp -d /tmp/keygate-crash.XXXXXX)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

HTTPS=$(free_port); HTTP=$(free_port)
start_sandbox "$BIN" "$WORK/sandbox"
json() { sandbox_json "$WORK/sandbox" "$1"; }

"$BIN/keygate" init --device-rate-limit 0 --data-dir "$WORK/kg" --https-port "$HTTPS" --http-port "$HTTP" > /dev/null
serve() {
    "$BIN/keygate" serve --data-dir "$WORK/kg" >> "$WORK/serve.log" 2>&1 &
    SERVE_PID=$!
    PIDS+=("$SERVE_PID")
    wait_for_serving "$WORK/serve.log" > /dev/null
}
serve
json "['dps']['serviceConnectionString']" > "$WORK/dps.cs"
"$BIN/keygate" connector add azure --data-dir "$WORK/kg" --type dps --connection-string "@$WORK/dps.cs" \
    --id-scope "$(json "['dps']['idScope']")" --global-endpoint "$(json "['dps']['deviceEndpoint']")" \
    --azure-ca-cert "$WORK/sandbox/ca.pem" > /dev/null
"$BIN/keygate" group create fleet --data-dir "$WORK/kg" --connector azure > /dev/null
python3 -c "
print('deviceId,group')
for i in range($DEVICES): print('crash-%04d,fleet' % i)" > "$WORK/devices.csv"
"$BIN/keygate" allowlist import "$WORK/devices.csv" --data-dir "$WORK/kg" --tokens-out "$WORK/tokens.csv" > /dev/null

echo "==> onboarding $DEVICES devices; SIGKILL to keygate serve after ${KILL_AFTER} s"
"$BIN/keygate-agent" simulate --server "https://127.0.0.1:$HTTPS" --ca-cert "$WORK/kg/ca/root.crt.pem" \
    --devices "$DEVICES" --prefix crash --concurrency 50 --state-dir "$WORK/fleet" \
    --azure-ca-cert "$WORK/sandbox/ca.pem" --dps-port "$SANDBOX_PORT" --mqtt-port "$MQTT_PORT" --messages 2 \
    --tokens "$WORK/tokens.csv" > "$WORK/simulate.out" 2> "$WORK/simulate.err" &
SIM=$!
PIDS+=("$SIM")
sleep "$KILL_AFTER"
BEFORE=$(sqlite3 "$WORK/kg/keygate.sqlite" "SELECT COUNT(*) FROM certificates WHERE device_id LIKE 'crash-%'")
kill -9 "$SERVE_PID"
echo "    killed with $BEFORE device certificates issued; restarting"
sleep 1
serve
wait "$SIM" || { echo "simulate failed:"; tail -n 20 "$WORK/simulate.out" "$WORK/simulate.err"; exit 1; }
tail -8 "$WORK/simulate.out"

# Every certificate a device holds is in the database, and every device connected.
MISSING=0
for state in "$WORK"/fleet/*/state.json; do
    serial=$(python3 -c "import json; print(json.load(open('$state'))['certificateSerial'])")
    found=$(sqlite3 "$WORK/kg/keygate.sqlite" "SELECT COUNT(*) FROM certificates WHERE serial = '$serial'")
    [ "$found" = "1" ] || { echo "missing from the database: $serial ($state)"; MISSING=$((MISSING + 1)); }
done
HELD=$(ls "$WORK"/fleet | wc -l)
CONNECTED=$("$BIN/keygate" sandbox inspect --data-dir "$WORK/sandbox" --json \
    | python3 -c "import json,sys; print(sum(1 for d in json.load(sys.stdin)['devices'] if d['deviceId'].startswith('crash-') and d['telemetryMessages'] >= 2))")
echo "==> $HELD devices hold a certificate, $MISSING missing from the database; $CONNECTED sent telemetry through the hub"
[ "$MISSING" = 0 ] && [ "$HELD" = "$DEVICES" ] && [ "$CONNECTED" = "$DEVICES" ]
echo "crash test passed"
