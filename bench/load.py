"""Section "load": 20 deployment runs triggered at once, on SQLite and on PostgreSQL.

For each database, `scripts/server.sh start` brings up the whole stack (server, pools,
limits, deployments, two workers) in a temporary PREFECT_HOME on a free loopback port;
20 runs of `linreg-local` (n=300, three solvers) are then created from 20 threads at
once, as 20 users pressing "run" together would, and followed to their final states.

Reported per database: wall time from the first trigger to the last final state, runs
per minute, the largest gap from a run's scheduled time to its Running state, the count
of runs in each final state, and how many "database is locked", 503 and other
retryable errors the server's and workers' logs show. The stack is the one `make server`
starts, with its defaults (workers, pool limit); `LINREG_WORKERS` / `LINREG_POOL_LIMIT`
in the environment change both, to compare.

tests/test_server_faults.py uses the same helpers (`server_stack`, `burst_on`, `trigger_runs`,
`wait_final`, `check_runs`): its burst runs on a stack shared with the restart test.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from uuid import UUID

from bench.harness import BenchConfig, Row
from linreg.ports import PortTaken, free_port, on_free_port, says_port_taken
from linreg.storage.catalog import SUMMARY, Catalog

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "server.sh"
DEPLOYMENT = "linreg/linreg-local"
SOLVERS = ["closed_form", "numpy_gd", "torch_autograd"]
RESUBMIT_ROUNDS = 3  # burst(resubmit=True): each refused creation is tried again up to this often
START_TIMEOUT = 300  # server.sh start: (PostgreSQL,) server, pools, limits, deploy, automation, workers
STOP_TIMEOUT = 150  # server.sh stop: up to 30 s per process, then pg_ctl stop
# Lines of the server's and workers' logs that are errors a client retried, or should have.
RETRIED = {
    # One line per error: the last line of the server's traceback (the API answers it with a 503).
    "database is locked": re.compile(r"^sqlalchemy\.exc\.OperationalError: .*database is locked", re.M),
    "503": re.compile(r"\b503 Service Unavailable"),
    "other 5xx": re.compile(r"\b50[0248] (Internal Server Error|Bad Gateway|Gateway Timeout)"),
    "submission failed": re.compile(r"[Ff]ailed to submit flow run"),
}


def scratch_dir(prefix: str) -> Path:
    """A fresh temporary folder that PostgreSQL's own user can reach when we run as root."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)  # searchable, not listable: postgres.sh runs the cluster as `postgres` under root
    return path


def stack_env(home: Path, port: int, db: str, **extra: str) -> dict:
    """This process's environment without PREFECT_* settings, plus the stack's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PORT=str(port),
        LINREG_HOST="127.0.0.1",
        LINREG_DB=db,
        LINREG_PG_PORT=str(free_port()),
        PREFECT_HOME=str(home / "prefect-home"),
        LINREG_RUN_DIR=str(home / "run"),
        LINREG_START_TIMEOUT="180",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",  # the daily schedule stays out
        PREFECT_WORKER_QUERY_SECONDS="2",
        PREFECT_LOGGING_EXTRA_LOGGERS="linreg",
        MPLBACKEND="Agg",
    )
    for key, value in extra.items():  # None removes a variable: server.sh's own default applies
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass
class Stack:
    """A stack started by scripts/server.sh in its own temporary home."""

    home: Path
    env: dict
    db: str

    @property
    def api_url(self) -> str:
        return self.env["PREFECT_API_URL"]

    @property
    def run_dir(self) -> Path:
        return Path(self.env["LINREG_RUN_DIR"])

    def script(self, command: str, timeout: float) -> subprocess.CompletedProcess:
        """`scripts/server.sh <command>` with this stack's environment; output through a file."""
        log = self.home / f"server.sh-{command}.log"
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

    def recorded_pids(self) -> dict[str, int]:
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
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.api_url, auth_string=self.env.get("PREFECT_API_AUTH_STRING"))

    def postmaster_pid(self) -> int | None:
        pid_file = self.home / "prefect-home" / "postgres" / "data" / "postmaster.pid"
        try:
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def process_table() -> list[tuple[int, int, int]]:
    """(pid, ppid, pgid) of every process, read from /proc (no `ps` behind a pipe)."""
    table = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        table.append((int(entry.name), int(fields[1]), int(fields[2])))
    return table


def process_family(pids: list[int]) -> set[int]:
    """`pids` and every process below them or in their process groups."""
    table = process_table()
    family, roots = set(pids), set(pids)
    grew = True
    while grew:
        grew = False
        for pid, ppid, pgid in table:
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


