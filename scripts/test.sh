#!/usr/bin/env bash
# Runs Keygate's tests.
#   scripts/test.sh            every test (what CI runs): installs the outside tools the tests check
#                              against (openssl, curl, sqlite3, SoftHSM2, PostgreSQL, HAProxy, Chromium,
#                              pkilint, Microsoft's Azure IoT SDKs, Playwright), starts a throwaway PostgreSQL server, builds,
#                              runs `swift test` with every tool required (store tests on both databases),
#                              then the crash test, the HA test, the dashboard in headless Chromium
#                              (scripts/browser-test.sh) and a bounded fuzzing run (scripts/fuzz.sh).
#   scripts/test.sh --fast     the inner loop: in-process tests only; tests tagged binary, outsideTool or
#                              slow are left out (KEYGATE_FAST_TESTS=1). Installs nothing.
#   scripts/test.sh --filter X only the tests matching X (any `swift test` arguments pass through).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fast" ]; then
    shift
    echo "==> swift build (fast run)"
    swift build --build-tests
    swift package describe --type json > .build/package-description.json
    echo "==> swift test (fast run: binary, outside-tool and slow tests left out)"
    KEYGATE_FAST_TESTS=1 swift test --skip-build "$@"
    exit 0
fi

scripts/test-tools.sh
# A throwaway PostgreSQL server: the store suite and the multi-node tests run on it as well as SQLite.
PG_DIR="$(mktemp -d /tmp/keygate-test-pg.XXXXXX)"
trap 'scripts/postgres.sh stop "$PG_DIR"; rm -rf "$PG_DIR"' EXIT
echo "==> starting PostgreSQL for the tests"
KEYGATE_TEST_POSTGRES_URL="$(scripts/postgres.sh start "$PG_DIR")"
export KEYGATE_TEST_POSTGRES_URL
echo "==> swift build"
swift build --build-tests
# The agent-isolation test reads the package graph; SwiftPM cannot describe it during `swift test`.
swift package describe --type json > .build/package-description.json
echo "==> swift test"
KEYGATE_REQUIRE_TOOLS=1 swift test --skip-build "$@"
# With a filter (`scripts/test.sh --filter X`) only those tests run; otherwise the crash test, the HA test and a
# short, bounded fuzzing run of every parser (scripts/fuzz.sh SECONDS; KEYGATE_FUZZ_SECONDS, default 10).
if [ $# -eq 0 ]; then
    echo "==> crash test: SIGKILL the server while 500 devices onboard"
    scripts/crash-test.sh 500 5
    echo "==> HA test: three nodes on PostgreSQL behind HAProxy; node kills, a PostgreSQL outage"
    scripts/ha-test.sh 1000 300
    echo "==> browser test: the dashboard in headless Chromium (Playwright)"
    scripts/browser-test.sh
    echo "==> fuzzing: each parser for ${KEYGATE_FUZZ_SECONDS:-10} s"
    scripts/fuzz.sh "${KEYGATE_FUZZ_SECONDS:-10}"
fi
