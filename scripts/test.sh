#!/usr/bin/env bash
# Runs every Keygate test. Installs the outside tools the tests check against (openssl, curl,
# sqlite3, pkilint), builds, then runs `swift test`. Tests that need a tool fail rather than
# skip here (KEYGATE_REQUIRE_TOOLS=1).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-tools.sh
echo "==> swift build"
swift build --build-tests
# The agent-isolation test reads the package graph; SwiftPM cannot describe it during `swift test`.
swift package describe --type json > .build/package-description.json
echo "==> swift test"
KEYGATE_REQUIRE_TOOLS=1 swift test --skip-build "$@"
# With a filter (`scripts/test.sh --filter X`) only those tests run; otherwise the crash test too.
if [ $# -eq 0 ]; then
    echo "==> crash test: SIGKILL the server while 500 devices onboard"
    scripts/crash-test.sh 500 5
fi
