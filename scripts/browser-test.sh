#!/usr/bin/env bash
# The operator dashboard (/ui/) in a real browser: Debian's Chromium driven by Playwright for Python
# (Tests/browser/dashboard_test.py) against `keygate serve`, the sandbox standing in for Azure (DPS
# connector, group `fleet`), 10,000 allowlisted devices dash-0000…dash-9999 of which the first 5 are
# enrolled by `keygate-agent simulate`. Screenshots of every page go to BROWSER_ARTIFACTS (default
# .build/browser-artifacts). Prints PASS or FAIL; exits non-zero on failure.
#   scripts/browser-test.sh
#   KEYGATE_SKIP_BUILD=1 scripts/browser-test.sh   use the debug binaries already in .build/debug
#   KEEP=1 scripts/browser-test.sh                 keep the work folder (logs, data) for a look afterwards
# Needs scripts/test-tools.sh (chromium, .venv with Playwright).
#
# `scripts/browser-test.sh --restart-server WORK` is what the test calls to restart the server (SIGTERM,
# then `keygate serve` again on the same data folder and ports).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# serving_count WORK — how many times WORK/serve.log says the server listens.
serving_count() { grep -c "keygate serving" "$1/serve.log" 2>/dev/null || true; }

# start_server BIN WORK — `keygate serve` on WORK/kg in the background (log WORK/serve.log, appended),
# its PID in WORK/serve.pid; waits (at most 30 s) until it listens.
start_server() {
    local bin=$1 work=$2 before
    touch "$work/serve.log"
    before=$(serving_count "$work")
    "$bin/keygate" serve --data-dir "$work/kg" --log-level warning >> "$work/serve.log" 2>&1 < /dev/null &
    echo $! > "$work/serve.pid"
    for _ in $(seq 1 300); do
        [ "$(serving_count "$work")" -gt "$before" ] && return 0
        kill -0 "$(cat "$work/serve.pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "error: keygate serve did not start:" >&2
    tail -n 40 "$work/serve.log" >&2
    return 1
}

# stop_server WORK — SIGTERM, then waits (at most 15 s) until it has exited.
stop_server() {
    local work=$1 pid
    pid=$(cat "$work/serve.pid" 2>/dev/null) || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    echo "error: keygate serve ($pid) did not stop within 15 s of SIGTERM" >&2
    kill -9 "$pid" 2>/dev/null || true
    return 1
}

if [ "${1:-}" = "--restart-server" ]; then
    WORK=$2
    BIN=$(cat "$WORK/bin")
    stop_server "$WORK"
    start_server "$BIN" "$WORK"
    exit 0
fi

if [ "${KEYGATE_SKIP_BUILD:-0}" = 1 ]; then
    BIN="$PWD/.build/debug"
else
    build debug keygate
    build debug keygate-agent
    BIN="$(bin_path debug)"
fi
for tool in "$BIN/keygate" "$BIN/keygate-agent" /usr/bin/chromium .venv/bin/python3; do
    [ -x "$tool" ] || { echo "error: $tool is missing (scripts/test-tools.sh installs chromium and .venv)" >&2; exit 1; }
