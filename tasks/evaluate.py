"""Score every fit against the truth and the closed form, and record what made the run."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from linreg import provenance
from linreg.evaluate import Evaluation, evaluate_run
from linreg.solvers import FitResult
from linreg.storage import DataRef, open_data
from tasks.dataset import memory_budget


@task(name="evaluate", cache_policy=NO_CACHE)  # its inputs hold arrays, which hash unstably
def evaluate_fits(
    ref: DataRef, fits: list[FitResult], run_id: str, training_seconds: float | None = None,
    device: tuple[str, str] | None = None, fit_intercept: bool = True, scale: str | None = None,
    cov: str = "nonrobust",
) -> Evaluation:
    """One pass over the data (streamed when it exceeds the memory budget) scores every fit, one
    more diagnoses the reference; with a holdout, one more over the rows held out.

    `device` is the planned device and why it was chosen, recorded in the summary; `cov` the
    covariance of the reference's standard errors."""
    made_by = provenance.collect(provenance.run_device([fit.device for fit in fits]))
    data = open_data(ref, memory_budget())
    held_out = open_data(ref, memory_budget(), part="holdout") if getattr(ref, "n_holdout", 0) else None
    return evaluate_run(run_id, ref, data, fits, training_seconds, made_by, device, fit_intercept, held_out, scale,
                        cov)
