"""The pipeline: generate, persist, train in parallel, evaluate, publish."""

from time import perf_counter

from prefect import flow, get_client, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from linreg.devices import planned_device
from linreg.evaluate import RunSummary
from linreg.report import outcome
from linreg.solvers import FitResult
from linreg.scaling import Scaling
from linreg.specs import RunSpec
from linreg.storage import DataRef, catalog
from tasks.dataset import fit_scaling, prepare_dataset, prepare_table
from tasks.evaluate import evaluate_fits
from tasks.events import emit_solver_events
from tasks.interrupt import raise_if_interrupted, run_deadline
from tasks.publish import publish_run
from tasks.runners import costliest_first, intra_op_threads, set_torch_threads, task_runner_for
from tasks.train import collect_fits, submit_training


def new_run_id() -> str:
    """This flow run's folder name, in the catalog's format (UTC time plus the flow run's id)."""
    return catalog.new_run_id(flow_run.id)


def _run_spec(value) -> RunSpec:
    """A flow's `run` parameter as the model (run names are made before parameters are validated)."""
    if value is None:
        return RunSpec()
    return value if isinstance(value, RunSpec) else RunSpec.model_validate(value)


def run_device(run: RunSpec, elements: int) -> tuple[str, str]:
    """The run's device and why (`linreg.devices.planned_device`, the one device policy).

    Args:
        elements: n·d of the data the fits train on.
    """
    return planned_device(run.device, fits_run_here=run.runner != "dask", elements=elements)


def linreg_run_name() -> str:
    """`n1000-d1-seed42-auto`: what was asked, until the flow has decided the device and renames the run."""
    return _run_spec(flow_run.parameters.get("run")).label()


def name_run_after(run: RunSpec, device: str) -> None:
    """Rename this flow run after the device its fits are planned on (`n1000-d1-seed42-cpu`).

    The device is decided once, in the flow (a table's size, which "auto" needs, is known only
    once it is checked), so the name that Prefect gives before the flow body carries the asked
    device, and this renames it the way Prefect's own `flow_run_name` does.
    """
    name = run.label(device)
    if name != flow_run.name:
        with get_client(sync_client=True) as client:
            client.set_flow_run_name(flow_run.id, name)


def train_run_name() -> str:
    params = flow_run.parameters
    return "train-" + _run_spec(params.get("run")).label(params.get("device"))


@flow(name="linreg-train", flow_run_name=train_run_name)
def train_flow(
    ref: DataRef, run: RunSpec, device: str, deadline: float | None = None, scaling: Scaling | None = None
) -> list[FitResult]:
    """Submit every solver at once on this flow's task runner; collect each outcome.

    Each fit stops past `run.timeouts.fit_seconds`, or past the run's `deadline`
    (epoch seconds), and is then a `failed` row naming the limit. With `scaling`, the
    iterative solvers fit standardised data (`linreg.scaling`).
    """
    if run.runner == "threads":
        set_torch_threads(intra_op_threads(run, ref.n * ref.d))  # the flow's own thread; pool threads set theirs (tasks/runners.py)
    futures = {
        name: submit_training(
            ref, name, run.solver_spec(name, device), dask=run.runner == "dask",
            fit_seconds=run.timeouts.fit_seconds, run_deadline=deadline, scaling=scaling,
        )
        for name in costliest_first(run, ref.n)
    }
    fits = collect_fits({name: futures[name] for name in run.solvers}, ref.d, device)
    raise_if_interrupted(deadline)  # fits cut short by Ctrl-C or the run's time limit are no results
    return fits


@flow(name="linreg", flow_run_name=linreg_run_name, log_prints=True)
def linreg_flow(run: RunSpec = RunSpec()) -> RunSummary:
    """Fit y = b + x·w with every selected solver and report how each did.

    Training runs as a subflow on the task runner that `run.runner` names, so
    a deployment chooses threads, processes or Dask by parameter alone.
    Ends Completed when no solver failed (diverged ones are named in the
    message), Failed when any solver raised; the artifacts are published either
    way, and each diverged or failed solver emits an event (tasks.events).
    Past `run.timeouts.run_seconds` the run stops at its next safe point and ends Failed.
    """
    run_id = new_run_id()
    deadline = run_deadline(run.timeouts.run_seconds)
    if run.from_file:  # a table's size, which "auto" needs, is known once it is checked
        ref = prepare_table(run.data, run.output_dir, run.fit_intercept)
        device, why = run_device(run, ref.n * ref.d)
    else:  # decided before the dataset is written: a device this machine lacks refuses the run at once
        device, why = run_device(run, run.data.n * run.data.d)
        ref = prepare_dataset(run.data, run.output_dir)
    get_run_logger().info("device %s: %s", device, why)
    name_run_after(run, device)
    raise_if_interrupted(deadline)
    scaling = fit_scaling(ref, run.fit_intercept) if run.scaling == "standard" else None

    started = perf_counter()
    fits = train_flow.with_options(task_runner=task_runner_for(run, ref.n * ref.d))(ref, run, device, deadline, scaling)
    training_seconds = perf_counter() - started
    raise_if_interrupted(deadline)

    evaluation = evaluate_fits(ref, fits, run_id, training_seconds, (device, why), run.fit_intercept, run.scaling,
                               run.cov)
    summary = evaluation.summary
    publish_run(evaluation, fits, ref, run.output_dir)
    emit_solver_events(summary)

    succeeded, message = outcome(summary)
    return Completed(message=message, data=summary) if succeeded else Failed(message=message, data=summary)


if __name__ == "__main__":
    linreg_flow()
