#!/usr/bin/env bash
# The main job on a fresh machine: installs the build prerequisites, builds Keygate and runs
# `keygate demo` (a local Azure sandbox, a Keygate server and simulated devices going through all
# nine steps). Arguments go to `keygate demo` (try --devices 200 --fault-rate 0.3, or --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-deps.sh
echo "==> building keygate (the first build compiles the dependencies and takes several minutes)"
source scripts/lib.sh
build debug keygate
exec "$(swift build --show-bin-path)/keygate" demo "$@"
