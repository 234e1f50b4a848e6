#!/usr/bin/env bash
# Keygate highly available: PostgreSQL, HAProxy (TLS passed through, so renewal over mTLS still sees the
# device's certificate) and three nodes made with `keygate node join`, against the Azure sandbox.
#   Phase 1: DEVICES devices go through the nine steps while one node is SIGKILLed and restarted and
#            another stopped with SIGTERM and restarted (a rolling upgrade).
#   Phase 2: OUTAGE_DEVICES more devices onboard while PostgreSQL is stopped for 10 s; requests answer
#            503 storeUnavailable meanwhile and every node recovers by itself.
# Then one device renews over mTLS through the balancer. Then: every device completed, DPS holds exactly one enrollment per device written exactly once, every
# outbox item was delivered (and reached DPS once), every certificate a device holds is in the database, `audit verify` passes
# on every node. Uses the debug build (BUILD=release for release).
# Usage: scripts/ha-test.sh [DEVICES] [OUTAGE_DEVICES]
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${1:-1000}
OUTAGE_DEVICES=${2:-300}
CONFIG=${BUILD:-debug}
command -v haproxy >/dev/null || { echo "haproxy is needed (scripts/test-tools.sh installs it)" >&2; exit 1; }
command -v psql >/dev/null || { echo "psql is needed (scripts/test-tools.sh installs it)" >&2; exit 1; }
source scripts/lib.sh
build "$CONFIG" keygate
build "$CONFIG" keygate-agent
BIN="$(swift build -c "$CONFIG" --show-bin-path)"
ulimit -n "$(((DEVICES + OUTAGE_DEVICES) * 4 + 4096))" 2>/dev/null || true

WORK="$(mktemp -d /tmp/keygate-ha.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for n in 1 2 3; do [ -f "$WORK/node$n.pid" ] && kill "$(cat "$WORK/node$n.pid")" 2>/dev/null || true; done
    scripts/postgres.sh stop "$WORK/pg" >/dev/null 2>&1 || true
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "==> PostgreSQL, the sandbox, three nodes and HAProxy"
URL="$(scripts/postgres.sh start "$WORK/pg")"
start_sandbox "$BIN" "$WORK/sandbox"
json() { sandbox_json "$WORK/sandbox" "$1"; }
sql() { psql "$URL" -qtAc "$1"; }

declare -A HTTPS HTTP
for n in 1 2 3; do HTTPS[$n]=$(free_port); HTTP[$n]=$(free_port); done
LB_HTTPS=$(free_port); LB_HTTP=$(free_port)
"$BIN/keygate" init --database "$URL" --device-rate-limit 0 --data-dir "$WORK/node1" \
    --https-port "${HTTPS[1]}" --http-port "${HTTP[1]}" --public-url "http://127.0.0.1:$LB_HTTP" > /dev/null
for n in 2 3; do
    "$BIN/keygate" node join --from "$WORK/node1" --data-dir "$WORK/node$n" \
        --https-port "${HTTPS[$n]}" --http-port "${HTTP[$n]}" > /dev/null
done
serve() {
    local n=$1
    : > "$WORK/node$n.log.new"
    KEYGATE_NODE_NAME="node$n" "$BIN/keygate" serve --data-dir "$WORK/node$n" >> "$WORK/node$n.log.new" 2>&1 &
    echo $! > "$WORK/node$n.pid"
    wait_for_serving "$WORK/node$n.log.new" 30 > /dev/null
    cat "$WORK/node$n.log.new" >> "$WORK/node$n.log"
}
for n in 1 2 3; do serve $n; done

cat > "$WORK/haproxy.cfg" <<CFG
global
    maxconn 2000
defaults
    mode tcp
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch
frontend https
    bind 127.0.0.1:$LB_HTTPS
    default_backend keygate_https
backend keygate_https
    balance roundrobin
    default-server inter 250ms fall 2 rise 2
    server node1 127.0.0.1:${HTTPS[1]} check
    server node2 127.0.0.1:${HTTPS[2]} check
    server node3 127.0.0.1:${HTTPS[3]} check
frontend http
    bind 127.0.0.1:$LB_HTTP
    default_backend keygate_http
backend keygate_http
    balance roundrobin
    default-server inter 250ms fall 2 rise 2
    server node1 127.0.0.1:${HTTP[1]} check
    server node2 127.0.0.1:${HTTP[2]} check
    server node3 127.0.0.1:${HTTP[3]} check
CFG
haproxy -f "$WORK/haproxy.cfg" -db > "$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
LB="https://127.0.0.1:$LB_HTTPS"
for _ in $(seq 1 100); do curl -sk -o /dev/null "$LB/healthz" && break; sleep 0.1; done
curl -sk -o /dev/null "$LB/healthz" || { echo "HAProxy did not start:"; cat "$WORK/haproxy.log"; exit 1; }
ADMIN=(--server "$LB" --token "$(cat "$WORK/node1/admin-token")" --ca-cert "$WORK/node1/ca/root.crt.pem")

