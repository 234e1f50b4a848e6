#!/usr/bin/env bash
# Installs what Keygate's build and tests use: openssl, curl, sqlite3, SoftHSM2, PostgreSQL, HAProxy, Chromium
# (/usr/bin/chromium, for browser tests), the PKCS #11 header (libp11-kit-dev, found with pkg-config) from Debian, and
# a Python venv (.venv) with pkilint, openapi-spec-validator, Microsoft's Azure IoT SDKs (pinned) and Playwright.
# Playwright drives Debian's Chromium (executable_path="/usr/bin/chromium"); its own browser download
# (`playwright install`) is never run. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
scripts/build-deps.sh
for pair in openssl:openssl curl:curl sqlite3:sqlite3 softhsm2-util:softhsm2 psql:postgresql-client haproxy:haproxy chromium:chromium; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
# The PostgreSQL server (scripts/postgres.sh runs it as an unprivileged user).
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || need+=(postgresql)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/lint_pkix_cert ] || [ ! -x .venv/bin/openapi-spec-validator ] \
    || ! .venv/bin/python3 -c 'import cryptography' >/dev/null 2>&1; then
    echo "==> creating .venv with pkilint, openapi-spec-validator and cryptography (EST answers)"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q pkilint openapi-spec-validator cryptography
fi

# Microsoft's SDKs, pinned: the sandbox must satisfy them unchanged.
AZURE_SDKS=(azure-iot-device==2.14.0 azure-iot-hub==2.7.0 six azure-iothub-provisioningserviceclient==1.2.0)
if ! .venv/bin/python3 -c 'import azure.iot.device, azure.iot.hub, provisioningserviceclient, six' >/dev/null 2>&1; then
    echo "==> installing Microsoft's Azure IoT SDKs into .venv"
    .venv/bin/pip install -q "${AZURE_SDKS[@]}"
fi

# Playwright for Python, driving Debian's Chromium (no `playwright install`: it cannot download browsers here).
if ! .venv/bin/python3 -c 'import playwright.sync_api' >/dev/null 2>&1; then
    echo "==> installing Playwright into .venv (browser: /usr/bin/chromium)"
    .venv/bin/pip install -q playwright
fi
