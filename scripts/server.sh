#!/usr/bin/env bash
# A local Prefect server for the linreg deployments: server (on SQLite, or on a
# PostgreSQL cluster of its own), work pools, the `cuda` concurrency limit,
# `prefect deploy --all`, the zombie-run automation, and workers for linreg-cpu.
#
#   scripts/server.sh start    idempotent: starts only what is not running yet
#   scripts/server.sh stop     stops exactly the processes `start` recorded, then the PostgreSQL cluster
#   scripts/server.sh status   what is running, from the recorded PIDs
#
# `make server` / `make server-stop` call this; so do the server tests and `make bench`
# (flows/server_stack.py), with their own values for the variables below.
#
# Environment:
#   PORT                  API and UI port (default 4200)
#   LINREG_HOST           address the server binds to (default 127.0.0.1, loopback only)
#   PREFECT_HOME          server state: the SQLite database and the UI build
#                         (default <repo>/.prefect-server)
#   LINREG_SERVER_RUN_DIR PID files and logs (default $PREFECT_HOME/run); `linreg run` looks here
#                         for a running server
#   LINREG_START_TIMEOUT  seconds to wait for the API, and again for the workers (default 120)
#   LINREG_VENV           the virtual environment to run from (default $ROOT/.venv; make sets it per Python)
#   LINREG_DB             sqlite (default: $PREFECT_HOME/prefect.db) or postgres (scripts/postgres.sh:
#                         a cluster in $PREFECT_HOME/postgres, on 127.0.0.1:$LINREG_PG_PORT, default 5433)
#   LINREG_WORKERS        workers for linreg-cpu (default 2)
#   LINREG_POOL_LIMIT     flow runs at once on linreg-cpu, all deployments together (default 2;
#                         0 = no pool limit). Runs beyond it wait in the queue.
#   PREFECT_FLOWS_HEARTBEAT_FREQUENCY  seconds between a flow run's heartbeats (default 30 here)
#   LINREG_ZOMBIE_SECONDS a Running flow run with no heartbeat for this long is marked Crashed
#                         (default 90, three heartbeats)
#   PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_SERVER_API_AUTH_STRING, ... pass through.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${LINREG_VENV:-$ROOT/.venv}/bin  # make exports the venv of its Python (.venv, .venv-3.12, ...)
PORT=${PORT:-4200}
HOST=${LINREG_HOST:-127.0.0.1}
export PREFECT_HOME=${PREFECT_HOME:-$ROOT/.prefect-server}
RUN_DIR=${LINREG_SERVER_RUN_DIR:-$PREFECT_HOME/run}
START_TIMEOUT=${LINREG_START_TIMEOUT:-120}
STOP_TIMEOUT=30
POOLS=(linreg-cpu linreg-gpu)
WORKER_POOL=linreg-cpu
DB=${LINREG_DB:-sqlite}
WORKERS=${LINREG_WORKERS:-2}
POOL_LIMIT=${LINREG_POOL_LIMIT:-2}
ZOMBIE_SECONDS=${LINREG_ZOMBIE_SECONDS:-90}
[[ $DB == sqlite || $DB == postgres ]] || { echo "server.sh: LINREG_DB (DB): must be sqlite or postgres, got '$DB'" >&2; exit 2; }
[[ $WORKERS =~ ^[1-9][0-9]?$ ]] || { echo "server.sh: LINREG_WORKERS (WORKERS): must be an integer in [1, 99], got '$WORKERS'" >&2; exit 2; }
[[ $POOL_LIMIT =~ ^[0-9]{1,3}$ ]] || { echo "server.sh: LINREG_POOL_LIMIT (POOL_LIMIT): must be an integer in [0, 999], got '$POOL_LIMIT'" >&2; exit 2; }
[[ $ZOMBIE_SECONDS =~ ^[0-9]+$ ]] && ((ZOMBIE_SECONDS >= 60)) || { echo "server.sh: LINREG_ZOMBIE_SECONDS: must be an integer >= 60, got '$ZOMBIE_SECONDS'" >&2; exit 2; }
# Flow runs started by the workers inherit it: a heartbeat every 30 s (Prefect's minimum),
# so that the automation below can tell a dead run from a long one.
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY=${PREFECT_FLOWS_HEARTBEAT_FREQUENCY:-30}
PG=$ROOT/scripts/postgres.sh

