"""Which Prefect task runner trains the solvers: one engine per choice, none home-made.

The default, measured on a 2-core machine (`make bench`, sections
"prefect_overhead" and "runners"): a thread pool as wide as the cores, the
costliest fit submitted first. Tiny torch loops hold the GIL between kernels,
so the fits' Python work takes turns: the default run's training took 1.33x
max(longest fit, sum / cores) on 2026-11-30. A process pool pays 3-4 s per
worker to import Prefect and torch, more than the whole parallel gain at the
tutorial's size (0.77x the speed of threads); it wins only when fits are long
(`--runner processes`).
"""

import os
from contextlib import contextmanager
from typing import Iterator

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from linreg.devices import torch_threads
from linreg.solvers import SOLVERS
from linreg.specs import RunSpec
from linreg.sweep import SweepSpec

# A temporary LocalCluster: one single-threaded worker process per core.
LOCAL_CLUSTER = {"n_workers": None, "threads_per_worker": 1, "processes": True, "dashboard_address": None}


def cores() -> int:
    return len(os.sched_getaffinity(0))


def set_torch_threads(threads: int | None) -> None:
    """Set torch's intra-op threads for the calling thread, and the default of threads that start later.

    Not quite process-wide: torch hands the count to MKL per thread, so a thread that
    existed before the call, or a pool thread that runs a fit without ever calling it,
    computes with the machine's default (one per core). The same fit then differed in
    its last bits between a pool thread and a worker process (issue 18). Every runner
    therefore sets it in the thread that fits: the process pool once per worker,
    the thread pool once per pool thread (ThreadsSettingTorch).
    """
    if threads is not None:
        import torch  # deferred: a numpy-only run never pays torch's import

        torch.set_num_threads(threads)


class ThreadsSettingTorch(ThreadPoolTaskRunner):
    """Prefect's thread pool, whose threads each set torch's intra-op threads when they start."""

    def __init__(self, max_workers: int | None = None, torch_threads: int | None = None):
        super().__init__(max_workers=max_workers)
        self.torch_threads = torch_threads

    def duplicate(self) -> "ThreadsSettingTorch":
        return type(self)(max_workers=self._max_workers, torch_threads=self.torch_threads)

    def _register_worker_thread(self) -> None:
        # The pool's own per-thread initializer in Prefect 3.9 (pinned): each new thread runs it first.
        super()._register_worker_thread()
        set_torch_threads(self.torch_threads)


def task_runner_for(run: RunSpec | SweepSpec, elements: int | None = None) -> TaskRunner:
    """threads: a pool of one thread per core; processes: one process per core, each
    setting its torch threads once; dask: an existing scheduler at `dask_address`,
    else a temporary LocalCluster. `elements`: n·d of a run's data (generated data's by default)."""
    if run.runner == "processes":
        return ProcessPoolTaskRunner(
            max_workers=cores(), initializer=set_torch_threads, initargs=(intra_op_threads(run, elements),)
        )
    if run.runner == "dask":
        from prefect_dask import DaskTaskRunner  # deferred: dask is only paid for when used

        if run.dask_address:
            return DaskTaskRunner(address=run.dask_address)
        return DaskTaskRunner(cluster_kwargs={**LOCAL_CLUSTER, "n_workers": cores()})
    return ThreadsSettingTorch(max_workers=cores(), torch_threads=intra_op_threads(run, elements))


@contextmanager
def dask_gpu_annotation(wanted: bool) -> Iterator[None]:
    """Tasks submitted inside ask Dask for a worker resource GPU=1 when `wanted` (a CUDA task
    under the dask runner), so only workers started with `--resources GPU=1` run them."""
    if not wanted:
        yield
        return
    import dask  # deferred: dask is only paid for when used

    with dask.annotate(resources={"GPU": 1}):
        yield


def uses_torch(run: RunSpec) -> bool:
    return any(SOLVERS[name].uses_torch for name in run.solvers)


def intra_op_threads(run: RunSpec | SweepSpec, elements: int | None = None) -> int | None:
    """Torch intra-op threads per training process, so that concurrent tasks do not oversubscribe the cores.

    threads: the pool runs at most `cores` tasks at once in this process, which share the setting.
    processes: one task per process and one process per core.
    dask: None, keeping the worker's own setting (Dask's nanny starts workers with
    OMP_NUM_THREADS=1, one intra-op thread per worker thread).
    Tiny data always gets one thread: there, threads only add contention.
    A sweep's tasks get one thread each: they fit many cells, mostly tiny tensors.
    """
    if run.runner == "dask":
        return None
    if isinstance(run, SweepSpec):
        return 1
    if not uses_torch(run):
        return None
    torch_tasks = sum(SOLVERS[name].uses_torch for name in run.solvers)
    if elements is None:
        elements = run.data.n * run.data.d
    return torch_threads(elements, concurrent_tasks=min(torch_tasks, cores()))


def costliest_first(run: RunSpec, n: int | None = None) -> list[str]:
    """The run's solvers, longest expected fit first, so that it starts at once and the
    short ones fill the other cores (the longest fit bounds the wall time). `n`: rows (generated data's by default)."""
    n = run.data.n if n is None else n
    cost = {name: SOLVERS[name].relative_cost(n, run.solver_spec(name, "cpu")) for name in run.solvers}
    return sorted(run.solvers, key=lambda name: -cost[name])
