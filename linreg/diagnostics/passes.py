"""The streamed pass: the fit in the moments' units, and blocks of rows with residuals and leverages fed to sinks."""

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from threadpoolctl import threadpool_limits

from linreg.diagnostics.bread import Bread, bread_of
from linreg.diagnostics.chunks import Chunks, _checked_chunks
from linreg.least_squares import LeastSquares, feature_names, moments_in_range
from linreg.moments import Moments, block_rows

# A leverage this close to 1 is 1: the row is fitted exactly, and 1 − h_i is rounding.
LEVERAGE_TOLERANCE = 1e-10


@dataclass(frozen=True)
class _Fit:
    """The reference fit in the moments' units, with what every pass needs."""

    moments: Moments
    coef: np.ndarray  # in the moments' units
    offset: float  # ȳ − b − x̄·w, in the moments' units
    bread: Bread | None
    residual_exponent: int  # residuals are divided by 2**this within the pass
    fit_intercept: bool

    @property
    def n(self) -> int:
        return self.moments.n

    @property
    def p(self) -> int:
        return self.moments.d + int(self.fit_intercept)

    @property
    def dof(self) -> int:
        return self.n - self.p

    @property
    def y_exponent(self) -> int:
        """Residuals (as the pass holds them) times 2**this are in y's units."""
        return self.residual_exponent + self.moments.exponents[1]


@dataclass(frozen=True)
class _Rows:
    """A block of consecutive rows as the pass sees it: `start` is the 0-based index of its first row.

    y is in the moments' units; residual is divided further by 2**residual_exponent;
    q (k, p) and leverage (k,) are None without a bread."""

    start: int
    y: np.ndarray
    residual: np.ndarray
    q: np.ndarray | None
    leverage: np.ndarray | None


def _prepare(solution: LeastSquares, moments: Moments, chunks: Chunks, need_bread: bool = True) -> _Fit:
    """Check the fit against the moments, bring both into the moments' units, take the bread."""
    if len(solution.coef) != moments.d or solution.n != moments.n:
        raise ValueError(f"solution: a fit of {solution.n} rows and {len(solution.coef)} features does not "
                         f"match moments of {moments.n} rows and {moments.d} features")
    if need_bread and solution.rank_deficient:
        raise ValueError("solution: the design is rank-deficient, so (X'X)^-1 does not exist: leverage, "
                         "robust covariances and influence need a full-rank fit")
    moments = moments_in_range(moments, chunks, feature_names(moments.d))
    coef, intercept = moments.in_units(solution.coef, solution.intercept)
    offset = float(moments.mean_y - intercept - moments.mean_x @ coef)
    rss = solution.sums_of_squares[0]
    exponent = math.frexp(math.sqrt(rss / moments.n))[1] if 0 < rss < math.inf else 0
    bread = bread_of(moments, chunks, solution.fit_intercept) if need_bread else None
    return _Fit(moments, coef, offset, bread, exponent, solution.fit_intercept)


def _rows(fit: _Fit, chunks: Chunks) -> Iterator[_Rows]:
    """Every row, a cache-sized block at a time, with its residual (and whitened row and leverage,
    given a bread).

    Raises:
        ValueError: a chunk's x is not (k, d) beside a (k,) y, or the chunks' rows are not the moments'.
    """
    start, rows = 0, block_rows(fit.moments.d + 1)
    for x, y in _checked_chunks(fit.moments, chunks):
        for offset in range(0, len(y), rows):
            yield _rows_of(fit, start + offset, x[offset : offset + rows], y[offset : offset + rows])
        start += len(y)
    if start != fit.n:
        raise ValueError(f"chunks: gave {start} rows, but the fit and its moments hold {fit.n}")


def _rows_of(fit: _Fit, start: int, x: np.ndarray, y: np.ndarray) -> _Rows:
    residual = (y - fit.moments.mean_y) - (x - fit.moments.mean_x) @ fit.coef + fit.offset
    q = fit.bread.whitened(x) if fit.bread is not None else None
    return _Rows(start, y, np.ldexp(residual, -fit.residual_exponent), q,
                 np.sum(q**2, axis=1) if q is not None else None)


def _run(fit: _Fit, chunks: Chunks, sinks: list) -> None:
    """One pass over the rows, each chunk fed to every sink.

    BLAS is held to one thread, as `linreg.moments.accumulate` holds it: the products here are
    thin (p columns), and multi-threaded calls on a loaded machine stall for milliseconds each."""
    with threadpool_limits(1, user_api="blas"):
        for rows in _rows(fit, chunks):
            for sink in sinks:
                sink.add(rows)


def _exact(leverage: np.ndarray) -> np.ndarray:
    """Which rows have leverage 1 (within LEVERAGE_TOLERANCE)."""
    return leverage >= 1.0 - LEVERAGE_TOLERANCE


def _one_minus(leverage: np.ndarray) -> np.ndarray:
    """1 − h_i, NaN where h_i is 1: every ratio with it is then NaN."""
    return np.where(_exact(leverage), np.nan, 1.0 - leverage)
