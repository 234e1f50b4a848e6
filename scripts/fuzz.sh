#!/usr/bin/env bash
# Fuzzes Keygate's parsers with libFuzzer (the harnesses are the package in Fuzz/).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Builds Fuzz/ with the fuzzer and address sanitizers, then runs each target (default: all) for SECONDS
# (default 60) on a scratch copy of its seed corpus in Fuzz/Corpus/<TARGET> (the repository's corpus
# never grows), with Fuzz/Dictionaries/<TARGET>.dict when there is one. Crashes, timeouts and
# out-of-memory inputs go to .build/fuzz-artifacts/<TARGET>/; the script prints one line per target
# and exits non-zero when any target found one.
# SWIFT_BUILD_LOCK=FILE serializes the build step with other builds (flock FILE); the fuzzing runs outside it.
# Targets: FuzzCSR FuzzOCSPRequest FuzzMQTT FuzzDeviceAPI FuzzPEM FuzzPKCS8.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(FuzzCSR FuzzOCSPRequest FuzzMQTT FuzzDeviceAPI FuzzPEM FuzzPKCS8)
seconds=60
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
    if [ ! -d "Fuzz/Corpus/$target" ] || [ ! -d "Fuzz/Sources/$target" ]; then
        echo "error: unknown fuzz target $target (known: ${all_targets[*]})" >&2
        exit 2
    fi
done

swift_build() {
    if [ -n "${SWIFT_BUILD_LOCK:-}" ]; then
        flock "$SWIFT_BUILD_LOCK" swift build "$@"
    else
        swift build "$@"
    fi
}

# SwiftPM passes `--sanitize fuzzer --sanitize address` to swiftc as two -sanitize= options in no fixed
# order and swiftc keeps only the last (Swift 6.3), so Swift code would get coverage or ASan, never both;
# the combined option, passed last, gives both (clang, for the C dependencies, takes both options).
build_flags=(--package-path Fuzz -c debug --sanitize fuzzer --sanitize address)
build_flags+=(-Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
log="$(mktemp /tmp/keygate-fuzz-build.XXXXXX)"
echo "==> swift build ${build_flags[*]}"
started=$SECONDS
if ! swift_build "${build_flags[@]}" >"$log" 2>&1; then
    echo "error: building the fuzzers failed:" >&2
    grep -E "error:" "$log" >&2 || tail -n 40 "$log" >&2
    rm -f "$log"
    exit 1
fi
echo "built in $((SECONDS - started)) s"
rm -f "$log"
bin="$(swift_build "${build_flags[@]}" --show-bin-path)"

export SWIFT_BACKTRACE=enable=no # let libFuzzer and ASan report crashes, not the Swift runtime
work="$(mktemp -d /tmp/keygate-fuzz.XXXXXX)"
trap 'rm -rf "$work"' EXIT
found=0
echo "==> fuzzing ${targets[*]} for $seconds s each"
for target in "${targets[@]}"; do
    corpus="$work/corpus-$target"
    artifacts=".build/fuzz-artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    cp -R "Fuzz/Corpus/$target/." "$corpus/"
    seeds=$(find "$corpus" -type f | wc -l)
    output="$work/$target.log"
    options=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1)
    options+=(-artifact_prefix="$artifacts/")
    [ ! -f "Fuzz/Dictionaries/$target.dict" ] || options+=(-dict="Fuzz/Dictionaries/$target.dict")
    status=0
    "$bin/$target" "${options[@]}" "$corpus" >"$output" 2>&1 || status=$?

    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$output" | grep -o '[0-9]*$' | tail -n 1 || true)
    # After a crash libFuzzer prints no final stats: the last progress line's count then.
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$output" | tail -n 1 | tr -d '#' || true)
    cov=$(grep -o ' cov: [0-9]*' "$output" | tail -n 1 | grep -o '[0-9]*' || true)
    ft=$(grep -o ' ft: [0-9]*' "$output" | tail -n 1 | grep -o '[0-9]*' || true)
    units=$(find "$corpus" -type f | wc -l)
    # Only what this run wrote: older artifacts stay in the folder for reference.
    written=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$output" | grep -E '/(crash|timeout|oom|leak)-' || true)
    if [ "$status" -eq 0 ] && [ -z "$written" ]; then
        verdict=ok
    else
        verdict=FOUND
        found=1
    fi
    printf '%-16s %-5s %9s execs  cov %-5s ft %-6s corpus %s -> %s\n' \
        "$target" "$verdict" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$seeds" "$units"
    if [ "$verdict" = FOUND ]; then
        # The report: sanitizer or Swift runtime error, the invariant message, the stack's top frames.
        grep -E -A 12 '^==[0-9]+==ERROR|Fatal error|fuzz invariant|ERROR: libFuzzer' "$output" | head -n 40 | sed 's/^/    /'
        if [ -n "$written" ]; then
            for file in $written; do
                echo "    input: $file ($(wc -c <"$file") bytes)"
                od -An -tx1 -v "$file" | head -n 8 | sed 's/^/     /'
            done
        else
            echo "    $target exited with status $status and wrote no input; its output:"
            tail -n 20 "$output" | sed 's/^/    /'
        fi
    fi
done
if [ "$found" -ne 0 ]; then
    echo "fuzzing found problems; reproduce one with: $bin/<target> <input>" >&2
    exit 1
fi
