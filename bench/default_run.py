"""Does training in parallel pay? The default run's training against its bound (rows of section "runners").

In this process, against the Prefect server of the runners section (Prefect's
settings are process-wide once it is imported, so the sections that run flows
in-process share one server), in turns (A B C A B C ...):

- `standalone`: every solver's fit, one after another, in memory, at one torch
  thread (what each training task gets at this size), with no Prefect at all;
- `default runner`: the training subflow of the default run (`train_flow` on
  the runner `linreg run` uses, every solver at the tutorial's settings);
- `a thread per solver`: the same subflow on a pool with one thread per solver,
  the default before it was measured.

Two cores can do no better than max(longest fit, sum of fits / cores), both
taken from the standalone fits of the same round. A full server runs services
that the embedded API leaves off, which compete for the two cores; the target
(training within 1.25x that bound) is checked on the default run itself, from
`linreg run`'s summary, in section "prefect_overhead".
"""

import os
import time
from pathlib import Path

from bench.harness import BenchConfig, Row, interleave

TARGET = 1 / 1.25  # checked in bench.prefect_overhead, on `linreg run` itself


def standalone_fits(data, run) -> dict[str, float]:
    """Each solver's wall seconds, fitted one after another in this process at one torch thread."""
    import torch

    from linreg.solvers import SOLVERS

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seconds = {}
        for name in run.solvers:
            start = time.perf_counter()
            SOLVERS[name].fit(data, run.solver_spec(name, "cpu"))
            seconds[name] = time.perf_counter() - start
        return seconds
    finally:
        torch.set_num_threads(before)


def measure(config: BenchConfig, scratch: Path) -> list[Row]:
    """Time the three contenders; call it with PREFECT_API_URL pointing at a running server."""
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.linreg_flow import train_flow
    from linreg.specs import RunSpec
    from linreg.storage import ensure_dataset, open_dataset
    from tasks.runners import task_runner_for

    cores = len(os.sched_getaffinity(0))
    extra = {"epochs": config.epochs} if config.epochs else {}
    spec = RunSpec(data={"n": 200 if config.quick else 1000}, defaults=extra, device="cpu",
                   output_dir=scratch / "default-run")
    ref, _ = ensure_dataset(spec.data, spec.output_dir)
    data = open_dataset(ref)

    def train(runner):
        return train_flow.with_options(task_runner=runner)(ref, spec, "cpu")

    t = interleave(
        {
            "standalone": lambda: standalone_fits(data, spec),
            "default": lambda: train(task_runner_for(spec)),
            "per_solver": lambda: train(ThreadPoolTaskRunner(max_workers=len(spec.solvers))),
        },
        reps=config.reps, warmup=1,
    )
    fits = t["standalone"].result
    value, note = bound(fits)
    rows = []
    for key, label in (("default", "training subflow, default runner, on a running server"),
                       ("per_solver", "training subflow, a thread per solver, on a running server")):
        rows.append(Row(
            section="runners", case=label, baseline="bound from standalone fits", n=spec.data.n, d=1,
            reps=len(t[key].seconds), ours_s=t[key].median, baseline_s=value, note=note if key == "default" else "",
            extra={"wall_s": t[key].seconds, "standalone_fit_s": fits, "cores": len(os.sched_getaffinity(0))},
        ))
    return rows


def bound(fits: dict[str, float]) -> tuple[float, str]:
    """max(longest fit, sum of fits / cores), and a note that shows the sum."""
    cores = len(os.sched_getaffinity(0))
    longest = max(fits, key=fits.get)
    value = max(fits[longest], sum(fits.values()) / cores)
    return value, (f"bound {value:.2f} s = max(longest fit {fits[longest]:.2f} s ({longest}), "
                   f"sum {sum(fits.values()):.2f} s / {cores} cores), from standalone fits timed in turn with it")
