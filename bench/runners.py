"""Section "runners": the same training on threads, processes and a 2-worker Dask LocalCluster.

The default run (`linreg_flow`, every solver at the tutorial's settings) on
every runner in turn (A B C A B C ...), in this process against one Prefect
server started for the section.

Wall time of the flow call, and its ratio against `threads` (speed-up > 1: the
runner beats threads). Every runner must give the same fits: the rows check it.
Then, on the same server, the rows of `bench.default_run`: the default run's
training subflow against its lower bound.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from bench.harness import BenchConfig, Row, interleave
from bench.default_run import measure as measure_default_run
from bench.prefect_overhead import prefect_server
from linreg.solvers import SOLVERS

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
            from linreg.specs import RunSpec

            extra = {"epochs": config.epochs} if config.epochs else {}
            n = 200 if config.quick else 1000
            specs = {r: RunSpec(data={"n": n}, defaults=extra, device="cpu", output_dir=scratch / r, runner=r)
                     for r in RUNNERS}
            reps = min(config.reps, 2)
            default = interleave(
                {r: (lambda s=specs[r]: linreg_flow(s, return_state=True).result()) for r in RUNNERS},
                reps=reps, warmup=0,
            )
            rows += measure_default_run(config, scratch)
    reference = {row.solver: (row.bias, row.weights) for row in default["threads"].result.results}
    for runner in RUNNERS:
        same = all((row.bias, row.weights) == reference[row.solver] for row in default[runner].result.results)
        rows.append(Row(
            section="runners", case=f"{runner}: default run", baseline="threads", n=n, d=1,
            reps=reps, ours_s=default[runner].median, baseline_s=default["threads"].median,
            checks={"same fits as threads": same},
            extra={"tasks": len(SOLVERS), "wall_s": default[runner].seconds},
        ))
    return rows
