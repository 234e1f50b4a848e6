# Shared by Keygate's scripts: `source scripts/lib.sh`.

# build CONFIG PRODUCT... — builds each product; on failure prints the compiler's output and exits,
# so a script never runs an old binary or fails later with a confusing message. Prints a one-line
# summary on success.
build() {
    local config=$1
    shift
    local log
    log="$(mktemp /tmp/keygate-build.XXXXXX)"
    for product in "$@"; do
        if ! swift build -c "$config" --product "$product" >"$log" 2>&1; then
            echo "error: building $product ($config) failed:" >&2
            grep -E "error:|warning: " "$log" >&2 || tail -n 40 "$log" >&2
            rm -f "$log"
            exit 1
        fi
        grep -E "^Build (complete|of product)" "$log" | tail -n 1 || true
    done
    rm -f "$log"
}

# bin_path CONFIG — where `swift build -c CONFIG` puts its binaries.
bin_path() { swift build -c "$1" --show-bin-path; }

# wait_for_serving LOG [SECONDS] — waits until `keygate serve` writing to LOG says it listens;
# otherwise prints the log and exits.
wait_for_serving() {
    local log=$1 limit=${2:-20}
    for _ in $(seq 1 $((limit * 10))); do
        if grep -q "keygate serving" "$log" 2>/dev/null; then
            grep "keygate serving" "$log"
            return 0
        fi
        sleep 0.1
    done
    echo "error: keygate serve did not start within ${limit} s:" >&2
    cat "$log" >&2
    exit 1
}
