#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks, on 127.0.0.1 only.
#   scripts/postgres.sh start DIR [PORT]   creates DIR (initdb, C locale) and starts the server; prints
#                                          the URL (postgres://keygate@127.0.0.1:PORT/keygate)
#   scripts/postgres.sh stop DIR           stops it (fast shutdown)
#   scripts/postgres.sh url DIR            prints the URL of a running server
# Installs Debian's postgresql package when no PostgreSQL binaries are found. PostgreSQL refuses to run
# as root, so under root the server runs as the `postgres` user (created by the package).
set -euo pipefail
command="${1:?usage: scripts/postgres.sh start|stop|url DIR [PORT]}"
dir="${2:?usage: scripts/postgres.sh start|stop|url DIR [PORT]}"

find_bin() {
    for candidate in /usr/lib/postgresql/*/bin/pg_ctl "$(command -v pg_ctl 2>/dev/null || true)"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then dirname "$candidate"; return 0; fi
    done
    return 1
}
if ! bindir="$(find_bin)"; then
    echo "==> installing PostgreSQL (Debian's postgresql package)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bindir="$(find_bin)"
fi

as_owner() {
    if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$command" in
start)
    port="${3:-}"
    if [ -z "$port" ]; then
        port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    fi
    mkdir -p "$dir"
    [ "$(id -u)" = "0" ] && chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" -D "$dir/data" -U keygate --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1
        {
            echo "listen_addresses = '127.0.0.1'"
            echo "port = $port"
            echo "unix_socket_directories = '$dir'"
            echo "max_connections = 200"
            echo "fsync = on"
            echo "synchronous_commit = on"
        } >>"$dir/data/postgresql.conf"
    fi
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    port="$(sed -n 's/^port = //p' "$dir/data/postgresql.conf" | tail -1)"
    as_owner psql -h 127.0.0.1 -p "$port" -U keygate -d postgres -qtAc \
        "SELECT 1 FROM pg_database WHERE datname = 'keygate'" | grep -q 1 ||
        as_owner createdb -h 127.0.0.1 -p "$port" -U keygate keygate
    echo "postgres://keygate@127.0.0.1:$port/keygate?sslmode=disable"
    ;;
stop)
    [ -f "$dir/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    ;;
url)
    port="$(sed -n 's/^port = //p' "$dir/data/postgresql.conf" | tail -1)"
    echo "postgres://keygate@127.0.0.1:$port/keygate?sslmode=disable"
    ;;
*)
    echo "unknown command $command" >&2
    exit 2
    ;;
esac