case $HOST in 0.0.0.0 | :: | '[::]') LOCAL_HOST=127.0.0.1 ;; *) LOCAL_HOST=$HOST ;; esac
UI_URL=http://$LOCAL_HOST:$PORT
export PREFECT_API_URL=$UI_URL/api
# The UI's browser code calls this address; on any port but 4200 it must be set.
export PREFECT_UI_API_URL=${PREFECT_UI_API_URL:-$PREFECT_API_URL}
export PREFECT_SERVER_ANALYTICS_ENABLED=${PREFECT_SERVER_ANALYTICS_ENABLED:-false}
if [[ -n ${PREFECT_SERVER_API_AUTH_STRING:-} ]]; then
    export PREFECT_API_AUTH_STRING=${PREFECT_API_AUTH_STRING:-$PREFECT_SERVER_API_AUTH_STRING}
fi

say() { printf '%s\n' "$*"; }
die() { printf 'server.sh: %s\n' "$*" >&2; exit 1; }

# --- processes: started in their own session, recorded, checked before any signal

# The command line a recorded process must still have, so a reused PID is never signalled.
signature() { case $1 in server) echo "$BIN/prefect server start" ;; worker*) echo "$BIN/prefect worker start" ;; esac; }

# The names of the recorded workers: worker, worker-2, worker-3, ...
worker_names() { local i; echo worker; for ((i = 2; i <= $1; i++)); do echo "worker-$i"; done; }
recorded_workers() { local f; for f in "$RUN_DIR"/worker.pid "$RUN_DIR"/worker-*.pid; do [[ -f $f ]] && basename "$f" .pid; done; return 0; }

# Print the recorded PID of $1 if that process is alive and is still ours.
recorded_pid() {
    local file=$RUN_DIR/$1.pid pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    ps -ww -o command= -p "$pid" 2>/dev/null | grep -qF "$(signature "$1")" || return 1
    echo "$pid"
}

# Start "$@" detached in a new session (so it outlives make and owns its process
# group), output to $RUN_DIR/$name.log, and record its PID.
launch() {
    local name=$1; shift
    local log=$RUN_DIR/$name.log
    : >"$log"
    (cd "$ROOT" && "$BIN/python" -c '
import subprocess, sys
with open(sys.argv[1], "ab") as log:
    proc = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
print(proc.pid)' "$log" "$@") >"$RUN_DIR/$name.pid"
}

# PIDs of $1 and of everything below it: its process tree, plus its process
# group (orphans re-parented to init keep the group). Flow-run processes get
# their own group from the worker, so the tree is needed as well. The one walk
# over /proc, flows.server_stack.process_family, which the tests and the bench use.
family() {
    "$BIN/python" -c 'import sys
from flows.server_stack import process_family
print(*sorted(process_family([int(sys.argv[1])])), sep="\n")' "$1"
}

# When $1 started: a PID that is reused later has another start time.
started_at() { ps -o lstart= -p "$1" 2>/dev/null || true; }

# Stop $1's recorded process and its family: SIGTERM to it, then, after
# STOP_TIMEOUT, SIGKILL to every member still running (same PID, same start time).
stop_one() {
    local name=$1 pid p waited=0
    local -A family_start=()
    if ! pid=$(recorded_pid "$name"); then
        [[ -f $RUN_DIR/$name.pid ]] && say "$name: not running (removing stale $RUN_DIR/$name.pid)"
        rm -f "$RUN_DIR/$name.pid"
        return 0
    fi
    for p in $(family "$pid"); do family_start[$p]=$(started_at "$p"); done
    say "$name: stopping PID $pid (${#family_start[@]} processes)"
    kill -TERM "$pid" 2>/dev/null || true
    while family_left && ((waited < STOP_TIMEOUT * 5)); do sleep 0.2; waited=$((waited + 1)); done
    if family_left; then
        say "$name: still running after ${STOP_TIMEOUT}s, sending SIGKILL"
        for p in $(family "$pid"); do [[ -v family_start[$p] ]] || family_start[$p]=$(started_at "$p"); done
        for p in "${!family_start[@]}"; do
            [[ -n ${family_start[$p]} && $(started_at "$p") == "${family_start[$p]}" ]] && { kill -KILL "$p" 2>/dev/null || true; }
        done
    fi
    rm -f "$RUN_DIR/$name.pid"
}

# Whether any member of stop_one's family_start still runs.
family_left() {
    local p
    for p in "${!family_start[@]}"; do
        [[ -n ${family_start[$p]} && $(started_at "$p") == "${family_start[$p]}" ]] && return 0
    done
    return 1
}

show_log() { { echo "--- last lines of $1:"; tail -n 30 "$1" || true; } >&2; }

# --- readiness, polled over HTTP with a deadline

# wait_for WHAT PID PYTHON-CONDITION: poll until the condition (a Python
# expression over get(path) -> parsed JSON) holds, PID dies, or time runs out.
wait_for() {
    local what=$1 pid=$2 condition=$3
    "$BIN/python" - "$PREFECT_API_URL" "$pid" "$START_TIMEOUT" <<PY || return 1
import json, os, sys, time, urllib.request
from datetime import datetime
from flows.api.choose import basic_auth_headers
api, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
headers = {"Content-Type": "application/json", **basic_auth_headers(os.environ.get("PREFECT_API_AUTH_STRING"))}
def get(path, body=None):
    req = urllib.request.Request(api + path, data=None if body is None else json.dumps(body).encode(),
                                 headers=headers)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)
deadline, last = time.monotonic() + timeout, "no answer yet"
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("server.sh: $what: process %d exited" % pid)
    try:
        if $condition:
            sys.exit(0)
        last = "not yet"
    except Exception as exc:
        last = repr(exc)
    time.sleep(0.5)
sys.exit("server.sh: $what: not ready after %gs (%s)" % (timeout, last))
PY
}

