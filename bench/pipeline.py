"""Section "pipeline": the whole `linreg run` against the whole tutorial script, as subprocesses.

Each side is a fresh process, started in turn (A B A B ...), timed from start
to exit: imports, data, every variant, plots and (for `linreg run`) Prefect's
temporary API server, the parquet dataset and the run's files. `linreg run`
writes into a fresh temporary folder each time, so no run reuses another's
dataset. The two do not compute the same things (the pipeline trains every
solver, concurrently, then evaluates and publishes), so there is no agreement
column and no target: the row says what the whole pipeline costs next to the
script it grew from.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import BenchConfig, Row, interleave

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


def run_quietly(command: list[str], env: dict[str, str] | None = None) -> None:
    """Run a command to completion, raising with its output's tail if it fails.

    Args:
        env: variables to set on top of this process's environment.
    """
    env = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-2000:]}")


def run(config: BenchConfig) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="linreg-bench-") as scratch:
        runs = iter(range(10**6))

        def linreg_run():
            run_quietly(linreg_command(config, str(Path(scratch) / f"run{next(runs)}")))

        t = interleave(
            {"linreg": linreg_run, "tutorial": lambda: run_quietly(tutorial_command(config))},
            reps=config.reps, warmup=0,
        )
    n = 200 if config.quick else 1000
    return [Row(
        section="pipeline", case="`linreg run` (8 solvers, Prefect, files)", baseline="tutorial script",
        n=n, d=1, reps=config.reps, ours_s=t["linreg"].median, baseline_s=t["tutorial"].median,
        note="whole processes, start to exit; the pipeline does more than the script (see bench/pipeline.py)",
    )]
