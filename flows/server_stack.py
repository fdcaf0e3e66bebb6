"""The stack of `make server` in a home of its own, for `make bench`'s section "load" and the server tests.

`server_stack` starts scripts/server.sh (server, pools, limits, deployments, workers; on SQLite
or on a PostgreSQL cluster of its own) with a fresh PREFECT_HOME on free loopback ports
(`linreg.ports.on_free_port`), and on exit runs `server.sh stop`, then SIGKILLs whatever of the
recorded process families still runs. The stack's PID folder is named by one variable,
`LINREG_SERVER_RUN_DIR` (`SERVER_RUN_DIR_ENV`): server.sh records its processes there, and
`linreg run` looks there for a running server.

Also here: runs of the stack's deployment created, followed and checked (`trigger_runs`,
`wait_final`, `check_runs`), the process-family walk over /proc (`process_family`; also
tests/process_watch.py's), the code version server.sh stamps on the deployments
(`code_version`); the basic-auth header and the PID folder's variable come from flows.api.choose.
Commands run with their output in files and in a session of their own, whose whole group is
killed afterwards: a grandchild holding a pipe open would hang the caller.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple
from uuid import UUID

# The PID folder's variable and the basic-auth header are the ones `linreg run` uses to find a server.
from flows.api.choose import SERVER_RUN_DIR_ENV, basic_auth_headers  # noqa: F401 (basic_auth_headers: for the tests)
from linreg import provenance
from linreg.ports import PortTaken, free_port, on_free_port, port_open, says_port_taken

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "server.sh"
DEPLOYMENT = "linreg/linreg-local"
SOLVERS = ["closed_form", "numpy_gd", "torch_autograd"]
START_TIMEOUT = 300  # server.sh start: (PostgreSQL,) server, pools, limits, deploy, automation, workers
STOP_TIMEOUT = 150  # server.sh stop: up to 30 s per process, then pg_ctl stop


def code_version() -> str:
    """The version scripts/server.sh stamps on the deployments: the commit, plus -dirty;
    "unversioned" outside a git checkout (linreg.provenance's None)."""
    return provenance.code_version() or "unversioned"


def scratch_dir(prefix: str) -> Path:
    """A fresh temporary folder that PostgreSQL's own user can reach when we run as root."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)  # searchable, not listable: postgres.sh runs the cluster as `postgres` under root
    return path


def remove_scratch(home: Path) -> None:
    if not os.environ.get("LINREG_KEEP_SCRATCH"):  # set it to look at the logs afterwards
        shutil.rmtree(home, ignore_errors=True)


def stack_env(home: Path, port: int, db: str, **extra: str | None) -> dict:
    """This process's environment without PREFECT_* settings, plus the stack's own.

    Args:
        extra: more variables; None removes one, so that server.sh's own default applies.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PORT": str(port),
        "LINREG_HOST": "127.0.0.1",
        "LINREG_DB": db,
        "LINREG_PG_PORT": str(free_port()),
        "PREFECT_HOME": str(home / "prefect-home"),
        SERVER_RUN_DIR_ENV: str(home / "run"),
        "LINREG_START_TIMEOUT": "180",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",  # the daily schedule stays out
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "linreg",
        "MPLBACKEND": "Agg",
    })
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass
class Stack:
    """A stack started by scripts/server.sh in its own home."""

    home: Path
    env: dict
    db: str
    version: str = field(default_factory=code_version)  # what server.sh stamps on the deployments

    @property
    def port(self) -> int:
        return int(self.env["PORT"])

    @property
    def api_url(self) -> str:
        return self.env["PREFECT_API_URL"]

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def run_dir(self) -> Path:
        return Path(self.env[SERVER_RUN_DIR_ENV])

    def script(self, command: str, timeout: float) -> subprocess.CompletedProcess:
        """`scripts/server.sh <command>` with this stack's environment; output through a file.

        Raises:
            RuntimeError: it exited non-zero or hung (its group is killed), with its output.
        """
        log = self.script_log(command)
        with open(log, "a") as out:
            out.write(f"--- {datetime.now(timezone.utc).isoformat()} server.sh {command}\n")
            out.flush()
            process = subprocess.Popen([str(SCRIPT), command], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                kill_group(process.pid)
                process.wait()
        text = log.read_text(errors="replace")
        if code != 0:
            raise RuntimeError(f"server.sh {command} {'hung' if code is None else f'exited {code}'}:\n{text[-3000:]}")
        return subprocess.CompletedProcess([command], code, text, "")

    def script_log(self, command: str) -> Path:
        """Where `script(command)` writes, every call appended."""
        return self.home / f"server.sh-{command}.log"

    def recorded_pids(self) -> dict[str, int]:
        """{"server": pid, "worker": pid, "worker-2": pid, ...}, as server.sh recorded them."""
        return {p.stem: int(p.read_text()) for p in self.run_dir.glob("*.pid") if p.read_text().strip().isdigit()}

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.run_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return f"--- last {lines} lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])

    def log_paths(self) -> list[Path]:
        """Every log of the stack: server, workers (and PostgreSQL's)."""
        return [*sorted(self.run_dir.glob("*.log")), *sorted(self.home.glob("prefect-home/postgres/*.log"))]

    def log_sizes(self) -> dict[Path, int]:
        """Each log's size now: `logs(since=...)` then reads only what was written after."""
        return {path: path.stat().st_size for path in self.log_paths()}

    def logs(self, since: dict[Path, int] | None = None) -> str:
        """The text of every log; with `since` (from `log_sizes`), only what came after it.

        A stack shared by several tests counts the errors of each test's own stretch.
        A log started again (server.sh empties a process's log when it starts it) is read whole.
        """
        parts = []
        for path in self.log_paths():
            with open(path, "rb") as log:
                offset = (since or {}).get(path, 0)
                if offset > log.seek(0, os.SEEK_END):
                    offset = 0
                log.seek(offset)
                parts.append(log.read().decode(errors="replace"))
        return "\n".join(parts)

    def client(self):
        """A synchronous Prefect client of this stack's API, with its credentials if it has any."""
        from prefect.client.orchestration import SyncPrefectClient  # prefect only for callers that talk to the API

        return SyncPrefectClient(self.api_url, auth_string=self.env.get("PREFECT_API_AUTH_STRING"))

    def postmaster_pid(self) -> int | None:
        pid_file = self.home / "prefect-home" / "postgres" / "data" / "postmaster.pid"
        try:
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


# --- processes, read from /proc (no `ps` behind a pipe)


class ProcessRow(NamedTuple):
    pid: int
    ppid: int
    pgid: int
    state: str  # "R", "S", ..., "Z" for a zombie


def process_table() -> list[ProcessRow]:
    """Every process now, from /proc/*/stat."""
    table = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        table.append(ProcessRow(int(entry.name), int(fields[1]), int(fields[2]), fields[0]))
    return table


def process_family(pids, groups: bool = True, table: list[ProcessRow] | None = None) -> set[int]:
    """`pids` and every process below them, and with `groups` every process in their process
    groups too (an orphan re-parented to init keeps its group; a flow-run process the worker
    starts has a group of its own, hence the tree as well).

    Args:
        table: a `process_table()` already read; by default a fresh one.
    """
    table = process_table() if table is None else table
    family, roots = set(pids), set(pids) if groups else set()
    grew = True
    while grew:
        grew = False
        for pid, ppid, pgid, _ in table:
            if pid not in family and (ppid in family or pgid in roots):
                family.add(pid)
                grew = True
    return family


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --- start and stop


@contextmanager
def server_stack(db: str = "sqlite", prefix: str = "linreg-stack-", new_home: Callable[[], Path] | None = None,
                 start_timeout: float = START_TIMEOUT, stop_timeout: float = STOP_TIMEOUT, check_port: bool = False,
                 **extra: str | None):
    """Start the stack with scripts/server.sh on free ports; on exit stop it and kill anything it left.

    Args:
        new_home: makes an empty folder for each start (kept afterwards); by default a scratch
            folder named `prefix...`, removed afterwards unless LINREG_KEEP_SCRATCH is set.
        check_port: on exit, the API's port must answer no more.
        extra: the stack's environment beyond `stack_env`'s (None removes a variable).

    Yields:
        Stack. Leftovers after `server.sh stop` are killed and then raised as an error.
    """
    def start(port: int) -> Stack:
        home = new_home() if new_home else scratch_dir(prefix)
        try:
            return started_stack(db, port, home, extra, start_timeout, stop_timeout)
        except BaseException:
            if not new_home:
                remove_scratch(home)
            raise

    stack = on_free_port(start)
    try:
        yield stack
    finally:
        try:
            stop_stack(stack, stop_timeout, check_port)
        finally:
            if not new_home:
                remove_scratch(stack.home)


def started_stack(db: str, port: int, home: Path, extra: dict, start_timeout: float = START_TIMEOUT,
                  stop_timeout: float = STOP_TIMEOUT) -> Stack:
    """`server.sh start` in `home` on `port`; PortTaken (all stopped) when a port was taken."""
    stack = Stack(home, stack_env(home, port, db, **extra), db)
    try:
        stack.script("start", start_timeout)
    except BaseException as exc:
        logs = f"{exc}\n{stack.logs()}"
        try:
            stop_stack(stack, stop_timeout)
        except RuntimeError:
            pass
        if isinstance(exc, RuntimeError) and says_port_taken(logs):
            raise PortTaken(f"a port of the stack was taken (API {port}, PostgreSQL {stack.env['LINREG_PG_PORT']})") from exc
        raise
    return stack


def stop_stack(stack: Stack, timeout: float = STOP_TIMEOUT, check_port: bool = False) -> None:
    """`server.sh stop`, then SIGKILL whatever of the recorded families (and PostgreSQL) still runs.

    Raises:
        RuntimeError: server.sh stop failed, processes were left (now killed), or with
            `check_port` the API's port still answers.
    """
    postmaster = stack.postmaster_pid()
    family = process_family(list(stack.recorded_pids().values())) if stack.run_dir.exists() else set()
    problems = []
    try:
        stack.script("stop", timeout)
    except RuntimeError as exc:
        problems.append(str(exc))
    if postmaster and alive(postmaster):
        family |= process_family([postmaster])
    deadline = time.monotonic() + 10
    while any(alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = sorted(p for p in family if alive(p))
    for pid in left:  # last resort, so a failed stop leaks nothing into the next test
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        problems.append(f"processes left running after server.sh stop, killed: {left}")
    if check_port and port_open(stack.port):
        problems.append(f"port {stack.port} still answers after stop")
    if problems:
        raise RuntimeError("\n".join(problems))


# --- runs of the stack's deployment


def run_parameters(output_dir: Path, n: int = 300, solvers: list[str] = SOLVERS, epochs: int | None = None) -> dict:
    run = {"data": {"n": n}, "solvers": solvers, "device": "cpu", "output_dir": str(output_dir)}
    if epochs is not None:
        run["defaults"] = {"epochs": epochs}
    return {"run": run}


def trigger_runs(stack: Stack, count: int, parameters: dict, scheduled_time: datetime | None = None,
                 tolerate_refusals: bool = False) -> list[UUID]:
    """Create `count` runs of linreg-local from `count` threads at once; return their ids.

    With `tolerate_refusals`, a creation the server refuses (after the client's own
    retries) is left out of the list instead of raising: the caller counts the missing.
    """
    from prefect.exceptions import PrefectHTTPStatusError  # prefect only for callers that talk to the API
    from prefect.states import Scheduled

    def one(_: int) -> UUID | None:
        with stack.client() as client:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
            state = Scheduled(scheduled_time=scheduled_time) if scheduled_time else None
            try:
                return client.create_flow_run_from_deployment(deployment.id, parameters=parameters, state=state).id
            except PrefectHTTPStatusError:
                if not tolerate_refusals:
                    raise
                return None

    with ThreadPoolExecutor(max_workers=count) as pool:
        return [run_id for run_id in pool.map(one, range(count)) if run_id is not None]


def wait_final(stack: Stack, ids: list[UUID], timeout: float, poll: float = 2.0) -> dict:
    """Poll until every run is in a final state, or `timeout` passes; return {id: FlowRun}."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId  # as in trigger_runs

    deadline = time.monotonic() + timeout
    with stack.client() as client:
        while True:
            runs = {r.id: r for r in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))}
            if len(runs) == len(ids) and all(r.state and r.state.is_final() for r in runs.values()):
                return runs
            if time.monotonic() > deadline:
                return runs
            time.sleep(poll)


@dataclass
class RunCheck:
    """What one run left behind, and what went wrong with it (empty: nothing)."""

    run_id: UUID
    state: str
    run_folder: Path | None = None
    artifact_keys: set = field(default_factory=set)
    scheduled_to_running_s: float | None = None
    problems: list[str] = field(default_factory=list)


def check_runs(stack: Stack, runs: dict, output_dir: Path) -> list[RunCheck]:
    """For each run: Completed, its own artifacts, its own run folder with a summary, its wait."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId  # as in trigger_runs

    # The catalog brings pyarrow (over a second): tests/process_watch.py imports this module
    # for its process walk before it starts the command it watches.
    from linreg.storage.catalog import SUMMARY, Catalog

    checks = []
    with stack.client() as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=list(runs))))
        for run_id, run in runs.items():
            check = RunCheck(run_id, run.state.name if run.state else "none")
            if not (run.state and run.state.is_completed()):
                check.problems.append(f"ended {check.state}: {run.state.message if run.state else ''}")
            check.artifact_keys = {a.key for a in artifacts if a.flow_run_id == run_id and a.key}
            if not {"linreg-summary", "linreg-report"} <= check.artifact_keys:
                check.problems.append(f"artifacts {sorted(check.artifact_keys)}")
            folders = Catalog(output_dir).runs_of(run_id)
            if len(folders) != 1 or not (folders[0] / SUMMARY).is_file():
                check.problems.append(f"run folders {folders}")
            else:
                check.run_folder = folders[0]
            states = client.read_flow_run_states(run_id)
            running = [s.timestamp for s in states if s.type.value == "RUNNING"]
            if running and run.expected_start_time:
                check.scheduled_to_running_s = (min(running) - run.expected_start_time).total_seconds()
            checks.append(check)
    return checks