@contextmanager
def server_stack(db: str, prefix: str = "linreg-stack-", **extra: str):
    """Start the stack with scripts/server.sh on free ports; on exit stop it and kill anything it left.

    Yields:
        Stack. Leftovers after `server.sh stop` are killed and then raised as an error.
    """
    stack = on_free_port(lambda port: started_stack(db, prefix, port, extra))
    try:
        yield stack
    finally:
        try:
            stop_stack(stack)
        finally:
            remove_scratch(stack.home)


def started_stack(db: str, prefix: str, port: int, extra: dict) -> Stack:
    """`server.sh start` in a fresh home on `port`; PortTaken (all stopped and removed) when a port was taken."""
    home = scratch_dir(prefix)
    stack = Stack(home, stack_env(home, port, db, **extra), db)
    try:
        stack.script("start", START_TIMEOUT)
    except BaseException as exc:
        logs = f"{exc}\n{stack.logs()}"
        try:
            stop_stack(stack)
        except RuntimeError:
            pass
        finally:
            remove_scratch(home)
        if isinstance(exc, RuntimeError) and says_port_taken(logs):
            raise PortTaken(f"a port of the stack was taken (API {port}, PostgreSQL {stack.env['LINREG_PG_PORT']})") from exc
        raise
    return stack


def remove_scratch(home: Path) -> None:
    if not os.environ.get("LINREG_KEEP_SCRATCH"):  # set it to look at the logs afterwards
        shutil.rmtree(home, ignore_errors=True)


def stop_stack(stack: Stack) -> None:
    """`server.sh stop`, then SIGKILL whatever of the recorded families (and PostgreSQL) still runs."""
    postmaster = stack.postmaster_pid()
    family = process_family(list(stack.recorded_pids().values())) if stack.run_dir.exists() else set()
    problems = []
    try:
        stack.script("stop", STOP_TIMEOUT)
    except RuntimeError as exc:
        problems.append(str(exc))
    if postmaster and alive(postmaster):
        family |= process_family([postmaster])
    deadline = time.monotonic() + 10
    while any(alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = sorted(p for p in family if alive(p))
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        problems.append(f"processes left running after server.sh stop, killed: {left}")
    if problems:
        raise RuntimeError("\n".join(problems))


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
    from prefect.exceptions import PrefectHTTPStatusError
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
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

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
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

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
            folders = list(Catalog(output_dir).runs.glob(f"*-{str(run_id)[:8]}"))
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


def count_retried(text: str) -> dict[str, int]:
    return {name: len(pattern.findall(text)) for name, pattern in RETRIED.items()}


def lift_deployment_limit(stack: Stack) -> None:
    """Remove the concurrency limit prefect.yaml gives linreg-local: the unprotected baseline."""
    from prefect.client.schemas.actions import DeploymentUpdate

    with stack.client() as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
        client.update_deployment(deployment.id, DeploymentUpdate(concurrency_limit=None))
        if client.read_deployment(deployment.id).global_concurrency_limit is not None:
            raise RuntimeError(f"could not lift the concurrency limit of {DEPLOYMENT}")


def burst(db: str, runs: int, n: int = 300, epochs: int | None = None, timeout: float = 900,
          single: bool = False, unprotected: bool = False, resubmit: bool = False, **extra: str) -> dict:
    """Start a stack on `db` (`extra`: its environment), then `burst_on` it; return the figures."""
    with server_stack(db, prefix=f"linreg-load-{db}-", **extra) as stack:
        return burst_on(stack, runs, n=n, epochs=epochs, timeout=timeout, single=single,
                        unprotected=unprotected, resubmit=resubmit)


def burst_on(stack: Stack, runs: int, n: int = 300, epochs: int | None = None, timeout: float = 900,
             single: bool = False, unprotected: bool = False, resubmit: bool = False) -> dict:
    """Trigger `runs` runs at once on a running stack, follow them; return the figures.

    The runs write to a folder of their own under the stack's home, and the error counts
    come from what the logs gained meanwhile: the stack may be shared with other work.

    Args:
        single: first time one run alone on the same stack (`single_run_s`), the baseline.
        unprotected: lift the deployment's concurrency limit first (start the stack with
            LINREG_WORKERS=1 and LINREG_POOL_LIMIT=0 too for the set-up the issue measured).
        resubmit: create each run the server refused (503 "database is locked" past the
            client's retries, as SQLite does under load) again, one at a time, as a user
            would press "run" again; `refused_triggers` still counts the burst's refusals.
    """
    logs_before = stack.log_sizes()
    if unprotected:
        lift_deployment_limit(stack)
    output_dir = Path(tempfile.mkdtemp(prefix="burst-", dir=stack.home))
    parameters = run_parameters(output_dir, n=n, epochs=epochs)
    single_s = None
    if single:
        started = time.monotonic()
        alone = trigger_runs(stack, 1, parameters)
        wait_final(stack, alone, timeout)
        single_s = time.monotonic() - started
    started = time.monotonic()
    ids = trigger_runs(stack, runs, parameters, tolerate_refusals=True)
    refused = runs - len(ids)
    for _ in range(RESUBMIT_ROUNDS if resubmit else 0):
        if len(ids) == runs:
            break
        for _ in range(runs - len(ids)):
            ids += trigger_runs(stack, 1, parameters, tolerate_refusals=True)
    final = wait_final(stack, ids, timeout)
    wall = time.monotonic() - started
    checks = check_runs(stack, final, output_dir)
    logs = stack.logs(since=logs_before)
    states: dict[str, int] = {}
    for check in checks:
        states[check.state] = states.get(check.state, 0) + 1
    gaps = [c.scheduled_to_running_s for c in checks if c.scheduled_to_running_s is not None]
    return {
        "db": stack.db, "runs": runs, "refused_triggers": refused, "created": len(ids), "n": n, "wall_s": wall, "runs_per_min": runs / wall * 60, "single_run_s": single_s,
        "max_scheduled_to_running_s": max(gaps) if gaps else None, "states": states,
        "retried_errors": count_retried(logs),
        "run_ids_distinct": len({c.run_folder.name for c in checks if c.run_folder}) == len(checks),
        "problems": {str(c.run_id): c.problems for c in checks if c.problems},
        "workers": int(stack.env.get("LINREG_WORKERS", "2")),
        "pool_limit": int(stack.env.get("LINREG_POOL_LIMIT", "2")),
    }


def describe(f: dict) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in f["retried_errors"].items())
    gap = f["max_scheduled_to_running_s"]
    refused = f"{f['refused_triggers']} refused at creation, " if f.get("refused_triggers") else ""
    return (f"{f['db']}: {f['runs']} runs, {f['workers']} workers, pool limit {f['pool_limit']}: "
            f"{refused}{f['states']} in {f['wall_s']:.0f} s ({f['runs_per_min']:.1f} runs/min); "
            f"largest Scheduled→Running {gap if gap is None else round(gap, 1)} s; log lines: {errors}")


