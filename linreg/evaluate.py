"""Score fits against the truth, the closed form and the data."""

import math

import numpy as np
from pydantic import BaseModel
from scipy import stats

from linreg.data import Dataset
from linreg.solvers.base import FitResult
from linreg.solvers.closed_form import design_matrix
from linreg.storage import DatasetRef


class SolverReport(BaseModel):
    """One solver's row of the summary. NaN where a value does not exist (a failed fit)."""

    solver: str
    status: str
    weights: list[float]
    bias: float
    seconds: float
    epochs: int
    final_loss: float
    weights_abs_error: list[float]
    bias_abs_error: float
    distance_to_closed_form: float
    mse: float
    r2: float
    device: str
    message: str | None = None
    diverged_epoch: int | None = None
    worker: str | None = None


class Interval(BaseModel):
    """Inference for one parameter of the closed-form fit."""

    parameter: str
    estimate: float
    truth: float
    std_error: float
    ci_low: float
    ci_high: float
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

    def statuses(self) -> dict[str, list[str]]:
        """Solver names grouped by status."""
        groups: dict[str, list[str]] = {}
        for row in self.results:
            groups.setdefault(row.status, []).append(row.solver)
        return groups


def training_mse_r2(data: Dataset, coef: np.ndarray, intercept: float) -> tuple[float, float]:
    """Mean squared error and R² of (coef, intercept) on the data, in float64."""
    if not (np.isfinite(coef).all() and math.isfinite(intercept)):
        return math.nan, math.nan
    with np.errstate(over="ignore", invalid="ignore"):
        residual = data.y - (intercept + data.x @ coef)
        rss = float(residual @ residual)
    tss = float(((data.y - data.y.mean()) ** 2).sum())
    return rss / data.n, (1.0 - rss / tss) if tss > 0 else math.nan


def evaluate_fit(data: Dataset, fit: FitResult, reference: FitResult | None) -> SolverReport:
    """Score one fit against the true parameters, the reference fit and the data."""
    spec = data.spec
    mse, r2 = training_mse_r2(data, fit.coef, fit.intercept)
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


def closed_form_inference(data: Dataset, level: float = 0.95) -> list[Interval]:
    """Standard errors and t-based confidence intervals of the least-squares fit.

    Uses sigma² = RSS / (n - p) and Cov = sigma² (XᵀX)⁻¹ with p = d + 1. With no
    residual degrees of freedom the errors are NaN and no interval covers.
    """
    spec = data.spec
    design = design_matrix(data.x)
    beta, *_ = np.linalg.lstsq(design, data.y, rcond=None)
    dof = data.n - design.shape[1]
    if dof > 0:
        residual = data.y - design @ beta
        sigma2 = float(residual @ residual) / dof
        se = np.sqrt(sigma2 * np.diag(np.linalg.pinv(design.T @ design)))
        half = stats.t.ppf(0.5 + level / 2, dof) * se
    else:
        se = half = np.full(beta.shape, math.nan)
    truth = [spec.bias, *spec.weights]
    names = ["bias"] + [f"w{i}" for i in range(spec.d)]
    return [
        Interval(
            parameter=name, estimate=float(b), truth=float(t), std_error=float(s),
            ci_low=float(b - h), ci_high=float(b + h), covers_truth=bool(b - h <= t <= b + h),
        )
        for name, b, t, s, h in zip(names, beta, truth, se, half)
    ]


def summarize(run_id: str, ref: DatasetRef, data: Dataset, fits: list[FitResult]) -> RunSummary:
    """Evaluate every fit, using the closed form (when it succeeded) as the reference."""
    reference = next((f for f in fits if f.solver == "closed_form" and f.status == "ok"), None)
    return RunSummary(
        run_id=run_id,
        dataset=DatasetInfo.from_ref(ref),
        results=[evaluate_fit(data, fit, reference) for fit in fits],
        inference=closed_form_inference(data),
    )
