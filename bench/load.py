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

The stack and the runs on it come from flows/server_stack.py, which the server tests use
too; tests/test_server_faults.py's burst runs `burst_on` on a stack shared with the restart
test and checks this section's row (`load_row`).
"""

import json
import re
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import BenchConfig, Row
from flows.server_stack import (DEPLOYMENT, Stack, check_runs, run_parameters, server_stack, trigger_runs,
                                wait_final)

RESUBMIT_ROUNDS = 3  # burst(resubmit=True): each refused creation is tried again up to this often
# Lines of the server's and workers' logs that are errors a client retried, or should have.
RETRIED = {
    # One line per error: the last line of the server's traceback (the API answers it with a 503).
    "database is locked": re.compile(r"^sqlalchemy\.exc\.OperationalError: .*database is locked", re.M),
    "503": re.compile(r"\b503 Service Unavailable"),
    "other 5xx": re.compile(r"\b50[0248] (Internal Server Error|Bad Gateway|Gateway Timeout)"),
    "submission failed": re.compile(r"[Ff]ailed to submit flow run"),
}


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
