"""Sweep tasks: train one chunk of cells on one dataset, and publish the sweep's files and artifacts."""

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from linreg.least_squares import solve_least_squares
from linreg.moments import accumulate
from linreg.plots import figure_png, plot_sweep_error, plot_sweep_seconds
from linreg.report import frame_rows, sweep_markdown
from linreg.scaling import Scaling
from linreg.storage import Catalog, DataRef, open_data, write_bytes, write_text
from linreg.storage.catalog import CROSSOVER_CSV, ERROR_PNG, SECONDS_PNG, SWEEP_CSV, SWEEP_PARQUET
from linreg.sweep import Cell, crossover_table, frame_parquet, run_cells
from tasks.dataset import memory_budget, retry_on_io_error
from tasks.interrupt import interruptible
from tasks.runners import dask_gpu_annotation
from tasks.train import dask_worker_address


@task(name="train-cells", cache_policy=NO_CACHE, retries=0)  # a failed fit is a row, not a blip
def train_cells(ref: DataRef, cells: list[Cell], scaling: Scaling | None = None) -> list[dict]:
    """Fit a chunk of cells that share one dataset, read once; one row per cell."""
    data = open_data(ref, memory_budget())
    return run_cells(data, cells, progress=interruptible(), worker=dask_worker_address(), scaling=scaling)


@task(name="reference-fit", cache_policy=NO_CACHE)
def reference_fit(ref: DataRef, fit_intercept: bool = True) -> tuple[float, ...]:
    """The closed form on a user's table, (intercept, *coef): what its sweep's errors are measured
    against (without an intercept, that of y = x·w, intercept 0)."""
    data = open_data(ref, memory_budget())
    solution = solve_least_squares(accumulate(data.iter_chunks(), ref.d), data.iter_chunks, fit_intercept,
                                   names=getattr(data, "feature_names", None))
    return (float(solution.intercept), *map(float, solution.coef))


def submit_cells(ref: DataRef | PrefectFuture, cells: list[Cell], name: str, dask: bool,
                 scaling: Scaling | None = None) -> PrefectFuture:
    """Submit a chunk. CUDA chunks are tagged `cuda` and, under Dask, ask for a worker resource GPU=1
    (`tasks.runners.dask_gpu_annotation`, as a run's GPU fits do)."""
    cuda = cells[0].device.startswith("cuda")
    chunk = train_cells.with_options(task_run_name=name, tags={"cuda"} if cuda else set())
    with dask_gpu_annotation(dask and cuda):
        return chunk.submit(ref, cells, scaling)


@task(name="publish-sweep", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1,
      retry_condition_fn=retry_on_io_error)
def publish_sweep(frame, sweep_id: str, root: Path) -> Path:
    """Save sweep.parquet, sweep.csv and the plots under sweeps/<sweep-id>/, then the artifacts."""
    catalog = Catalog(root)
    folder = catalog.sweep(sweep_id)
    crossover = crossover_table(frame)
    pngs = {SECONDS_PNG: figure_png(plot_sweep_seconds(frame)), ERROR_PNG: figure_png(plot_sweep_error(frame))}
    for name, png in pngs.items():
        write_bytes(catalog.sweep_file(sweep_id, name), png)
    write_text(catalog.sweep_file(sweep_id, SWEEP_CSV), frame.to_csv(index=False))
    write_text(catalog.sweep_file(sweep_id, CROSSOVER_CSV), crossover.to_csv(index=False))
    # Last: marks the sweep complete.
    write_bytes(catalog.sweep_file(sweep_id, SWEEP_PARQUET), frame_parquet(frame))
    titles = {SECONDS_PNG: "Seconds against n (log-log)", ERROR_PNG: "Error against n (log-log)"}
    report = sweep_markdown(sweep_id, frame, crossover, {titles[name]: png for name, png in pngs.items()})
    create_table_artifact(frame_rows(frame), key="linreg-sweep", description=f"linreg sweep {sweep_id}: one row per cell")
    create_markdown_artifact(report, key="linreg-sweep-report", description=f"linreg sweep {sweep_id}: crossover and plots")
    get_run_logger().info("sweep folder: %s", folder)
    return folder