# --- the steps of `start`

# DB=postgres: start the cluster (scripts/postgres.sh) and point the server at it.
start_database() {
    if [[ $DB == postgres ]]; then
        "$PG" start
        PREFECT_API_DATABASE_CONNECTION_URL=$("$PG" url)
        export PREFECT_API_DATABASE_CONNECTION_URL
    fi
}

start_server() {
    local pid
    if pid=$(recorded_pid server); then
        local port db
        port=$(cat "$RUN_DIR/server.port" 2>/dev/null || echo "?")
        db=$(cat "$RUN_DIR/server.db" 2>/dev/null || echo "?")
        [[ $port == "$PORT" ]] || die "a server from $RUN_DIR is already running on port $port (PID $pid); stop it first"
        [[ $db == "$DB" ]] || die "the server from $RUN_DIR runs on $db, not $DB; stop it first"
        say "server: already running (PID $pid)"
    else
        echo "$DB" >"$RUN_DIR/server.db"
        launch server "$BIN/prefect" server start --host "$HOST" --port "$PORT"
        echo "$PORT" >"$RUN_DIR/server.port"
        pid=$(<"$RUN_DIR/server.pid")
        say "server: started (PID $pid) on $DB, state in $PREFECT_HOME, log $RUN_DIR/server.log"
    fi
    wait_for "API at $PREFECT_API_URL" "$pid" 'get("/health") is True' || { show_log "$RUN_DIR/server.log"; exit 1; }
    say "server: API healthy at $PREFECT_API_URL"
}

# Run a prefect CLI command quietly; show its output only if it fails.
quiet() {
    local out
    if ! out=$(cd "$ROOT" && "$BIN/prefect" --no-prompt "$@" 2>&1); then
        printf '%s\n' "$out" >&2
        return 1
    fi
}

create_pools() {
    local pool out
    for pool in "${POOLS[@]}"; do
        if out=$(cd "$ROOT" && "$BIN/prefect" --no-prompt work-pool create "$pool" --type process 2>&1); then
            say "work pool $pool: created (process)"
        elif grep -q "already exists" <<<"$out"; then
            say "work pool $pool: exists"
        else
            printf '%s\n' "$out" >&2
            die "could not create work pool $pool"
        fi
    done
}

# Runs beyond the pool's limit wait as Scheduled in the queue, whichever deployment they
# come from; the deployments' own limits (prefect.yaml) apply as well.
set_pool_limit() {
    if ((POOL_LIMIT > 0)); then
        quiet work-pool set-concurrency-limit "$WORKER_POOL" "$POOL_LIMIT" || die "could not set the concurrency limit of $WORKER_POOL"
        say "work pool $WORKER_POOL: $POOL_LIMIT flow runs at once"
    else
        quiet work-pool clear-concurrency-limit "$WORKER_POOL" || die "could not clear the concurrency limit of $WORKER_POOL"
        say "work pool $WORKER_POOL: no concurrency limit"
    fi
}

# Prefect marks a flow run Crashed when its process exits badly while its worker
# watches; when both die (SIGKILL, a lost machine), only the run's heartbeats can tell.
# This automation (Prefect's documented recipe) marks a Running run Crashed after
# ZOMBIE_SECONDS without a heartbeat or a final state. Replaced on every start.
create_zombie_automation() {
    (cd "$ROOT" && "$BIN/python" - "$ZOMBIE_SECONDS" <<'PY') || die "could not create the zombie-run automation"
import sys
from datetime import timedelta

from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

NAME = "linreg: crash zombie flow runs"
with get_client(sync_client=True) as client:
    for old in client.read_automations_by_name(NAME):
        client.delete_automation(old.id)
Automation(
    name=NAME,
    description="A Running flow run with no heartbeat and no final state for a while: its process died.",
    trigger=EventTrigger(
        after={"prefect.flow-run.heartbeat"},
        expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
        match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=int(sys.argv[1])),
    ),
    actions=[ChangeFlowRunState(state=StateType.CRASHED, name="Crashed",
                                message=f"No heartbeat for {sys.argv[1]} s: the flow run's process is gone")],
).create()
PY
    say "automation: a Running flow run without a heartbeat for ${ZOMBIE_SECONDS}s is marked Crashed"
}

