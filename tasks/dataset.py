"""Generate and persist the dataset, or reuse the file already made for the same spec."""

import os
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from linreg.specs import DataSpec
from linreg.storage import DEFAULT_MEMORY_BUDGET, DatasetError, DatasetRef, ensure_dataset
from tasks.interrupt import interruptible
from tasks.progress import rows_progress

MEMORY_BUDGET_ENV = "LINREG_MEMORY_BUDGET"


def memory_budget() -> int:
    """Bytes of x and y one task may hold in memory (larger data is streamed): $LINREG_MEMORY_BUDGET, default 256 MiB.

    Read here, on the machine that runs the task, so each worker can set its own.
    """
    return int(os.environ.get(MEMORY_BUDGET_ENV, DEFAULT_MEMORY_BUDGET))


def retry_on_io_error(task, task_run, state) -> bool:
    """Retry OS-level I/O failures (a full disk, a flaky share); a damaged file is not transient."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, OSError) and not isinstance(exc, DatasetError)


@task(
    name="prepare-dataset",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_on_io_error,
    # The file's name is derived from the spec and checked on reuse: the library
    # is the cache, so it works across processes, runners and machines alike.
    cache_policy=NO_CACHE,
)
def prepare_dataset(spec: DataSpec, root: Path) -> DatasetRef:
    with rows_progress(spec.n, "generating rows", key="linreg-generate-progress") as progress:
        ref, reused = ensure_dataset(spec, root, interruptible(progress), memory_budget())
    get_run_logger().info("%s dataset %s (sha256 %s)", "reused" if reused else "wrote", ref.path, ref.sha256[:12])
    return ref
