#!/usr/bin/env bash
# Installs what building Keygate needs beyond Swift: the SQLite and PKCS #11 headers (Debian's
# libsqlite3-dev and libp11-kit-dev) and pkg-config to find them. Safe to run again.
set -euo pipefail
need=()
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)
dpkg -s libp11-kit-dev >/dev/null 2>&1 || need+=(libp11-kit-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