start_workers() {
    local name pid since started=() count
    since=$(date +%s)
    for name in $(worker_names "$WORKERS"); do
        if pid=$(recorded_pid "$name"); then
            say "$name: already running (PID $pid)"
        else
            # Started in the repository root: the deployments' relative working_dir
            # and pull step resolve to the folder the worker runs in.
            launch "$name" "$BIN/prefect" worker start --pool "$WORKER_POOL" --type process
            pid=$(<"$RUN_DIR/$name.pid")
            started+=("$name")
            say "$name: started for $WORKER_POOL in $ROOT (PID $pid), log $RUN_DIR/$name.log"
        fi
    done
    ((${#started[@]})) || { say "workers: $WORKERS online"; return 0; }
    # A heartbeat since this start from each new worker: an earlier worker's ONLINE
    # status outlives it by a minute or two.
    count=${#started[@]}
    pid=$(<"$RUN_DIR/${started[0]}.pid")
    local online="sum(w['status'] == 'ONLINE' and datetime.fromisoformat(w['last_heartbeat_time']).timestamp() >= $since - 1 for w in get('/work_pools/$WORKER_POOL/workers/filter', {})) >= $count"
    wait_for "$count new worker(s) for $WORKER_POOL" "$pid" "$online" || { show_log "$RUN_DIR/${started[0]}.log"; exit 1; }
    say "workers: $count started, $WORKERS online"
}

# The deployments' version: the commit, plus -dirty when tracked files have uncommitted changes
# (linreg.provenance's, the one every run records; from git here, not from an inherited LINREG_VERSION).
code_version() {
    (cd "$ROOT" && env -u LINREG_VERSION "$BIN/python" -c \
        'from linreg.provenance import code_version; print(code_version() or "unversioned")')
}

start() {
    [[ -x $BIN/prefect ]] || die "$BIN/prefect not found; run 'make test' or 'make run' once to build .venv"
    mkdir -p "$RUN_DIR"
    start_database
    start_server
    create_pools
    set_pool_limit
    quiet concurrency-limit create cuda 1 || die "could not create the concurrency limit for tag cuda"
    say "concurrency limit: tag cuda, 1 task run at a time"
    LINREG_VERSION=$(code_version)
    export LINREG_VERSION
    quiet deploy --all || die "prefect deploy --all failed"
    say "deployed version $LINREG_VERSION: linreg/linreg-local, linreg/linreg-daily and linreg-history/linreg-history (pool linreg-cpu), linreg/linreg-gpu (pool linreg-gpu)"
    create_zombie_automation
    (cd "$ROOT" && "$BIN/python" scripts/alerts.py alerts.yaml) || die "could not create the alerts of alerts.yaml"
    start_workers
    local auth="" stop="make server-stop"
    [[ -n ${PREFECT_SERVER_API_AUTH_STRING:-} ]] && auth='PREFECT_API_AUTH_STRING="$PREFECT_SERVER_API_AUTH_STRING" '
    [[ $PREFECT_HOME == "$ROOT/.prefect-server" ]] || stop="PREFECT_HOME=$PREFECT_HOME $0 stop"
    cat <<EOF

Prefect UI:  $UI_URL
Run it now:  ${auth}PREFECT_API_URL=$PREFECT_API_URL $BIN/prefect deployment run 'linreg/linreg-local' --watch
Stop:        $stop
EOF
}

stop() {
    local name pid pids=()
    # Workers first, as they report to the server while shutting down; all at once, since each
    # may wait up to STOP_TIMEOUT for its own runs (one after another, two took 67-81 s).
    for name in $(recorded_workers); do stop_one "$name" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid"; done
    stop_one server
    rm -f "$RUN_DIR/server.port" "$RUN_DIR/server.db"
    "$PG" stop  # whatever DB says: a cluster in $PREFECT_HOME/postgres that runs is ours
}

status() {
    local name pid rc=0
    for name in server $(recorded_workers); do
        if pid=$(recorded_pid "$name"); then say "$name: running (PID $pid)"; else say "$name: not running"; rc=3; fi
    done
    [[ -d $PREFECT_HOME/postgres ]] && { "$PG" status || rc=3; }
    return $rc
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status" ;;
esac
