"""Least squares: the reference every solver is checked against.

The moments (`linreg.moments.Moments`) are gathered in one cache-blocked pass
over x and y (on a CUDA device, in float64, when `spec.device` names one): no
design matrix is built, so memory stays at the data itself, or at one row group
when the data is streamed from parquet. `linreg.least_squares` then reads the
fit off the normal equations when that keeps ~10 digits, and otherwise takes
one more pass, a TSQR in extended precision on the CPU, which is right to the
digits the float64 data determine (NIST StRD: docs/accuracy.md).

The result says how far it can be trusted: the condition numbers, the method,
and a warning when digits were lost. A numerically rank-deficient design ends
`rank_deficient`, with the minimum-norm solution and the columns involved.
"""

from dataclasses import replace
from functools import partial
from time import perf_counter
from typing import Callable

from linreg.data import DataSource
from linreg.least_squares import solve_least_squares
from linreg.moments import Moments, accumulate, moments_on_device
from linreg.solvers.base import FitResult, SolverSpec, Status


def fit(data: DataSource, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Solve least squares: moments in one pass, then the normal equations or a QR pass.

    `spec.device` and `spec.fit_intercept` alone are read: on CUDA the moments are
    summed there in float64 (`linreg.moments.moments_on_device`); the small solve,
    and the QR pass when the data need it, run on the CPU.

    Args:
        progress: called with the rows done: per chunk as it is summed when streamed, once in memory;
            the QR pass calls it with 0 rows per block (so a time limit still stops it).
    """
    start = perf_counter()
    cuda = spec.device.startswith("cuda")
    of_chunk = partial(moments_on_device, device=spec.device) if cuda else Moments.of_chunk
    arrays = data.arrays()
    if arrays is not None and data.n:
        moments = of_chunk(*arrays)
        if progress:
            progress(data.n)
    else:
        moments = accumulate(data.iter_chunks(), data.d, progress, of_chunk)
    tick = (lambda rows: progress(0)) if progress else None
    solution = solve_least_squares(moments, data.iter_chunks, spec.fit_intercept,
                                   names=getattr(data, "feature_names", None), progress=tick)
    result = FitResult(
        solver="closed_form", coef=solution.coef, intercept=solution.intercept,
        seconds=perf_counter() - start, device=spec.device if cuda else "cpu",
        least_squares=solution, message=solution.warning,
    )
    return replace(result, status=Status.RANK_DEFICIENT) if solution.rank_deficient else result
