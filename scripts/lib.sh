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

# free_port — a free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_sandbox BIN DIR [FLAG...] — runs `BIN/keygate sandbox` with its data in DIR on free ports (sets
# SANDBOX_PORT and MQTT_PORT), adds its PID to the caller's PIDS and waits for DIR/connection.json.
start_sandbox() {
    local bin=$1 dir=$2
    shift 2
    SANDBOX_PORT=$(free_port)
    MQTT_PORT=$(free_port)
    "$bin/keygate" sandbox --data-dir "$dir" --https-port "$SANDBOX_PORT" --mqtt-port "$MQTT_PORT" \
        --log-level error "$@" > "$dir.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do [ -f "$dir/connection.json" ] && return 0; sleep 0.1; done
    echo "error: keygate sandbox did not start:" >&2
    cat "$dir.log" >&2
    exit 1
}

# sandbox_json DIR EXPRESSION — a value of DIR/connection.json, such as "['dps']['idScope']".
sandbox_json() { python3 -c "import json; print(json.load(open('$1/connection.json'))$2)"; }
