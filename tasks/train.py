"""Train one solver. Each task reads the parquet itself: only a DatasetRef crosses over."""

from dataclasses import replace

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed

from linreg.devices import resolve_device
from linreg.scaling import Scaling, ScaledSource
from linreg.solvers import SOLVERS, FitResult
from linreg.solvers.base import SolverSpec, failed_result
from linreg.storage import DataRef, open_data
from tasks.dataset import memory_budget
from tasks.interrupt import interruptible
from tasks.progress import rows_progress
from tasks.runners import dask_gpu_annotation


def dask_worker_address() -> str | None:
    """The Dask worker running this task, if any."""
    try:
        from distributed import get_worker  # deferred: dask is only paid for when used

        return get_worker().address
    except (ImportError, ValueError):
        return None


# Nothing is cached or persisted: a fit takes seconds and a rerun should measure its own
# (the dataset is what is reused, by content digest, under the data root). retries=0:
# a failed fit is a result, not a blip.
@task(name="train", cache_policy=NO_CACHE, persist_result=False, retries=0)
def train_solver(
    ref: DataRef, solver: str, spec: SolverSpec, fit_seconds: float | None = None, run_deadline: float | None = None,
    scaling: Scaling | None = None,
) -> FitResult:
    """Fit one solver; it stops with FitTimedOut past `fit_seconds` or the run's deadline (epoch seconds).

    With `scaling`, an iterative solver fits standardised data and its result is given
    back in the original units (`linreg.scaling`); the closed form always fits the data as it is.
    """
    info = SOLVERS[solver]
    spec = spec.model_copy(update={"device": resolve_device(spec.device)})  # on the machine that runs it
    data = open_data(ref, memory_budget())  # in memory within the budget, else streamed one row group at a time
    scaled = scaling is not None and info.iterative
    if scaled:
        data = ScaledSource(data, scaling)
    key = f"linreg-train-{solver.replace('_', '-')}-progress"
    with rows_progress(info.rows_streamed(data, spec), f"{solver}: rows streamed", key=key) as progress:
        fit = info.fit(data, spec, progress=interruptible(progress, fit_seconds, run_deadline))
    if scaled:
        fit = scaling.unscale(fit)
    return replace(fit, worker=dask_worker_address())


def routing_tags(solver: str, device: str) -> set[str]:
    """`cuda` for a solver with a CUDA path (`SolverInfo.cuda`) when it will run on a GPU, so CUDA workers and
    the `cuda` concurrency limit pick it out; no tag otherwise.

    A tagged task asks the API for a concurrency slot of each tag before it runs,
    limit or none: measured here, that delayed every torch task by 2.4 s in the
    default run, so CPU tasks carry no tag (their names say the solver).
    """
    return {"cuda"} if SOLVERS[solver].cuda and device.startswith("cuda") else set()


def submit_training(
    ref: DataRef, solver: str, spec: SolverSpec, dask: bool,
    fit_seconds: float | None = None, run_deadline: float | None = None, scaling: Scaling | None = None,
) -> PrefectFuture:
    """Submit one solver. Under Dask, `cuda` tasks ask for a worker resource GPU=1, so only
    workers started with `--resources GPU=1` run them."""
    tags = routing_tags(solver, spec.device)
    task = train_solver.with_options(task_run_name=f"train-{solver}", tags=tags)
    args = (ref, solver, spec, fit_seconds, run_deadline, scaling if SOLVERS[solver].iterative else None)
    with dask_gpu_annotation(dask and "cuda" in tags):
        return task.submit(*args)


def collect_fits(futures: dict[str, PrefectFuture], d: int, device: str) -> list[FitResult]:
    """Wait for every training task, in completion order, and return fits in submission order.

    A task that failed becomes a `failed` FitResult carrying its error, so one
    solver's failure never takes the others down. Progress shows as a Prefect
    progress artifact while the fits come in.
    """
    progress = create_progress_artifact(0.0, key="linreg-progress", description="solvers finished (%)")
    names = {future.task_run_id: name for name, future in futures.items()}
    fits: dict[str, FitResult] = {}
    for done, future in enumerate(as_completed(list(futures.values())), start=1):
        name = names[future.task_run_id]
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, FitResult):
            fits[name] = outcome
        else:
            get_run_logger().error("solver %s failed: %s", name, outcome)
            fits[name] = failed_result(name, d, outcome, device)
        update_progress_artifact(progress, 100.0 * done / len(futures))
    return [fits[name] for name in futures]
