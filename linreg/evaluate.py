"""Score fits against the truth, the closed form and the data."""

import math
from typing import TYPE_CHECKING, Annotated

import numpy as np
from pydantic import BaseModel, BeforeValidator
from scipy.special import stdtrit  # the t quantile; scipy.stats costs 3x the import time

from linreg.least_squares import LeastSquares, solve_least_squares
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


class ReferenceInfo(BaseModel):
    """How the closed-form reference was computed and how far it can be trusted.

    R² follows `r2_convention`: "centred" (1 − RSS / Σ(y − ȳ)²) with an intercept,
    "uncentred" (1 − RSS / Σy², as statsmodels) without one; every solver's r2 uses the same.
    """

    method: str
    condition_number: Float
    condition_number_centred: Float | None = None
    expected_digits: Float
    residual_sd: Float
    r_squared: Float
    dof: int
    r2_convention: str
    rank_deficient: bool = False
    warning: str | None = None

    @classmethod
    def of(cls, solution: LeastSquares) -> "ReferenceInfo":
        return cls(
            method=solution.method, condition_number=solution.condition_number,
            condition_number_centred=solution.condition_number_centred, expected_digits=solution.expected_digits,
            residual_sd=solution.residual_sd, r_squared=solution.r_squared, dof=solution.dof,
            r2_convention=r2_convention(solution.fit_intercept), rank_deficient=solution.rank_deficient,
            warning=solution.warning,
        )


def r2_convention(fit_intercept: bool) -> str:
    return "centred" if fit_intercept else "uncentred"


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
    fit_intercept: bool = True  # False: every solver fitted y = x·w; R² is then uncentred
    reference: ReferenceInfo | None = None  # the closed form's method, condition numbers and digits

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


def total_sum_of_squares(moments: Moments, fit_intercept: bool = True) -> float:
    """Σ(y − ȳ)² with an intercept; Σy² without one (the convention of statsmodels and R)."""
    return moments.syy if fit_intercept else moments.syy + moments.n * moments.mean_y**2


def training_mse_r2(
    moments: Moments, coef: np.ndarray, intercept: float, fit_intercept: bool = True
) -> tuple[float, float]:
    """Mean squared error and R² of (coef, intercept) on the data, in float64 (R² as `total_sum_of_squares`)."""
    if not (np.isfinite(coef).all() and math.isfinite(intercept)):
        return math.nan, math.nan
    rss = moments.rss(coef, intercept)
    tss = total_sum_of_squares(moments, fit_intercept)
    r2 = 1.0 - rss / tss if tss > 0 else math.nan
    return rss / moments.n, r2


def evaluate_fit(
    moments: Moments, spec: DataSpec, fit: FitResult, reference: FitResult | None, fit_intercept: bool = True
) -> SolverReport:
    """Score one fit against the true parameters, the reference fit and the data's moments."""
    mse, r2 = training_mse_r2(moments, fit.coef, fit.intercept, fit_intercept)
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


def closed_form_inference(solution: LeastSquares, spec: DataSpec, level: float = 0.95) -> list[Interval]:
    """Standard errors and t-based confidence intervals of the least-squares fit.

    sigma² = RSS / (n - p), p the parameters fitted; Var(θ) = sigma² (XᵀX)⁻¹,
    read off the normal equations or the QR's R factor (`linreg.least_squares`).
    Without an intercept there is no bias row. With no residual degrees of
    freedom, or a rank-deficient design, the errors are NaN and no interval covers.

    Args:
        solution: the least-squares solution (`linreg.least_squares.solve_least_squares`).
    """
    dof = solution.dof
    se = np.concatenate([[solution.intercept_se], solution.coef_se]) if solution.fit_intercept else solution.coef_se
    half = stdtrit(dof, 0.5 + level / 2) * se if dof > 0 else np.full(len(se), math.nan)
    estimates = ([solution.intercept] if solution.fit_intercept else []) + list(solution.coef)
    truth = ([spec.bias] if solution.fit_intercept else []) + list(spec.weights)
    names = (["bias"] if solution.fit_intercept else []) + [f"w{i}" for i in range(spec.d)]
    return [
        Interval(
            parameter=name, estimate=float(b), truth=float(t), std_error=float(s),
            ci_low=float(b - h), ci_high=float(b + h), covers_truth=bool(b - h <= t <= b + h),
        )
        for name, b, t, s, h in zip(names, estimates, truth, se, half)
    ]


def summarize(
    run_id: str, ref: DatasetRef, data, fits: list[FitResult], training_seconds: float | None = None,
    provenance: Provenance | None = None, device: tuple[str, str] | None = None, fit_intercept: bool = True,
) -> RunSummary:
    """Evaluate every fit in one pass over the data (in memory or streamed from parquet).

    The closed form, when it succeeded, is the reference for the distances, and its
    solution gives the inference; without it the solution is computed here (a second
    pass only for ill-conditioned data). A rank-deficient closed form is no reference.

    Args:
        training_seconds: wall time of the training step, when the caller measured it.
        provenance: the code, libraries, host and device that made the run.
        device: the planned device and the reason it was chosen.
        fit_intercept: whether the solvers fitted an intercept (the R² and inference follow).
    """
    moments = accumulate(data.iter_chunks(), ref.spec.d)
    closed = next((f for f in fits if f.solver == REFERENCE and f.least_squares is not None), None)
    solution = closed.least_squares if closed else solve_least_squares(moments, data.iter_chunks, fit_intercept)
    reference = closed if closed is not None and closed.status == Status.OK else None
    return RunSummary(
        run_id=run_id,
        dataset=DatasetInfo.from_ref(ref),
        results=[evaluate_fit(moments, ref.spec, fit, reference, fit_intercept) for fit in fits],
        inference=closed_form_inference(solution, ref.spec),
        fit_intercept=fit_intercept,
        reference=ReferenceInfo.of(solution),
        training_seconds=training_seconds,
        provenance=provenance,
        device=device[0] if device else None,
        device_reason=device[1] if device else None,
    )
