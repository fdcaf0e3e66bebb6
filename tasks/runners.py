"""Which Prefect task runner trains the solvers: one engine per choice, none home-made."""

import os

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from linreg.devices import torch_threads
from linreg.solvers import SOLVERS
from linreg.specs import RunSpec

# A temporary LocalCluster: one single-threaded worker process per core.
LOCAL_CLUSTER = {"n_workers": None, "threads_per_worker": 1, "processes": True, "dashboard_address": None}


def cores() -> int:
    return len(os.sched_getaffinity(0))


def task_runner_for(run: RunSpec) -> TaskRunner:
    """threads: a thread pool; processes: one process per core; dask: an existing
    scheduler at `dask_address`, else a temporary LocalCluster."""
    if run.runner == "processes":
        return ProcessPoolTaskRunner(max_workers=cores())
    if run.runner == "dask":
        from prefect_dask import DaskTaskRunner  # deferred: dask is only paid for when used

        if run.dask_address:
            return DaskTaskRunner(address=run.dask_address)
        return DaskTaskRunner(cluster_kwargs={**LOCAL_CLUSTER, "n_workers": cores()})
    return ThreadPoolTaskRunner()


def intra_op_threads(run: RunSpec) -> int | None:
    """Torch intra-op threads per training task, so the tasks together do not oversubscribe the cores.

    threads: every torch task shares this process, so cores are split among them.
    processes: one task per process and one process per core, so each gets cores // processes.
    dask: None, keeping the worker's own setting (Dask's nanny starts workers with
    OMP_NUM_THREADS=1, one intra-op thread per worker thread).
    Tiny data always gets one thread: there, threads only add contention.
    """
    elements = run.data.n * run.data.d
    torch_tasks = sum(SOLVERS[name].uses_torch for name in run.solvers)
    if run.runner == "dask":
        return None
    if run.runner == "processes":
        return torch_threads(elements, concurrent_tasks=min(torch_tasks, cores()))
    return torch_threads(elements, concurrent_tasks=torch_tasks)
