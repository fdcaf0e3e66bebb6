"""Score fits against the truth (generated data), the closed form and the data (training rows and held-out rows)."""

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel
from scipy.special import ndtri, stdtrit  # quantiles; scipy.stats costs 3x the import time

from linreg.diagnosis import Diagnosis, InfluentialRow, ResidualStatistics, RowNumbers, diagnose_reference
from linreg.inference import coefficient_rows, fit_statistics, is_robust
from linreg.least_squares import LeastSquares, solve_least_squares
from linreg.moments import Moments, accumulate
from linreg.provenance import Provenance
from linreg.solvers.base import FitResult, Status
from linreg.solvers.registry import REFERENCE
from linreg.specs import DataSpec
from linreg.storage import DataRef, DatasetRef
from linreg.validation import ReportFloat

if TYPE_CHECKING:
    import pandas as pd


Float = ReportFloat


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
    holdout_mse: Float = math.nan  # on the rows held out (a user's table with a holdout); NaN without
    holdout_r2: Float = math.nan


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
    """Inference for one parameter of the closed-form fit; truth and coverage only for generated data."""

    parameter: str
    estimate: Float
    truth: Float | None = None
    std_error: Float
    ci_low: Float
    ci_high: Float
    covers_truth: bool | None = None


class Coefficient(BaseModel):
    """A row of the reference's table, as statsmodels' OLS summary prints it (`linreg.inference`)."""

    parameter: str
    coefficient: Float
    std_error: Float
    t: Float
    p_value: Float
    ci_low: Float
    ci_high: Float


class FitStatistics(BaseModel):
    """The reference fit as a whole, with statsmodels' names (`linreg.inference.fit_statistics`)."""

    nobs: int
    df_model: int
    df_resid: int
    r_squared: Float
    adj_r_squared: Float
    f_statistic: Float
    f_pvalue: Float
    residual_sd: Float
    condition_number: Float
    condition_number_centred: Float | None = None
    r2_convention: str
    cov_type: str = "nonrobust"  # the covariance of the standard errors and F: nonrobust, or HC0..HC3