json "['dps']['serviceConnectionString']" > "$WORK/dps.cs"
"$BIN/keygate" connector add azure "${ADMIN[@]}" --type dps --connection-string "@$WORK/dps.cs" \
    --id-scope "$(json "['dps']['idScope']")" --global-endpoint "$(json "['dps']['deviceEndpoint']")" \
    --azure-ca-cert "$WORK/sandbox/ca.pem" > /dev/null
"$BIN/keygate" group create fleet "${ADMIN[@]}" --connector azure > /dev/null
python3 -c "
print('deviceId,group')
for i in range($DEVICES): print('ha-%04d,fleet' % i)
for i in range($OUTAGE_DEVICES): print('pg-%04d,fleet' % i)" > "$WORK/devices.csv"
"$BIN/keygate" allowlist import "$WORK/devices.csv" "${ADMIN[@]}" --tokens-out "$WORK/tokens.csv" > /dev/null

simulate() {
    local prefix=$1 count=$2
    "$BIN/keygate-agent" simulate --server "$LB" --ca-cert "$WORK/node1/ca/root.crt.pem" \
        --devices "$count" --prefix "$prefix" --concurrency 50 --state-dir "$WORK/fleet-$prefix" \
        --azure-ca-cert "$WORK/sandbox/ca.pem" --dps-port "$SANDBOX_PORT" --mqtt-port "$MQTT_PORT" --messages 1 \
        --tokens "$WORK/tokens.csv" > "$WORK/simulate-$prefix.out" 2> "$WORK/simulate-$prefix.err"
}
certificates() { sql "SELECT COUNT(*) FROM certificates WHERE device_id LIKE '$1-%'"; }
wait_until_certificates() {
    local prefix=$1 count=$2
    for _ in $(seq 1 600); do [ "$(certificates "$prefix")" -ge "$count" ] && return 0; sleep 0.1; done
}

echo "==> phase 1: $DEVICES devices through HAProxy; node2 SIGKILLed and restarted, node3 SIGTERMed and restarted"
START=$(date +%s)
simulate ha "$DEVICES" &
SIM=$!
PIDS+=("$SIM")
wait_until_certificates ha $((DEVICES / 5))
echo "    $(certificates ha) certificates issued: SIGKILL node2"
kill -9 "$(cat "$WORK/node2.pid")"
sleep 2
serve 2
echo "    node2 back"
wait_until_certificates ha $((DEVICES / 2))
echo "    $(certificates ha) certificates issued: SIGTERM node3"
kill -TERM "$(cat "$WORK/node3.pid")"
while kill -0 "$(cat "$WORK/node3.pid")" 2>/dev/null; do sleep 0.1; done
sleep 2
serve 3
echo "    node3 back"
wait "$SIM" || { echo "simulate failed:"; tail -n 20 "$WORK/simulate-ha.out" "$WORK/simulate-ha.err"; exit 1; }
echo "    phase 1 done in $(($(date +%s) - START)) s: $(tail -n 1 "$WORK/simulate-ha.out")"

# Renewal over mutual TLS through the balancer: the node sees the device's certificate (TLS passed through).
RENEWED=$("$BIN/keygate-agent" renew --server "$LB" --ca-cert "$WORK/node1/ca/root.crt.pem" --device-id ha-0000 \
    --state-dir "$WORK/fleet-ha/ha-0000" --attribute machine-id=ha-0000 2>&1) || { echo "renewal through HAProxy failed: $RENEWED"; exit 1; }
echo "    ha-0000 renewed over mTLS through HAProxy: $(echo "$RENEWED" | head -n 1)"
[ "$(sql "SELECT COUNT(*) FROM audit_events WHERE subject = 'ha-0000' AND action = 'certificate.renewed' AND details LIKE '%mtls%'")" = 1 ] \
    || { echo "no mTLS renewal recorded for ha-0000"; exit 1; }

echo "==> phase 2: $OUTAGE_DEVICES devices; PostgreSQL stopped for 10 s in the middle"
simulate pg "$OUTAGE_DEVICES" &
SIM=$!
PIDS+=("$SIM")
wait_until_certificates pg $((OUTAGE_DEVICES / 4))
echo "    $(certificates pg) certificates issued: stopping PostgreSQL"
scripts/postgres.sh stop "$WORK/pg"
sleep 3
# While it is down, the API answers 503 storeUnavailable with Retry-After.
DOWN=$(curl -sk -o "$WORK/down.json" -D "$WORK/down.headers" -w '%{http_code}' \
    -H "Authorization: Bearer $(cat "$WORK/node1/admin-token")" "$LB/admin/v1/groups" || true)
