"""The deterministic sample of rows, and the panels' and partial-regression arrays on it."""

import numpy as np

from linreg.data import holdout_mask
from linreg.diagnostics.bread import Bread
from linreg.diagnostics.influence import _influence_of
from linreg.diagnostics.passes import _Fit, _Rows
from linreg.diagnostics.results import Panels, PartialRegression
from linreg.least_squares import LeastSquares

DEFAULT_MAX_ROWS = 100_000
# Added to the caller's seed for the sample's row hash, so that a sample drawn with the seed of a
# holdout split (`holdout_mask`, the same hash) is not the held-out rows themselves.
SAMPLE_SEED_SALT = 0x5D1A_6E05


class _Sample:
    """The rows of at most `max_rows`, chosen by a hash of each row's position and the seed.

    With n > max_rows, a row is taken when `linreg.data.holdout_mask` (SplitMix64 of its position)
    holds it out at the fraction max_rows / n: Binomial(n, max_rows/n) rows, the same however the
    data is chunked; when that count passes max_rows, the last ones are dropped (a few √max_rows
    rows, from the data's end). With n ≤ max_rows, every row.
    """

    def __init__(self, n: int, max_rows: int, seed: int, bread: Bread):
        self.max_rows, self.seed, self.bread = max_rows, (seed + SAMPLE_SEED_SALT) % 2**64, bread
        self.fraction = max_rows / n if n > max_rows else None
        self.taken = 0
        self.parts: list[tuple] = []

    def add(self, rows: _Rows) -> None:
        k = len(rows.y)
        index = (np.flatnonzero(holdout_mask(rows.start, k, self.fraction, self.seed)) if self.fraction
                 else np.arange(k))[: self.max_rows - self.taken]
        if not len(index):
            return
        self.taken += len(index)
        partial = self.bread.partial_columns(rows.q[index])
        self.parts.append((rows.start + index + 1, rows.y[index], rows.residual[index], rows.leverage[index], partial))

    def columns(self, d: int) -> tuple[np.ndarray, ...]:
        """(row numbers, y, residual, leverage, partial columns (m, d)) of every row taken."""
        if not self.parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, d))
        return tuple(np.concatenate(column) for column in zip(*self.parts))


def _panels_of(sample: _Sample, squares: float, fit: _Fit) -> Panels:
    numbers, y, residual, leverage, _ = sample.columns(fit.moments.d)
    cooks, standardized, _ = _influence_of(residual, leverage, squares, fit)
    y_exponent = fit.moments.exponents[1]
    with np.errstate(over="ignore"):
        fitted = np.ldexp(y - np.ldexp(residual, fit.residual_exponent), y_exponent)
        residuals = np.ldexp(residual, fit.y_exponent)
    return Panels(numbers.astype(np.int64), fitted, residuals, standardized, leverage, cooks, fit.p,
                  sample.fraction is not None)


def _partial_of(sample: _Sample, solution: LeastSquares, fit: _Fit) -> PartialRegression:
    """y's residual on the others is e + w_j·(x_j's residual): FWL, with e the fit's own residual."""
    numbers, _, residual, _, partial = sample.columns(fit.moments.d)
    x_exponent, y_exponent = fit.moments.exponents
    with np.errstate(over="ignore", invalid="ignore"):
        y_partial = np.ldexp(residual, fit.residual_exponent)[:, None] + partial * fit.coef
        return PartialRegression(numbers.astype(np.int64), np.ldexp(partial, np.asarray(x_exponent, dtype=int)),
                                 np.ldexp(y_partial, y_exponent), np.asarray(solution.coef, dtype=np.float64).copy(),
                                 sample.fraction is not None)
