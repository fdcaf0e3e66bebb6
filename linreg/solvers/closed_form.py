"""Least squares by `numpy.linalg.lstsq`: the reference every solver is checked against."""

from time import perf_counter

import numpy as np

from linreg.data import Dataset
from linreg.solvers.base import FitResult
from linreg.specs import SolverSpec


def design_matrix(x: np.ndarray) -> np.ndarray:
    """Return [1, x]: (n, d + 1), intercept column first."""
    return np.column_stack([np.ones(x.shape[0]), x])


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    start = perf_counter()
    beta, *_ = np.linalg.lstsq(design_matrix(data.x), data.y, rcond=None)
    return FitResult(
        solver="closed_form", coef=beta[1:], intercept=float(beta[0]),
        seconds=perf_counter() - start, device="cpu",
    )
