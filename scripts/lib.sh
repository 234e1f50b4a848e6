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
