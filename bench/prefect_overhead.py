"""Section "prefect_overhead": what Prefect costs on top of the compute, on both kinds of API.

Each `linreg run` writes into a fresh folder, so no run reuses another's
dataset. The two sides do not compute the same things (the pipeline trains
every solver, concurrently, then evaluates and publishes), so there is no
agreement column.

Three whole processes take turns (A B C D A B C D ...): the tutorial script,
`linreg run` on Prefect's embedded default (a temporary local API that each
process starts), and `linreg run` against a Prefect server that is already
running (started once here, on a free loopback port, with its own PREFECT_HOME);
the fourth turn fits every solver in this process, one after another, for the
bound the embedded runs' training (`training_seconds` in their summaries) is
held to: max(longest fit, sum of fits / cores).

For each `linreg run` the overhead is its wall time minus the compute of its
tasks, as the run itself reports it (the sum of every solver's `seconds`, read
back from summary.json): start-up, API calls, task and flow bookkeeping,
evaluation, plots and files.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench.default_run import TARGET, bound, standalone_fits
from bench.harness import BenchConfig, Row, interleave
from flows.api.process import UIServer, drain_prefect_workers
from linreg.storage.catalog import SUMMARY, Catalog

SCRIPT = Path(__file__).with_name("tutorial_reference.py")


def linreg_command(config: BenchConfig, out: str) -> list[str]:
    command = [str(Path(sys.executable).with_name("linreg")), "run", "--output-dir", out]
    if config.quick:
        command += ["--n", "200", "--epochs", str(config.epochs)]
    return command


def tutorial_command(config: BenchConfig) -> list[str]:
    command = [sys.executable, str(SCRIPT)]
    if config.quick:
        command += ["--epochs", str(config.epochs)]
    return command


def run_quietly(command: list[str], env: dict[str, str | None] | None = None, timeout: float = 600) -> None:
    """Run a command to completion, raising with its output's tail if it fails or outlasts `timeout`.

    Output goes to a temporary file, never a pipe: a process the command leaves
    behind could hold a pipe open for ever. The command gets a session of its
    own, and whatever is left in it is killed at the end.

    Args:
        env: variables to set on top of this process's environment; None removes one.
    """
    # LINREG_SERVER_RUN_DIR: never report to a `make server` that happens to run in this checkout.
    merged = {**os.environ, "MPLBACKEND": "Agg", "LINREG_SERVER_RUN_DIR": os.devnull, **(env or {})}
    env = {k: v for k, v in merged.items() if v is not None}
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            stop_group(process, grace=5)
        log.seek(0)
        if returncode != 0:
            status = f"did not finish in {timeout:g} s" if returncode is None else f"exited {returncode}"
            raise RuntimeError(f"{' '.join(command)} {status}:\n{log.read()[-2000:]}")


# The targets, as speed-ups over the tutorial script: wall <= 1.0x on the embedded
# default, <= 0.7x against a running server.
TARGET_EMBEDDED = 1.0
TARGET_SERVER = 1 / 0.7


@contextmanager
def prefect_server(home: Path, timeout: float = 120.0):
    """A `prefect server start` (flows.api's UIServer, without its UI) on a free loopback port,
    stopped on exit; yields its API URL."""
    env = {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    with UIServer(home / "server.log", None, timeout, env=env) as server:
        url = server.wait_until_healthy()
        try:
            yield url
        finally:
            if "prefect" in sys.modules:  # this process ran flows on it: flush their logs first
                drain_prefect_workers()


def stop_group(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM the process group `process` leads; SIGKILL what is left after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    process.wait()


def task_compute(out: Path) -> float:
    """Sum of solver seconds of the one run under `out`."""
    (folder,) = Catalog(out).run_folders()
    return sum(row["seconds"] for row in json.loads((folder / SUMMARY).read_text())["results"])


def run(config: BenchConfig) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="linreg-bench-overhead-") as scratch:
        scratch = Path(scratch)
        home = scratch / "server-home"
        home.mkdir()
        outs = {"embedded": [], "server": []}

        with prefect_server(home) as url:
            def linreg(mode: str) -> None:
                out = scratch / f"{mode}{len(outs[mode])}"
                outs[mode].append(out)
                env = {"PREFECT_HOME": str(scratch / "embedded-home"), "PREFECT_API_URL": None} \
                    if mode == "embedded" else {"PREFECT_API_URL": url}
                run_quietly(linreg_command(config, str(out)), env)

            data, spec = standalone_data(config)
            warmup = 0 if config.quick else 1
            t = interleave(
                {
                    "tutorial": lambda: run_quietly(tutorial_command(config)),
                    "embedded": lambda: linreg("embedded"),
                    "server": lambda: linreg("server"),
                    "standalone": lambda: standalone_fits(data, spec),
                },
                reps=min(config.reps, 2), warmup=warmup,
            )
        # In call order, as the wall times: the i-th compute belongs to the i-th run.
        compute = {mode: [task_compute(out) for out in paths[warmup:]] for mode, paths in outs.items()}
        training = [training_seconds(out) for out in outs["embedded"][warmup:]]

    n = 200 if config.quick else 1000
    rows = []
    for mode, label, target in (("embedded", "embedded default (temporary API)", TARGET_EMBEDDED),
                                ("server", "an already running server", TARGET_SERVER)):
        wall = t[mode].median
        median_compute = sorted(compute[mode])[len(compute[mode]) // 2]
        rows.append(Row(
            section="prefect_overhead", case=f"`linreg run`, {label}", baseline="tutorial script",
            n=n, d=1, reps=len(t[mode].seconds), ours_s=wall, baseline_s=t["tutorial"].median, target=target,
            note=(f"overhead on {label}: {wall - median_compute:.2f} s of {wall:.2f} s wall "
                  f"(task compute {median_compute:.2f} s, summed over solvers)"),
            extra={"wall_s": t[mode].seconds, "task_compute_s": compute[mode]},
        ))
    value, note = bound(t["standalone"].result)
    rows.append(Row(
        section="prefect_overhead", case="training of the default run (`linreg run`, embedded)",
        baseline="bound from standalone fits", n=n, d=1, reps=len(training),
        ours_s=statistics.median(training), baseline_s=value, target=TARGET, note=note,
        extra={"training_s": training, "standalone_fit_s": t["standalone"].result},
    ))
    return rows


def training_seconds(out: Path) -> float:
    """The training step's wall time, as the one run under `out` recorded it."""
    (folder,) = Catalog(out).run_folders()
    return json.loads((folder / SUMMARY).read_text())["training_seconds"]


def standalone_data(config: BenchConfig):
    """The default run's data and spec, in memory, for the standalone fits."""
    from linreg.data import make_dataset
    from linreg.specs import RunSpec

    extra = {"epochs": config.epochs} if config.epochs else {}
    spec = RunSpec(data={"n": 200 if config.quick else 1000}, defaults=extra, device="cpu")
    return make_dataset(spec.data), spec
