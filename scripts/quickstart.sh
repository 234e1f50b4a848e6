#!/usr/bin/env bash
# Keygate in five minutes: build, create a CA, start the server, sign a device CSR, check it with
# openssl, revoke it and watch OCSP and the CRL say so. Everything lives in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v openssl >/dev/null && command -v curl >/dev/null || scripts/test-tools.sh
echo "==> building keygate (first build takes a few minutes)"
source scripts/lib.sh
build debug keygate
KEYGATE="$(swift build --show-bin-path)/keygate"
[ -x "$KEYGATE" ] || { echo "build failed"; exit 1; }

WORK="$(mktemp -d /tmp/keygate-quickstart.XXXXXX)"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTPS_PORT=$(free_port); HTTP_PORT=$(free_port)
DATA="$WORK/data"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "keygate init: root CA, issuing CA, encrypted keys, TLS certificate, admin token"
"$KEYGATE" init --data-dir "$DATA" --https-port "$HTTPS_PORT" --http-port "$HTTP_PORT"

step "keygate serve (HTTPS $HTTPS_PORT for the admin API, HTTP $HTTP_PORT for CRL/OCSP)"
"$KEYGATE" serve --data-dir "$DATA" > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
wait_for_serving "$WORK/serve.log"

step "a device makes a key and a CSR (the key never leaves it); the CSR asks for CN=whatever"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/device.key"
openssl req -new -key "$WORK/device.key" -subj "/CN=whatever" -out "$WORK/device.csr"

step "keygate cert sign: Keygate assigns the identity (sensor-0001), not the CSR"
"$KEYGATE" cert sign --data-dir "$DATA" --csr "$WORK/device.csr" --subject-cn sensor-0001 --out "$WORK/chain.pem"
openssl x509 -in "$WORK/chain.pem" -noout -subject -issuer -serial -dates -ext subjectKeyIdentifier,authorityKeyIdentifier,extendedKeyUsage,crlDistributionPoints,authorityInfoAccess
SERIAL=$(openssl x509 -in "$WORK/chain.pem" -noout -serial | cut -d= -f2)
openssl x509 -in "$WORK/chain.pem" -out "$WORK/leaf.pem"

step "openssl verify against root + issuing CA"
openssl verify -CAfile "$DATA/ca/root.crt.pem" -untrusted "$DATA/ca/issuing.crt.pem" "$WORK/chain.pem"

ocsp() {
    openssl ocsp -issuer "$DATA/ca/issuing.crt.pem" -cert "$WORK/leaf.pem" -url "http://127.0.0.1:$HTTP_PORT/pki/ocsp" \
        -CAfile "$DATA/ca/chain.pem" 2>&1 | grep -E "verify|leaf.pem|Reason"
}
step "OCSP before revocation"
ocsp

step "keygate cert revoke $SERIAL --reason keyCompromise"
"$KEYGATE" cert revoke --data-dir "$DATA" "$SERIAL" --reason keyCompromise

step "OCSP after revocation"
ocsp

step "the CRL at the certificate's distribution point lists it"
curl -sS -o "$WORK/crl.der" "http://127.0.0.1:$HTTP_PORT/pki/crl"
openssl crl -inform DER -in "$WORK/crl.der" -out "$WORK/crl.pem"
openssl crl -in "$WORK/crl.pem" -noout -text -CAfile "$DATA/ca/chain.pem" 2>&1 | grep -E "verify|Serial Number|Reason|Key Compromise|CRL Number" -A1 | grep -v "^--"
cat "$DATA/ca/chain.pem" "$WORK/crl.pem" > "$WORK/bundle.pem"
if openssl verify -crl_check -CAfile "$WORK/bundle.pem" "$WORK/leaf.pem" >/dev/null 2>&1; then
    echo "unexpected: the revoked certificate still verifies"; exit 1
fi
echo "openssl verify -crl_check: certificate revoked (as it should be)"

step "keygate ca show"
"$KEYGATE" ca show --data-dir "$DATA"

step "keygate audit list"
"$KEYGATE" audit list --data-dir "$DATA"

step "stopping the server (SIGTERM)"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; SERVER_PID=""
echo "done: every step above was checked by openssl"
