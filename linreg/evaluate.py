"""Score fits against the truth, the closed form and the data."""

import math
from typing import TYPE_CHECKING, Annotated

import numpy as np
from pydantic import BaseModel, BeforeValidator
from scipy.special import stdtrit  # the t quantile; scipy.stats costs 3x the import time

from linreg.moments import Moments, accumulate
from linreg.provenance import Provenance
from linreg.solvers.base import FitResult, Status
from linreg.solvers.registry import REFERENCE
from linreg.specs import DataSpec
from linreg.storage import DatasetRef

if TYPE_CHECKING:
    import pandas as pd


def _null_is_nan(value):
    return math.nan if value is None else value


# JSON has no NaN: pydantic writes a non-finite float as null, so null reads back as NaN
# (a failed or diverged fit's summary.json then loads again).
Float = Annotated[float, BeforeValidator(_null_is_nan)]


class SolverReport(BaseModel):
    """One solver's row of the summary. NaN where a value does not exist (a failed fit)."""

    solver: str
    status: Status
    weights: list[Float]
    bias: Float
    seconds: Float
    epochs: int
    final_loss: Float
    weights_abs_error: list[Float]
    bias_abs_error: Float
    distance_to_closed_form: Float
    mse: Float
    r2: Float
    device: str
    message: str | None = None
    diverged_epoch: int | None = None
    worker: str | None = None


class Interval(BaseModel):
    """Inference for one parameter of the closed-form fit."""

    parameter: str
    estimate: Float
    truth: Float
    std_error: Float
    ci_low: Float
    ci_high: Float
    covers_truth: bool


class DatasetInfo(BaseModel):
    path: str
    sha256: str
    n: int
    d: int
    weights: list[float]
    bias: float
    noise: float
    seed: int

    @classmethod
    def from_ref(cls, ref: DatasetRef) -> "DatasetInfo":
        spec = ref.spec
        return cls(
            path=ref.path, sha256=ref.sha256, n=spec.n, d=spec.d, weights=spec.weights,
            bias=spec.bias, noise=spec.noise, seed=spec.seed,
        )


class RunSummary(BaseModel):
    """Everything a run reports: the dataset, one row per solver, and closed-form inference."""

    run_id: str
    dataset: DatasetInfo
    results: list[SolverReport]
    inference: list[Interval]
    training_seconds: float | None = None  # wall time of the whole training step, all solvers together
    provenance: Provenance | None = None  # commit, versions, host, device; absent in runs made before it existed
    device: str | None = None  # the device the fits were planned on ...
    device_reason: str | None = None  # ... and why (for "auto": the data size against the CUDA crossover)

    def statuses(self) -> dict[Status, list[str]]:
        """Solver names grouped by status."""
        groups: dict[Status, list[str]] = {}
        for row in self.results:
            groups.setdefault(row.status, []).append(row.solver)
        return groups

    def to_frame(self) -> "pd.DataFrame":
        """One row per solver, with the run's id, time, data spec and provenance on every row.

        The same columns, built by the same code, as a row of `linreg.results.load_history`.
        """
        from linreg.results import summaries_frame  # deferred: pandas only for those who ask

        return summaries_frame([self])


def training_mse_r2(moments: Moments, coef: np.ndarray, intercept: float) -> tuple[float, float]:
    """Mean squared error and R² of (coef, intercept) on the data, in float64."""
    if not (np.isfinite(coef).all() and math.isfinite(intercept)):
        return math.nan, math.nan
    rss = moments.rss(coef, intercept)
    r2 = 1.0 - rss / moments.syy if moments.syy > 0 else math.nan
    return rss / moments.n, r2


def evaluate_fit(moments: Moments, spec: DataSpec, fit: FitResult, reference: FitResult | None) -> SolverReport:
    """Score one fit against the true parameters, the reference fit and the data's moments."""
    mse, r2 = training_mse_r2(moments, fit.coef, fit.intercept)
    distance = math.nan
    if reference is not None:
        delta = np.append(fit.coef - reference.coef, fit.intercept - reference.intercept)
        distance = float(np.linalg.norm(delta))
    final_loss = float(fit.loss_history[-1]) if len(fit.loss_history) else mse
    return SolverReport(
        solver=fit.solver, status=fit.status,
        weights=fit.coef.tolist(), bias=fit.intercept, seconds=fit.seconds, epochs=fit.epochs,
        final_loss=final_loss,
        weights_abs_error=np.abs(fit.coef - np.asarray(spec.weights)).tolist(),
        bias_abs_error=abs(fit.intercept - spec.bias),
        distance_to_closed_form=distance, mse=mse, r2=r2, device=fit.device,
        message=fit.message, diverged_epoch=fit.diverged_epoch, worker=fit.worker,
    )


def closed_form_inference(moments: Moments, spec: DataSpec, level: float = 0.95) -> list[Interval]:
    """Standard errors and t-based confidence intervals of the least-squares fit.

    sigma² = RSS / (n - p) with p = d + 1; with S the centred XᵀX and m the
    column means, Var(w) = sigma² S⁻¹ and Var(b) = sigma² (1/n + mᵀ S⁻¹ m).
    With no residual degrees of freedom the errors are NaN and no interval covers.
    """
    coef, intercept = moments.solve()
    dof = moments.n - (moments.d + 1)
    if dof > 0:
        sigma2 = moments.rss(coef, intercept) / dof
        inverse = np.linalg.pinv(moments.sxx)
        variance = np.concatenate([[1 / moments.n + moments.mean_x @ inverse @ moments.mean_x], np.diag(inverse)])
        se = np.sqrt(sigma2 * variance)
        half = stdtrit(dof, 0.5 + level / 2) * se
    else:
        se = half = np.full(moments.d + 1, math.nan)
    estimates = [intercept, *coef]
    truth = [spec.bias, *spec.weights]
    names = ["bias"] + [f"w{i}" for i in range(spec.d)]
    return [
        Interval(
            parameter=name, estimate=float(b), truth=float(t), std_error=float(s),
            ci_low=float(b - h), ci_high=float(b + h), covers_truth=bool(b - h <= t <= b + h),
        )
        for name, b, t, s, h in zip(names, estimates, truth, se, half)
    ]


def summarize(
    run_id: str, ref: DatasetRef, data, fits: list[FitResult], training_seconds: float | None = None,
    provenance: Provenance | None = None, device: tuple[str, str] | None = None,
) -> RunSummary:
    """Evaluate every fit in one pass over the data (in memory or streamed from parquet).

    The closed form, when it succeeded, is the reference for the distances.

    Args:
        training_seconds: wall time of the training step, when the caller measured it.
        provenance: the code, libraries, host and device that made the run.
        device: the planned device and the reason it was chosen.
    """
    moments = accumulate(data.iter_chunks(), ref.spec.d)
    reference = next((f for f in fits if f.solver == REFERENCE and f.status == Status.OK), None)
    return RunSummary(
        run_id=run_id,
        dataset=DatasetInfo.from_ref(ref),
        results=[evaluate_fit(moments, ref.spec, fit, reference) for fit in fits],
        inference=closed_form_inference(moments, ref.spec),
        training_seconds=training_seconds,
        provenance=provenance,
        device=device[0] if device else None,
        device_reason=device[1] if device else None,
    )
