#!/usr/bin/env bash
# Issuance throughput on this machine, in one go, with the same CSRs and concurrency:
#   1. the crypto floor: `openssl speed ecdsap256` (one CSR verify + one sign per certificate),
#   2. Keygate in-process (CSR checks, signing, SQLite record),
#   3. Keygate over HTTPS with the database (POST /admin/v1/certificates),
#   4. cfssl (`cfssl serve`, POST /api/v1/cfssl/sign, plain HTTP, no database),
# alternating 3 and 4 twice each at concurrency 8 and CONCURRENCY, and prints the ratios.
# Usage: scripts/bench-issuance.sh [COUNT] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-5000}
CONCURRENCY=${2:-16}

if ! command -v cfssl >/dev/null; then
    echo "==> installing golang-cfssl"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-cfssl >/dev/null
fi
echo "==> building keygate (release)"
source scripts/lib.sh
build release keygate
KEYGATE="$(swift build -c release --show-bin-path)/keygate"

WORK="$(mktemp -d /tmp/keygate-bench.XXXXXX)"
CFSSL_PID=""
cleanup() { [ -n "$CFSSL_PID" ] && kill "$CFSSL_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
CORES=$(nproc)

echo "==> machine: $CORES cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

echo "==> crypto floor: openssl speed ecdsap256 on $CORES cores"
openssl speed -seconds 3 -multi "$CORES" ecdsap256 2>/dev/null > "$WORK/speed.txt"
read -r SIGN VERIFY < <(awk '/256 bits ecdsa \(nistp256\)/ {print $(NF-1), $NF}' "$WORK/speed.txt" | tail -1)
FLOOR=$(python3 -c "print(round(1/(1/$SIGN + 1/$VERIFY)))")
echo "    sign/s $SIGN, verify/s $VERIFY -> floor $FLOOR certificates/s (one verify + one sign each)"

echo "==> Keygate in-process ($COUNT certificates, concurrency $CONCURRENCY)"
"$KEYGATE" bench issue --count "$COUNT" --concurrency "$CONCURRENCY" --save-csrs "$WORK/csrs" --json > "$WORK/inproc.json"
INPROC=$(python3 -c "import json; print(round(json.load(open('$WORK/inproc.json'))['perSecond']))")
echo "    $INPROC/s"

echo "==> cfssl serve (same CSRs)"
cat > "$WORK/ca-csr.json" <<'JSON'
{"CN": "cfssl bench CA", "key": {"algo": "ecdsa", "size": 256}, "ca": {"expiry": "87600h"}}
JSON
cat > "$WORK/config.json" <<'JSON'
{"signing": {"default": {"expiry": "8760h", "usages": ["digital signature", "client auth"]}}}
JSON
(cd "$WORK" && cfssl genkey -initca ca-csr.json 2>/dev/null | cfssljson -bare ca)
PORT=$(free_port)
cfssl serve -address 127.0.0.1 -port "$PORT" -ca "$WORK/ca.pem" -ca-key "$WORK/ca-key.pem" -config "$WORK/config.json" \
    > "$WORK/cfssl.log" 2>&1 &
CFSSL_PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/api/v1/cfssl/health" && break; sleep 0.1; done

# Keygate over HTTPS (with its database) and cfssl alternate, twice each, with the same load generator
# (`keygate bench issue`, the same CSRs) at 8 and at the given concurrency; the better run of each counts.
rate() { python3 -c "import json; d=json.load(open('$1')); print(round(d['perSecond']))"; }
ROWS=""
for C in 8 "$CONCURRENCY"; do
    BEST_KG=0; BEST_CF=0
    for ROUND in 1 2; do
        "$KEYGATE" bench issue --http --csr-dir "$WORK/csrs" --count "$COUNT" --concurrency "$C" --json > "$WORK/kg.json"
        "$KEYGATE" bench issue --target cfssl --url "http://127.0.0.1:$PORT" --csr-dir "$WORK/csrs" --count "$COUNT" \
            --concurrency "$C" --json > "$WORK/cf.json"
        KG=$(rate "$WORK/kg.json"); CF=$(rate "$WORK/cf.json")
        echo "    concurrency $C, round $ROUND: Keygate HTTPS $KG/s, cfssl $CF/s"
        [ "$KG" -gt "$BEST_KG" ] && BEST_KG=$KG
        [ "$CF" -gt "$BEST_CF" ] && BEST_CF=$CF
    done
    ROWS="$ROWS $C:$BEST_KG:$BEST_CF"
done

python3 - "$FLOOR" "$INPROC" "$COUNT" "$CORES" $ROWS <<'PY'
import sys
floor, inproc, count, cores = map(float, sys.argv[1:5])
print()
print(f"| measure ({int(count)} certificates per run, {int(cores)} cores) | certificates/s | ratio |")
print("|---|---:|---:|")
print(f"| crypto floor (openssl speed: 1 verify + 1 sign) | {floor:.0f} | 1.00 of floor |")
print(f"| Keygate in-process (checks, sign, SQLite record + audit) | {inproc:.0f} | {inproc/floor:.2f} of floor |")
for row in sys.argv[5:]:
    c, kg, cf = row.split(":")
    kg, cf = float(kg), float(cf)
    print(f"| Keygate HTTPS + SQLite, concurrency {c} | {kg:.0f} | {kg/floor:.2f} of floor, {kg/cf:.2f}x cfssl |")
    print(f"| cfssl serve (HTTP, no database), concurrency {c} | {cf:.0f} | {cf/floor:.2f} of floor |")
PY
