"""Prepare the run's data: generate and persist it (or reuse the file made for the same spec),
or check and ingest a user's table; and the scaling the iterative solvers fit under."""

import os
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from linreg.moments import accumulate
from linreg.scaling import Scaling
from linreg.specs import DataSpec, FileData
from linreg.storage.ingest import quoted
from linreg.storage import (
    DEFAULT_MEMORY_BUDGET, DataRef, DatasetError, DatasetRef, TableRef, ensure_dataset, ingest_table, open_data,
    table_ref,
)
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


@task(name="ingest-table", retries=2, retry_delay_seconds=1, retry_condition_fn=retry_on_io_error,
      cache_policy=NO_CACHE)  # the conversion is named by the file's sha256: the library is the cache
def prepare_table(data: FileData, root: Path, fit_intercept: bool = True) -> TableRef:
    """Check a user's table and convert a CSV once to parquet under `root/datasets/` (a parquet is read in place).

    Raises:
        TableError: one line naming the file and the column, row or count at fault; nothing is written.
    """
    refs: list[TableRef] = []  # the holdout checked before any conversion is published (then kept)
    table = ingest_table(data.path, data.target, data.features, root, data.drop_missing, **data.dialect_kwargs(),
                         accept=lambda table: refs.append(table_ref(table, data.seed, data.holdout, fit_intercept)))
    ref = refs[-1]
    log = get_run_logger()
    log.info("%s %s: %d rows (%d dropped), target %r, features %s; sha256 %s",
             "converted" if table.converted else "read in place", table.source, table.rows, table.rows_dropped,
             table.target, quoted(table.features), table.source_sha256[:12])
    if ref.n_holdout:
        log.info("holdout: %d of %d rows, used by no solver", ref.n_holdout, table.rows)
    return ref


@task(name="fit-scaling", cache_policy=NO_CACHE)
def fit_scaling(ref: DataRef, fit_intercept: bool = True) -> Scaling:
    """Means and spreads of the training rows (one pass), for the iterative solvers' standard scaling."""
    data = open_data(ref, memory_budget())
    return Scaling.of(accumulate(data.iter_chunks(), ref.d), fit_intercept)