class DatasetInfo(BaseModel):
    """The data a run fitted: generated (with its true parameters) or a user's table (with its columns).

    For a table, `path` is the parquet read (the source itself when read in place),
    `sha256` the source's digest, `n` the rows fitted (after any dropped or held out),
    and `weights`, `bias` and `noise` are None: there is no truth.
    """

    path: str
    sha256: str
    n: int
    d: int
    weights: list[float] | None = None
    bias: float | None = None
    noise: float | None = None
    seed: int
    source: str = "generated"  # or "file"
    source_path: str | None = None  # the file or folder the user named
    target: str | None = None
    features: list[str] | None = None
    feature_dtypes: list[str] | None = None
    target_dtype: str | None = None
    rows: int | None = None  # the table's rows after any dropped, before the holdout
    rows_dropped: int = 0
    converted: bool | None = None  # a CSV converted (or a parquet cleaned) under the data root
    holdout: float = 0.0
    n_holdout: int = 0

    @property
    def has_truth(self) -> bool:
        return self.weights is not None and self.bias is not None

    @property
    def names(self) -> list[str]:
        """The features' names: a table's columns, or x0..x{d-1} for generated data."""
        return list(self.features) if self.features else [f"x{i}" for i in range(self.d)]

    @classmethod
    def of(cls, data: "DatasetInfo | DataSpec") -> "DatasetInfo":
        """`data` as DatasetInfo: a generating spec becomes the info of its (unnamed) dataset."""
        if isinstance(data, DataSpec):
            return cls(path="", sha256="", n=data.n, d=data.d, weights=data.weights, bias=data.bias,
                       noise=data.noise, seed=data.seed)
        return data

    @classmethod
    def from_ref(cls, ref: DataRef) -> "DatasetInfo":
        if isinstance(ref, DatasetRef):
            spec = ref.spec
            return cls(
                path=ref.path, sha256=ref.sha256, n=spec.n, d=spec.d, weights=spec.weights,
                bias=spec.bias, noise=spec.noise, seed=spec.seed,
            )
        t = ref.table
        return cls(
            path=t.path, sha256=t.source_sha256, n=ref.n, d=t.d, seed=ref.seed, source="file",
            source_path=t.source, target=t.target, features=list(t.features),
            feature_dtypes=list(t.feature_dtypes), target_dtype=t.target_dtype, rows=t.rows,
            rows_dropped=t.rows_dropped, converted=t.converted, holdout=ref.holdout, n_holdout=ref.n_holdout,
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
    coefficients: list[Coefficient] | None = None  # the reference's table (statsmodels' columns), by name
    fit_statistics: FitStatistics | None = None  # R², adjusted R², F, observations, condition number
    scale: str | None = None  # how the iterative solvers saw the data: "none" or "standard"
    cov_type: str = "nonrobust"  # the reference's standard errors: nonrobust, or HC0..HC3 (statsmodels' cov_type)
    residual_statistics: ResidualStatistics | None = None  # Durbin–Watson, Omnibus, Jarque–Bera, skew, kurtosis
    influential_rows: list[InfluentialRow] | None = None  # the rows of largest Cook's distance, largest first

    def statuses(self) -> dict[Status, list[str]]:
        """Solver names grouped by status."""
        groups: dict[Status, list[str]] = {}
        for row in self.results:
            groups.setdefault(row.status, []).append(row.solver)
        return groups

    def to_frame(self) -> "pd.DataFrame":
        """One row per solver, with the run's id, time, data spec and provenance on every row.

        The same columns, built by the same code (`linreg.frames`), as a row of `linreg.results.load_history`.
        """
        # Deferred for start-up time: linreg.frames imports pandas, which a training worker never needs.
        from linreg.frames import summaries_frame

        return summaries_frame([self])


def total_sum_of_squares(moments: Moments, fit_intercept: bool = True) -> float:
    """Σ(y − ȳ)² with an intercept; Σy² without one (the convention of statsmodels and R), in the
    moments' units (`linreg.moments.Moments.y_exponent`)."""
    return moments.syy if fit_intercept else moments.syy + moments.n * moments.mean_y**2


def training_mse_r2(
    moments: Moments, coef: np.ndarray, intercept: float, fit_intercept: bool = True
) -> tuple[float, float]:
    """Mean squared error and R² of (coef, intercept) on the data, in float64 (R² as `total_sum_of_squares`).

    On data summed in power-of-two units (values beyond ~1e154) both are computed in those
    units; the MSE is then NaN when it lies beyond float64's range (`MSE_OUT_OF_RANGE` says why).
    """
    if not (np.isfinite(coef).all() and math.isfinite(intercept)):
        return math.nan, math.nan
    rss = moments.rss_in_units(*moments.in_units(coef, intercept))
    tss = total_sum_of_squares(moments, fit_intercept)
    r2 = 1.0 - rss / tss if tss > 0 else math.nan
    mse = rss / moments.n
    if moments.scaled and math.isfinite(mse):
        with np.errstate(over="ignore", under="ignore"):
            mse = float(np.ldexp(mse, 2 * moments.y_exponent))
        mse = mse if math.isfinite(mse) else math.nan
    return mse, r2


# Said of a fit whose MSE is NaN while its R² is not: the squares of the residuals are beyond float64.
MSE_OUT_OF_RANGE = ("MSE not computable: the squared residuals are beyond float64's range (target values beyond ~1e154); "
                    "R² is computed in power-of-two units")


def parameter_distance(a_coef: np.ndarray, a_intercept: float, b_coef: np.ndarray, b_intercept: float) -> float:
    """The Euclidean distance between two (coef, intercept) parameter vectors; scaled by its largest
    difference when the squares overflow (parameters beyond ~1e154), so it is not inf for lack of range."""
    with np.errstate(over="ignore", invalid="ignore"):
        delta = np.append(a_coef - b_coef, a_intercept - b_intercept)
        distance = float(np.linalg.norm(delta))
        if math.isinf(distance) and np.isfinite(delta).all():
            largest = float(np.max(np.abs(delta)))
            distance = float(largest * np.linalg.norm(delta / largest))
    return distance


def holdout_scores(moments: Moments | None, coef: np.ndarray, intercept: float,
                   fit_intercept: bool = True) -> tuple[float, float]:
    """MSE and R² on the held-out rows (their own mean for the centred R²); NaN without a holdout."""
    if moments is None or moments.n == 0:
        return math.nan, math.nan
    return training_mse_r2(moments, coef, intercept, fit_intercept)


def evaluate_fit(
    moments: Moments, truth: "DatasetInfo | DataSpec | None", fit: FitResult, reference: FitResult | None,
    fit_intercept: bool = True, held_out: Moments | None = None,
) -> SolverReport:
    """Score one fit against the true parameters (when `truth` has them), the reference fit,
    the training rows' moments and, with a holdout, the held-out rows' moments."""
    truth = None if truth is None else DatasetInfo.of(truth)
    mse, r2 = training_mse_r2(moments, fit.coef, fit.intercept, fit_intercept)
    holdout_mse, holdout_r2 = holdout_scores(held_out, fit.coef, fit.intercept, fit_intercept)
    distance = math.nan
    if reference is not None:
        distance = parameter_distance(fit.coef, fit.intercept, reference.coef, reference.intercept)
    final_loss = float(fit.loss_history[-1]) if len(fit.loss_history) else mse
    message = fit.message
    if math.isnan(mse) and math.isfinite(r2):  # the residuals' squares overflow, not the fit
        message = f"{message}; {MSE_OUT_OF_RANGE}" if message else MSE_OUT_OF_RANGE
        final_loss = final_loss if math.isfinite(final_loss) else math.nan
    if truth is not None and truth.has_truth:
        weights_error = np.abs(fit.coef - np.asarray(truth.weights)).tolist()
        bias_error = abs(fit.intercept - truth.bias)
    else:  # a user's table: no truth to score against; the distance to the reference says it
        weights_error, bias_error = [math.nan] * len(fit.coef), math.nan
    return SolverReport(
        solver=fit.solver, status=fit.status,
        weights=fit.coef.tolist(), bias=fit.intercept, seconds=fit.seconds, epochs=fit.epochs,
        final_loss=final_loss, weights_abs_error=weights_error, bias_abs_error=bias_error,
        distance_to_closed_form=distance, mse=mse, r2=r2, device=fit.device,
        message=message, diverged_epoch=fit.diverged_epoch, worker=fit.worker,
        holdout_mse=holdout_mse, holdout_r2=holdout_r2,
    )


def closed_form_inference(
    solution: LeastSquares, dataset: "DatasetInfo | DataSpec", level: float = 0.95, covariance=None,
) -> list[Interval]:
    """Standard errors and t-based confidence intervals of the least-squares fit.

    sigma² = RSS / (n - p), p the parameters fitted; Var(θ) = sigma² (XᵀX)⁻¹,
    read off the normal equations or the QR's R factor (`linreg.least_squares`).
    With a robust `covariance` (HC0..HC3, `linreg.diagnostics`) its standard errors, and
    normal quantiles, as statsmodels does for a robust cov_type.
    Without an intercept there is no bias row. With no residual degrees of
    freedom, or a rank-deficient design, the errors are NaN and no interval covers.
    For a user's table there is no truth: `truth` and `covers_truth` are None.

    Args:
        solution: the least-squares solution (`linreg.least_squares.solve_least_squares`).
    """
    dataset = DatasetInfo.of(dataset)
    dof = solution.dof
    source = covariance if is_robust(covariance) else solution
    se = np.concatenate([[source.intercept_se], source.coef_se]) if solution.fit_intercept else np.asarray(source.coef_se)
    quantile = ndtri(0.5 + level / 2) if is_robust(covariance) else stdtrit(dof, 0.5 + level / 2)
    half = quantile * se if dof > 0 else np.full(len(se), math.nan)
    estimates = ([solution.intercept] if solution.fit_intercept else []) + list(solution.coef)
    if dataset.has_truth:
        truth = ([dataset.bias] if solution.fit_intercept else []) + list(dataset.weights)
    else:
        truth = [None] * len(estimates)
    names = (["bias"] if solution.fit_intercept else []) + (
        dataset.names if dataset.features else [f"w{i}" for i in range(dataset.d)])
    return [
        Interval(
            parameter=name, estimate=float(b), truth=None if t is None else float(t), std_error=float(s),
            ci_low=float(b - h), ci_high=float(b + h),
            covers_truth=None if t is None else bool(b - h <= t <= b + h),
        )
        for name, b, t, s, h in zip(names, estimates, truth, se, half)
    ]


def named_reference(fit: FitResult, dataset: DatasetInfo) -> FitResult:
    """The closed form's fit with its warning naming a table's columns (a solver knows only w0, w1, ...);
    any other fit, or one of generated data, as it is."""
    if fit.least_squares is None or not dataset.features:
        return fit
    solution = fit.least_squares.named(dataset.features)
    message = solution.warning if fit.message == fit.least_squares.warning else fit.message
    return replace(fit, least_squares=solution, message=message)


def reference_info(solution: LeastSquares, results: list[SolverReport]) -> ReferenceInfo:
    """`ReferenceInfo.of(solution)`, its warning saying also when the MSE is beyond float64's range:
    the console's reference line is where a run's warnings are read."""
    info = ReferenceInfo.of(solution)
    if not any(r.message and MSE_OUT_OF_RANGE in r.message for r in results):
        return info
    return info.model_copy(update={"warning": f"{info.warning}; {MSE_OUT_OF_RANGE}" if info.warning
                                   else MSE_OUT_OF_RANGE})


@dataclass(frozen=True)
class Evaluation:
    """A run's summary, and its reference's diagnostics with the arrays its figures draw."""

    summary: RunSummary
    diagnosis: Diagnosis


def summarize(*args, **kwargs) -> RunSummary:
    """`evaluate_run`'s summary alone."""
    return evaluate_run(*args, **kwargs).summary


def evaluate_run(
    run_id: str, ref: DataRef, data, fits: list[FitResult], training_seconds: float | None = None,
    provenance: Provenance | None = None, device: tuple[str, str] | None = None, fit_intercept: bool = True,
    held_out=None, scale: str | None = None, cov: str = "nonrobust",
) -> Evaluation:
    """Evaluate every fit in one pass over the data (in memory or streamed from parquet), then
    diagnose the reference in one more (`linreg.diagnosis`).

    The closed form, when it succeeded, is the reference for the distances, and its
    solution gives the inference; without it the solution is computed here (a second
    pass only for ill-conditioned data). A rank-deficient closed form is no reference.

    Args:
        data: the training rows (every row of generated data).
        training_seconds: wall time of the training step, when the caller measured it.
        provenance: the code, libraries, host and device that made the run.
        device: the planned device and the reason it was chosen.
        fit_intercept: whether the solvers fitted an intercept (the R² and inference follow).
        held_out: the rows held out from every fit (a source like `data`), scored with one more pass.
        scale: how the iterative solvers saw the data ("none" or "standard"), recorded.
        cov: the covariance of the reference's standard errors: "nonrobust", or HC0..HC3.
    """
    moments = accumulate(data.iter_chunks(), ref.d)
    held = accumulate(held_out.iter_chunks(), ref.d) if held_out is not None else None
    dataset = DatasetInfo.from_ref(ref)
    fits = [named_reference(fit, dataset) for fit in fits]
    closed = next((f for f in fits if f.solver == REFERENCE and f.least_squares is not None), None)
    solution = closed.least_squares if closed else solve_least_squares(moments, data.iter_chunks, fit_intercept,
                                                                       dataset.features)
    reference = closed if closed is not None and closed.status == Status.OK else None
    results = [evaluate_fit(moments, dataset, fit, reference, fit_intercept, held) for fit in fits]
    numbers = RowNumbers(rows=dataset.rows or dataset.n, holdout=dataset.holdout, seed=dataset.seed)
    diagnosis = diagnose_reference(solution, moments, data.iter_chunks, numbers, cov, seed=dataset.seed)
    covariance = diagnosis.covariance
    summary = RunSummary(
        run_id=run_id,
        dataset=dataset,
        results=results,
        inference=closed_form_inference(solution, dataset, covariance=covariance),
        fit_intercept=fit_intercept,
        reference=reference_info(solution, results),
        coefficients=[Coefficient(**row) for row in coefficient_rows(solution, dataset.names, covariance=covariance)],
        fit_statistics=FitStatistics(**fit_statistics(solution, covariance)),
        scale=scale,
        cov_type=cov,
        residual_statistics=diagnosis.residual_statistics,
        influential_rows=diagnosis.influential_rows,
        training_seconds=training_seconds,
        provenance=provenance,
        device=device[0] if device else None,
        device_reason=device[1] if device else None,
    )
    return Evaluation(summary, diagnosis)
