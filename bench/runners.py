"""Section "runners": the same training on threads, processes and a 2-worker Dask LocalCluster.

Two workloads, each on every runner in turn (A B C A B C ...), in this process
against one Prefect server started for the section:

- the default run: `linreg_flow` with every solver at the tutorial's settings;
- a sweep of 16 solver runs: the training tasks of 16 (solver, dataset)
  pairs, the 8 solvers on 2 datasets, at 200 epochs (a sweep's short runs;
  it also keeps `make bench` under 10 minutes).

Wall time of the flow call, and its ratio against `threads` (speed-up > 1: the
runner beats threads). Every runner must give the same fits: the rows check it.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from bench.harness import BenchConfig, Row, interleave
from bench.prefect_overhead import prefect_server

RUNNERS = ("threads", "processes", "dask")


@contextmanager
def exported(name: str, value: str):
    """Set an environment variable for the block, restoring what was there."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _sweep_flow():
    """A bench-only flow: the training subflow's tasks for 16 (solver, dataset) pairs."""
    from prefect import flow

    from tasks.runners import intra_op_threads
    from tasks.train import collect_fits, submit_training

    @flow(name="linreg-bench-sweep")
    def sweep(refs, run):
        threads = intra_op_threads(run)
        futures = {
            f"{name}@{i}": submit_training(ref, name, run.solver_spec(name, "cpu"), threads, run.runner == "dask")
            for i, ref in enumerate(refs) for name in run.solvers
        }
        return collect_fits(futures, run.data.d, "cpu")

    return sweep


@contextmanager
def no_heartbeats():
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def run(config: BenchConfig) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="linreg-bench-runners-") as scratch:
        scratch = Path(scratch)
        (scratch / "home").mkdir()
        # The API goes into the environment before Prefect is first imported here: its
        # process-wide default settings, which threads without a settings context fall
        # back to, then name this server too, and no stray temporary API is started.
        with prefect_server(scratch / "home") as url, exported("PREFECT_API_URL", url), no_heartbeats():
            from flows.linreg_flow import linreg_flow
            from linreg.specs import DataSpec, RunSpec
            from linreg.storage import ensure_dataset
            from tasks.runners import task_runner_for

            extra = {"epochs": config.epochs} if config.epochs else {}
            n = 200 if config.quick else 1000
            specs = {r: RunSpec(data={"n": n}, defaults=extra, device="cpu", output_dir=scratch / r, runner=r)
                     for r in RUNNERS}
            reps = min(config.reps, 2)
            default = interleave(
                {r: (lambda s=specs[r]: linreg_flow(s, return_state=True).result()) for r in RUNNERS},
                reps=reps, warmup=0,
            )
            refs = [ensure_dataset(DataSpec(n=n, seed=seed), scratch / "sweep")[0] for seed in (1, 2)]
            sweep = _sweep_flow()
            short = {r: s.model_copy(update={"defaults": s.defaults.model_copy(
                update={"epochs": config.epochs or 200})}) for r, s in specs.items()}
            sixteen = interleave(
                {r: (lambda s=short[r]: sweep.with_options(task_runner=task_runner_for(s))(refs, s))
                 for r in RUNNERS},
                reps=reps, warmup=0,
            )

    reference = {row.solver: (row.bias, row.weights) for row in default["threads"].result.results}
    for runner in RUNNERS:
        same = all((row.bias, row.weights) == reference[row.solver] for row in default[runner].result.results)
        for workload, timing, tasks in (("default run", default, 8), ("sweep of 16 solver runs", sixteen, 16)):
            rows.append(Row(
                section="runners", case=f"{runner}: {workload}", baseline="threads", n=n, d=1,
                reps=reps, ours_s=timing[runner].median, baseline_s=timing["threads"].median,
                checks={"same fits as threads": same},
                extra={"tasks": tasks, "wall_s": timing[runner].seconds},
            ))
    return rows
