"""Least squares: the reference every solver is checked against.

The fit is read off the centred normal equations, whose moments
(`linreg.moments.Moments`) are gathered in one cache-blocked pass over x and
y: no design matrix is built, so memory stays at the data itself (or at one
row group, when the data is streamed from parquet), and each block is read
from RAM once. Two checks keep it as accurate as `numpy.linalg.lstsq`:

- raw sums are centred only when little cancels (the mean is small against
  the spread); otherwise a second pass sums the centred data itself; row
  groups of a streamed file are merged by Chan, Golub and LeVeque's update;
- the centred system is solved only when its correlation matrix is well
  conditioned. Otherwise (collinear or constant features, n < 2) data in
  memory is solved by lstsq on [1, x]; streamed data, which cannot be held,
  gets the minimum-norm solution of the centred moments (`Moments.solve`).
  Either way the status stays "ok".

On a CUDA device the moments are summed there, in float64, from [x, y, 1]
moved once (`linreg.moments.moments_on_device`); the same checks apply.
"""

from functools import partial
from time import perf_counter
from typing import Callable

import numpy as np

from linreg.data import DataSource
from linreg.moments import Moments, accumulate, moments_on_device, solve_centred
from linreg.solvers.base import FitResult, SolverSpec


def design_matrix(x: np.ndarray) -> np.ndarray:
    """Return [1, x]: (n, d + 1), intercept column first."""
    return np.column_stack([np.ones(x.shape[0]), x])


def lstsq_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares by `numpy.linalg.lstsq` on [1, x]: the minimum-norm solution when rank deficient."""
    beta, *_ = np.linalg.lstsq(design_matrix(x), y, rcond=None)
    return beta[1:], float(beta[0])


def fit(data: DataSource, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Solve least squares exactly: in one pass over data in memory, or one row group at a time when streamed.

    `spec.device` alone is read: on CUDA the moments are summed there in float64
    (`linreg.moments.moments_on_device`); the small solve stays on the CPU.

    Args:
        progress: called with the rows done: per chunk as it is summed when streamed, once in memory.
    """
    start = perf_counter()
    cuda = spec.device.startswith("cuda")
    of_chunk = partial(moments_on_device, device=spec.device) if cuda else Moments.of_chunk
    arrays = data.arrays()
    if arrays is not None:
        solution = solve_centred(of_chunk(*arrays)) if data.n else None
        coef, intercept = solution if solution is not None else lstsq_fit(*arrays)
        if progress:
            progress(data.n)
    else:
        coef, intercept = accumulate(data.iter_chunks(), data.d, progress, of_chunk).solve()
    return FitResult(
        solver="closed_form", coef=coef, intercept=intercept,
        seconds=perf_counter() - start, device=spec.device if cuda else "cpu",
    )
