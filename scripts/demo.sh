#!/usr/bin/env bash
# The main job on a fresh machine: installs the build prerequisites, builds Keygate and runs
# `keygate demo` (a local Azure sandbox, a Keygate server and simulated devices going through all
# nine steps). Arguments go to `keygate demo` (try --devices 200 --fault-rate 0.3, or --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-deps.sh
echo "==> building keygate (the first build compiles the dependencies and takes several minutes)"
swift build --product keygate 2>&1 | grep -E "error|warning: |Build complete" || true
exec "$(swift build --show-bin-path)/keygate" demo "$@"
