#!/usr/bin/env bash
# A PostgreSQL cluster of the project's own, for the Prefect server of `make server DB=postgres`.
#
#   scripts/postgres.sh install  apt-get install postgresql when initdb is missing (sudo when not root)
#   scripts/postgres.sh start    idempotent: initialises the cluster once, then starts it if it is not running
#   scripts/postgres.sh stop     stops exactly this cluster (pg_ctl -D <its data folder>)
#   scripts/postgres.sh status   running or not (exit 3 when not)
#   scripts/postgres.sh url      the postgresql+asyncpg:// URL for PREFECT_API_DATABASE_CONNECTION_URL
#
# The cluster lives in $LINREG_PG_DIR (default $PREFECT_HOME/postgres): data/ (the cluster),
# password (generated once, mode 0600), port, postgres.log and socket/ (its Unix socket, mode 0700).
# It listens on 127.0.0.1 and that socket only, and every connection needs the password
# (scram-sha-256). Re-running `start` reuses the cluster: what the server recorded survives.
# PostgreSQL refuses to run as root: as root, the cluster belongs to, and runs as, the
# user $LINREG_PG_USER (default `postgres`, which Debian's package creates).
#
# Environment:
#   PREFECT_HOME, LINREG_PG_DIR  where the cluster lives (above)
#   LINREG_PG_PORT               TCP port on 127.0.0.1 (default 5433; the port of the first start is kept)
#   LINREG_PG_BIN                folder of initdb/pg_ctl (default the newest /usr/lib/postgresql/*/bin)
#   LINREG_PG_USER               the user to run as when started as root (default postgres)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_DIR=${LINREG_PG_DIR:-${PREFECT_HOME:-$ROOT/.prefect-server}/postgres}
DATA=$PG_DIR/data
SOCKET=$PG_DIR/socket
DB_NAME=prefect
DB_USER=prefect
START_TIMEOUT=${LINREG_START_TIMEOUT:-120}

say() { printf '%s\n' "$*"; }
die() { printf 'postgres.sh: %s\n' "$*" >&2; exit 1; }

pg_bin() {
    if [[ -n ${LINREG_PG_BIN:-} ]]; then echo "$LINREG_PG_BIN"; return; fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n $dir && -x $dir/initdb ]] && echo "$dir"
}

install() {
    [[ -n $(pg_bin) ]] && return 0
    command -v apt-get >/dev/null || die "no PostgreSQL server (initdb) and no apt-get: install PostgreSQL and set LINREG_PG_BIN to its bin folder"
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y postgresql
    [[ -n $(pg_bin) ]] || die "apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb"
}

# Run a PostgreSQL program as the cluster's owner: ourselves, or LINREG_PG_USER when we are root.
as_owner() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u "${LINREG_PG_USER:-postgres}" -- "$@"
    else
        "$@"
    fi
}

running() { [[ -f $DATA/postmaster.pid ]] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

port() { cat "$PG_DIR/port"; }

# The generated password and the cluster, once.
init() {
    local owner=${LINREG_PG_USER:-postgres}
    mkdir -p "$PG_DIR"
    if [[ $(id -u) == 0 ]]; then
        id -u "$owner" >/dev/null 2>&1 || die "running as root, and there is no user '$owner' to run PostgreSQL as (set LINREG_PG_USER)"
        chown "$owner" "$PG_DIR"
        runuser -u "$owner" -- test -x "$PG_DIR" \
            || die "user '$owner' cannot reach $PG_DIR: every folder above it must be searchable (chmod o+x)"
    fi
    chmod 0700 "$PG_DIR"
    if [[ ! -s $PG_DIR/password ]]; then
        (umask 077 && "${LINREG_VENV:-$ROOT/.venv}/bin/python" -c 'import secrets; print(secrets.token_hex(24))' >"$PG_DIR/password.tmp")
        mv "$PG_DIR/password.tmp" "$PG_DIR/password"
    fi
    chmod 0600 "$PG_DIR/password"
    [[ -f $PG_DIR/port ]] || echo "${LINREG_PG_PORT:-5433}" >"$PG_DIR/port"
    [[ -f $DATA/PG_VERSION ]] && return 0
    say "postgres: initialising a cluster in $DATA"
    # initdb reads the password as the owner: a copy of the owner's, removed at once.
    local pwfile=$PG_DIR/initdb-password
    (umask 077 && cp "$PG_DIR/password" "$pwfile")
    [[ $(id -u) == 0 ]] && chown "$owner" "$pwfile"
    as_owner "$BIN/initdb" -D "$DATA" -U "$DB_USER" --pwfile="$pwfile" --auth=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
        || { rm -f "$pwfile"; cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
    # Loopback and its own socket only; the rest stays the packaged default.
    cat >>"$DATA/postgresql.conf" <<EOF

# linreg (scripts/postgres.sh): loopback only, socket in $SOCKET
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCKET'
unix_socket_permissions = 0700
max_connections = 100
EOF
}

start() {
    BIN=$(pg_bin) || true
    [[ -n $BIN ]] || install
    BIN=$(pg_bin)
    init
    if running; then
        say "postgres: already running on 127.0.0.1:$(port)"
    else
        mkdir -p "$SOCKET"
        [[ $(id -u) == 0 ]] && chown "${LINREG_PG_USER:-postgres}" "$SOCKET" "$PG_DIR"
        chmod 0700 "$SOCKET"
        touch "$PG_DIR/postgres.log"
        [[ $(id -u) == 0 ]] && chown "${LINREG_PG_USER:-postgres}" "$PG_DIR/postgres.log"
        as_owner "$BIN/pg_ctl" -D "$DATA" -l "$PG_DIR/postgres.log" -o "-p $(port)" -w -t "$START_TIMEOUT" start >/dev/null \
            || { tail -n 20 "$PG_DIR/postgres.log" >&2; die "pg_ctl start failed"; }
        say "postgres: started on 127.0.0.1:$(port), cluster $DATA, log $PG_DIR/postgres.log"
    fi
    ensure_database
}

# psql as the cluster's user. The password goes through the environment, which only its
# owner can read (/proc/PID/environ), never through argv, which any local user can.
psql_admin() {
    PGPASSWORD=$(<"$PG_DIR/password") "$BIN/psql" -h 127.0.0.1 -p "$(port)" -U "$DB_USER" -d postgres -qtAX "$@"
}

ensure_database() {
    if [[ -z $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ]]; then
        psql_admin -c "CREATE DATABASE $DB_NAME" >/dev/null
        say "postgres: database $DB_NAME created"
    fi
}

stop() {
    BIN=$(pg_bin) || true
    if [[ -z $BIN || ! -f $DATA/postmaster.pid ]]; then
        return 0
    fi
    if running; then
        say "postgres: stopping the cluster in $DATA"
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
    fi
}

status() {
    BIN=$(pg_bin) || true
    if [[ -n $BIN ]] && running; then say "postgres: running on 127.0.0.1:$(port)"; else say "postgres: not running"; return 3; fi
}

url() {
    [[ -s $PG_DIR/password ]] || die "no cluster in $PG_DIR yet: run '$0 start'"
    echo "postgresql+asyncpg://$DB_USER:$(<"$PG_DIR/password")@127.0.0.1:$(port)/$DB_NAME"
}

case ${1:-} in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    url) url ;;
    *) die "usage: $0 install|start|stop|status|url" ;;
esac
