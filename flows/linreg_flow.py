"""The pipeline: generate, persist, train in parallel, evaluate, publish."""

import os
from datetime import datetime, timezone

os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "linreg")  # library warnings reach the UI
# ...and, called outside a flow (a notebook, a test), they stay on the console without a warning.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

from prefect import flow  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402
from prefect.states import Completed, Failed  # noqa: E402

from linreg.devices import resolve_device  # noqa: E402
from linreg.evaluate import RunSummary  # noqa: E402
from linreg.report import outcome  # noqa: E402
from linreg.solvers import FitResult  # noqa: E402
from linreg.specs import RunSpec  # noqa: E402
from linreg.storage import DatasetRef  # noqa: E402
from tasks.dataset import prepare_dataset  # noqa: E402
from tasks.evaluate import evaluate_fits  # noqa: E402
from tasks.publish import publish_run  # noqa: E402
from tasks.runners import intra_op_threads, task_runner_for  # noqa: E402
from tasks.train import collect_fits, submit_training  # noqa: E402


def new_run_id() -> str:
    """A sortable, unique folder name: UTC time plus the flow run's id."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{str(flow_run.id)[:8]}"


@flow(name="linreg-train")
def train_flow(ref: DatasetRef, run: RunSpec, device: str) -> list[FitResult]:
    """Submit every solver at once on this flow's task runner; collect each outcome."""
    threads = intra_op_threads(run)
    futures = {
        name: submit_training(ref, name, run.solver_spec(name, device), threads, dask=run.runner == "dask")
        for name in run.solvers
    }
    return collect_fits(futures, run.data.d, device)


@flow(name="linreg", log_prints=True)
def linreg_flow(run: RunSpec = RunSpec()) -> RunSummary:
    """Fit y = b + x·w with every selected solver and report how each did.

    Training runs as a subflow on the task runner that `run.runner` names, so
    a deployment chooses threads, processes or Dask by parameter alone.
    Ends Completed when no solver failed (diverged ones are named in the
    message), Failed when any solver raised; the artifacts are published either way.
    """
    run_id = new_run_id()
    # Under Dask the fits run on workers with their own hardware: each task resolves there.
    device = run.device if run.runner == "dask" else resolve_device(run.device)
    ref = prepare_dataset(run.data, run.output_dir)

    fits = train_flow.with_options(task_runner=task_runner_for(run))(ref, run, device)

    summary = evaluate_fits(ref, fits, run_id)
    publish_run(summary, fits, ref, run.output_dir)

    succeeded, message = outcome(summary)
    return Completed(message=message, data=summary) if succeeded else Failed(message=message, data=summary)


if __name__ == "__main__":
    linreg_flow()
