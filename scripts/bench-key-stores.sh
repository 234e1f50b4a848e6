#!/usr/bin/env bash
# Issuance throughput per CA key store, in-process (CSR checks, signing, SQLite record), with the
# same count and concurrency:
#   software         the key in memory (decrypted from its PKCS #8 file),
#   pkcs11           a key generated in a SoftHSM2 token made for the run (C_Sign per certificate),
#   azure-key-vault  a key in the sandbox's Key Vault (an HTTPS sign call per certificate).
# Usage: scripts/bench-key-stores.sh [COUNT] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-2000}
CONCURRENCY=${2:-8}

scripts/test-tools.sh >/dev/null
echo "==> building keygate (release)"
source scripts/lib.sh
build release keygate
KEYGATE="$(swift build -c release --show-bin-path)/keygate"

WORK="$(mktemp -d /tmp/keygate-bench-stores.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK" > "$WORK/softhsm2.conf"
export SOFTHSM2_CONF="$WORK/softhsm2.conf"
softhsm2-util --init-token --free --label keygate-bench --pin 1234 --so-pin 12345678 >/dev/null
echo 1234 > "$WORK/pin"

echo "==> machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "==> $COUNT certificates per store, concurrency $CONCURRENCY, ECDSA P-256"
"$KEYGATE" bench issue --count "$COUNT" --concurrency "$CONCURRENCY" --save-csrs "$WORK/csrs"
for sessions in 1 4; do
    "$KEYGATE" bench issue --count "$COUNT" --concurrency "$CONCURRENCY" --csr-dir "$WORK/csrs" \
        --key-store pkcs11 --pkcs11-token keygate-bench --pkcs11-pin-file "$WORK/pin" --pkcs11-sessions "$sessions" \
        | sed "s/\$/ [SoftHSM2, $sessions session(s)]/"
done
"$KEYGATE" bench issue --count "$COUNT" --concurrency "$CONCURRENCY" --csr-dir "$WORK/csrs" --key-store azure-key-vault \
    | sed 's/$/ [sandbox Key Vault over HTTPS]/'