done
ARTIFACTS="${BROWSER_ARTIFACTS:-$PWD/.build/browser-artifacts}"
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/*.png

WORK="$(mktemp -d /tmp/keygate-browser.XXXXXX)"
echo "$BIN" > "$WORK/bin"
PIDS=()
STARTED=$(date +%s)
cleanup() {
    local status=$?
    disown -a 2>/dev/null || true
    stop_server "$WORK" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "work folder kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "--- last lines of the server's log:"
    tail -n 15 "$WORK/serve.log" 2>/dev/null || true
    echo "--- (KEEP=1 keeps $WORK: serve.log, sandbox.log, simulate.out)"
    exit 1
}

echo "==> sandbox, keygate init + serve"
start_sandbox "$BIN" "$WORK/sandbox"
json() { sandbox_json "$WORK/sandbox" "$1"; }
HTTPS=$(free_port); HTTP=$(free_port)
"$BIN/keygate" init --device-rate-limit 0 --data-dir "$WORK/kg" --https-port "$HTTPS" --http-port "$HTTP" \
    > "$WORK/init.out" 2>&1 || { cat "$WORK/init.out"; fail "keygate init"; }
start_server "$BIN" "$WORK" || fail "keygate serve did not start"

echo "==> DPS connector, group fleet, 10,000 allowlisted devices, 5 enrolled"
json "['dps']['serviceConnectionString']" > "$WORK/dps.cs"
json "['hub']['registryConnectionString']" > "$WORK/hub.cs"
"$BIN/keygate" connector add azure --data-dir "$WORK/kg" --type dps --connection-string "@$WORK/dps.cs" \
    --hub-connection-string "@$WORK/hub.cs" --id-scope "$(json "['dps']['idScope']")" \
    --global-endpoint "$(json "['dps']['deviceEndpoint']")" --azure-ca-cert "$WORK/sandbox/ca.pem" > /dev/null \
    || fail "keygate connector add"
"$BIN/keygate" group create fleet --data-dir "$WORK/kg" --connector azure > /dev/null || fail "keygate group create"
# `keygate-agent simulate --prefix dash` names its devices dash-0000, dash-0001, … (%04d).
python3 -c "
print('deviceId,group')
for i in range(10000): print('dash-%04d,fleet' % i)" > "$WORK/devices.csv"
timeout 60 "$BIN/keygate" allowlist import "$WORK/devices.csv" --data-dir "$WORK/kg" --tokens-out "$WORK/tokens.csv" \
    > "$WORK/import.out" 2>&1 || { cat "$WORK/import.out"; fail "keygate allowlist import"; }
timeout 120 "$BIN/keygate-agent" simulate --server "https://127.0.0.1:$HTTPS" --ca-cert "$WORK/kg/ca/root.crt.pem" \
    --devices 5 --prefix dash --concurrency 5 --state-dir "$WORK/fleet" \
    --azure-ca-cert "$WORK/sandbox/ca.pem" --dps-port "$SANDBOX_PORT" --mqtt-port "$MQTT_PORT" --messages 1 \
    --tokens "$WORK/tokens.csv" > "$WORK/simulate.out" 2> "$WORK/simulate.err" || {
    tail -n 20 "$WORK/simulate.out" "$WORK/simulate.err"; fail "keygate-agent simulate"; }

echo "==> Chromium (Playwright): the dashboard at https://127.0.0.1:$HTTPS/ui/"
export KEYGATE_URL="https://127.0.0.1:$HTTPS"
export KEYGATE_OCSP_URL="http://127.0.0.1:$HTTP/pki/ocsp"
KEYGATE_ADMIN_TOKEN="$(cat "$WORK/kg/admin-token")"
export KEYGATE_ADMIN_TOKEN
export KEYGATE_BIN="$BIN/keygate"
export KEYGATE_DATA_DIR="$WORK/kg"
export KEYGATE_ROOT_CA="$WORK/kg/ca/root.crt.pem"
export KEYGATE_ISSUING_CA="$WORK/kg/ca/issuing.crt.pem"
export KEYGATE_RESTART="$PWD/scripts/browser-test.sh --restart-server $WORK"
export SANDBOX_DATA_DIR="$WORK/sandbox"
export FLEET_STATE_DIR="$WORK/fleet"
export WORK
export BROWSER_ARTIFACTS="$ARTIFACTS"
if timeout 180 .venv/bin/python3 -u Tests/browser/dashboard_test.py; then
    echo "PASS: dashboard browser test in $(( $(date +%s) - STARTED )) s; screenshots in $ARTIFACTS"
else
    fail "dashboard browser test (screenshots so far in $ARTIFACTS)"
fi