def load_row(f: dict) -> Row:
    """The bench's row for a burst's figures (`burst_on` with `single=True`): the burst's wall
    time against its runs done one at a time. tests/test_server_faults.py checks it on its burst."""
    runs, db = f["runs"], f["db"]
    return Row(
        section="load", case=f"{runs} runs at once, {db}", baseline=f"{runs} × one run alone",
        n=f["n"], d=1, reps=1, ours_s=f["wall_s"], baseline_s=runs * f["single_run_s"], note=describe(f),
        checks={"every run Completed, with its artifacts and its own folder":
                not f["problems"] and f["states"] == {"Completed": runs} and f["run_ids_distinct"]},
        extra={"figures": json.loads(json.dumps(f, default=str))},
    )


def run(config: BenchConfig) -> list[Row]:
    # --quick: two runs on SQLite only. The smoke test (tests/test_bench.py) leaves this section
    # out: tests/test_server_faults.py's burst, on the stack it shares, checks `load_row` instead.
    runs, n, epochs, dbs = (2, 200, config.epochs, ("sqlite",)) if config.quick else (20, 300, None, ("sqlite", "postgres"))
    rows = []
    for db in dbs:
        f = burst(db, runs, n=n, epochs=epochs, single=True)
        print(f"bench: load: {describe(f)}", file=sys.stderr, flush=True)
        rows.append(load_row(f))
    if not config.quick:
        # The same burst with no protection (1 worker, no pool or deployment limit), as the
        # issue measured it: what the limits and the second worker buy. Not a check: it may lose runs.
        try:
            f = burst("sqlite", runs, n=n, timeout=600, unprotected=True, single=True,
                      LINREG_WORKERS="1", LINREG_POOL_LIMIT="0")
        except Exception as exc:  # a baseline that breaks is a finding, not a broken bench
            print(f"bench: load: unprotected burst broke: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return rows
        print(f"bench: load: unprotected {describe(f)}", file=sys.stderr, flush=True)
        rows.append(Row(
            section="load", case=f"{runs} runs at once, sqlite, unprotected", baseline=f"{runs} × one run alone",
            n=n, d=1, reps=1, ours_s=f["wall_s"], baseline_s=runs * f["single_run_s"],
            note=f"no deployment or pool limit, 1 worker: {describe(f)}", checks={},
            extra={"figures": json.loads(json.dumps(f, default=str))},
        ))
    return rows