sleep 7
scripts/postgres.sh start "$WORK/pg" > /dev/null
echo "    PostgreSQL back; during the outage: HTTP $DOWN $(tr -d '\n' < "$WORK/down.json" | head -c 160)"
[ "$DOWN" = 503 ] && grep -q storeUnavailable "$WORK/down.json" && grep -qi '^retry-after:' "$WORK/down.headers" \
    || { echo "expected 503 storeUnavailable with Retry-After during the outage"; exit 1; }
wait "$SIM" || { echo "simulate failed:"; tail -n 20 "$WORK/simulate-pg.out" "$WORK/simulate-pg.err"; exit 1; }
echo "    phase 2 done: $(tail -n 1 "$WORK/simulate-pg.out")"

echo "==> checks"
TOTAL=$((DEVICES + OUTAGE_DEVICES))
# Every certificate a device holds is in the database.
python3 - "$WORK" > "$WORK/serials.txt" <<'PY'
import glob, json, sys
for state in glob.glob(sys.argv[1] + "/fleet-*/*/state.json"):
    print(json.load(open(state))["certificateSerial"])
PY
HELD=$(wc -l < "$WORK/serials.txt")
FOUND=$(psql "$URL" -qtA -c "CREATE TEMP TABLE held (serial TEXT COLLATE \"C\")" \
    -c "\\copy held FROM '$WORK/serials.txt'" \
    -c "SELECT COUNT(*) FROM held JOIN certificates USING (serial)" | tail -n 1)
echo "    $HELD devices hold a certificate; $FOUND of them are in the database"
# Every outbox item delivered, each device's enrollment queued once and written to DPS once.
PENDING=$(sql "SELECT COUNT(*) FROM outbox WHERE state <> 'delivered'")
ENROLL_ITEMS=$(sql "SELECT COUNT(*) FROM outbox WHERE action = 'enroll'")
"$BIN/keygate" sandbox inspect --data-dir "$WORK/sandbox" --json > "$WORK/inventory.json"
sql "SELECT device_id, COUNT(*) FROM outbox WHERE action = 'enroll' GROUP BY device_id" > "$WORK/items.txt"
read -r ENROLLED WRITTEN_ONCE CONNECTED < <(python3 - "$WORK/inventory.json" "$WORK/items.txt" <<'PY'
import json, sys
inv = json.load(open(sys.argv[1]))
items = dict(line.strip().split("|") for line in open(sys.argv[2]) if "|" in line)
mine = [e for e in inv["enrollments"] if e["id"].startswith(("ha-", "pg-"))]
# Each enrollment item (the first enrollment, or a renewal after a lost answer) reaches DPS once.
once = sum(1 for e in mine if e.get("writes") == int(items.get(e["id"], 0)))
connected = sum(1 for d in inv["devices"] if d["deviceId"].startswith(("ha-", "pg-")) and d["telemetryMessages"] >= 1)
print(len(mine), once, connected)
PY
)
echo "    DPS holds $ENROLLED enrollments ($WRITTEN_ONCE written once per enrollment item); $CONNECTED devices sent telemetry"
echo "    outbox: $ENROLL_ITEMS enrollment items, $PENDING not delivered"
for n in 1 2 3; do
    "$BIN/keygate" audit verify --data-dir "$WORK/node$n" > "$WORK/verify$n.out" \
        || { echo "audit verify failed on node$n:"; cat "$WORK/verify$n.out"; exit 1; }
done
echo "    audit verify passes on node1, node2 and node3 ($(sql "SELECT COUNT(*) FROM audit_events") entries)"
[ "$HELD" = "$TOTAL" ] && [ "$FOUND" = "$TOTAL" ] && [ "$ENROLLED" = "$TOTAL" ] && [ "$WRITTEN_ONCE" = "$TOTAL" ] \
    && [ "$CONNECTED" = "$TOTAL" ] && [ "$PENDING" = 0 ] && [ "$ENROLL_ITEMS" -ge "$TOTAL" ] \
    || {
        echo "HA test failed; enrollments not written exactly once:"
        python3 -c "
import json
for e in json.load(open('$WORK/inventory.json'))['enrollments']:
    if e.get('writes') != 1: print(e['id'], e.get('writes'))" | head -n 10 | while read -r id writes; do
            echo "  $id written $writes times; outbox: $(sql "SELECT string_agg(action || ':' || state || ':' || attempts, ' ') FROM outbox WHERE device_id = '$id'")"
            echo "    audit: $(sql "SELECT string_agg(action || '@' || actor, ' ' ORDER BY seq) FROM audit_events WHERE subject = '$id'")"
        done
        exit 1
    }
echo "HA test passed"
