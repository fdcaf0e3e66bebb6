"""Least squares: the reference every solver is checked against.

The fit is read off the centred normal equations, whose moments are gathered
in one cache-blocked pass over x and y: no design matrix is built, so memory
stays at the data itself, and each block is read from RAM once. Two checks
keep it as accurate as `numpy.linalg.lstsq`, which it falls back to:

- raw sums are centred only when little cancels (the mean is small against
  the spread); otherwise a second pass sums the centred data itself;
- the centred system is solved only when its correlation matrix is well
  conditioned; otherwise (collinear or constant features, n < 2) it is lstsq.
"""

from dataclasses import dataclass
from time import perf_counter

import numpy as np

from linreg.data import Dataset
from linreg.solvers.base import FitResult
from linreg.specs import SolverSpec

# Elements of x per block: 2 MiB of float64, small enough to stay in cache for
# the products taken of each block, large enough that per-call costs vanish.
BLOCK_ELEMENTS = 1 << 18
# Centring raw sums loses log10(raw / centred) digits; beyond 2 digits, sum the
# centred data instead.
MAX_CANCELLATION = 1e2
# The normal equations square the condition number of the centred design; past
# this condition number of the correlation matrix, their error could reach 1e-10.
MAX_CONDITION = 1e6


@dataclass(frozen=True)
class Moments:
    """Means and centred cross-products of x and y.

    Attributes:
        n: rows.
        mean_x: (d,) column means of x.
        mean_y: mean of y.
        cxx: (d, d) sum of (x - mean_x)(x - mean_x)^T over rows.
        cxy: (d,) sum of (x - mean_x)(y - mean_y).
    """

    n: int
    mean_x: np.ndarray
    mean_y: float
    cxx: np.ndarray
    cxy: np.ndarray


def design_matrix(x: np.ndarray) -> np.ndarray:
    """Return [1, x]: (n, d + 1), intercept column first."""
    return np.column_stack([np.ones(x.shape[0]), x])


def block_rows(d: int) -> int:
    """Rows per block so that a block of x holds about BLOCK_ELEMENTS values."""
    return max(256, BLOCK_ELEMENTS // d)


def blocks(x: np.ndarray, y: np.ndarray):
    """Yield views (x_block (m, d), y_block as a column (m, 1)) of consecutive rows."""
    rows = block_rows(x.shape[1])
    column = y.reshape(-1, 1)
    for start in range(0, len(y), rows):
        yield x[start : start + rows], column[start : start + rows]


def raw_sums(x: np.ndarray, y: np.ndarray):
    """Sums over rows of x xᵀ, x y, x, y² and y, in one pass of cache-sized blocks.

    Every product is 2-D, so NumPy hands it to BLAS (gemm, gemv, syrk); column
    sums as products with ones run several times faster than `sum(axis=0)`.

    Returns:
        xx (d, d), xy (d,), sx (d,), yy, sy.
    """
    return (_narrow_sums if x.shape[1] == 1 else _wide_sums)(x, y)


def _narrow_sums(x: np.ndarray, y: np.ndarray):
    """One column: five products of the blocks as they are (copying y anywhere costs more)."""
    xx, xy, sx, yy, sy = (np.zeros((1, 1)) for _ in range(5))
    ones = np.ones((min(block_rows(1), len(y)), 1))
    for xb, yb in blocks(x, y):
        one = ones[: len(yb)]
        xx += xb.T @ xb
        xy += xb.T @ yb
        sx += xb.T @ one
        yy += yb.T @ yb
        sy += yb.T @ one
    return xx, xy[0], sx[0], yy[0, 0], sy[0, 0]


def _wide_sums(x: np.ndarray, y: np.ndarray):
    """Several columns: pairing y with ones reads each block of x twice instead of three times."""
    d = x.shape[1]
    xx, x_pair, y_pair = np.zeros((d, d)), np.zeros((d, 2)), np.zeros((1, 2))
    pairs = np.ones((min(block_rows(d), len(y)), 2))  # column 0 takes each block of y
    for xb, yb in blocks(x, y):
        pair = pairs[: len(yb)]
        pair[:, :1] = yb
        xx += xb.T @ xb
        x_pair += xb.T @ pair
        y_pair += yb.T @ pair
    return xx, x_pair[:, 0], x_pair[:, 1], y_pair[0, 0], y_pair[0, 1]


def centred_moments(x: np.ndarray, y: np.ndarray) -> Moments:
    """Means and centred cross-products of x (n, d) and y (n,), without copying either.

    One pass takes raw sums (`raw_sums`); each block is read from RAM once and
    stays in cache for its products. When centring those sums would cancel more
    than MAX_CANCELLATION allows (a mean large against its spread), a second pass
    sums products of the centred data instead.
    """
    n = len(y)
    xx, xy, sx, yy, sy = raw_sums(x, y)
    mean_x, mean_y = sx / n, sy / n
    cxx = xx - n * np.outer(mean_x, mean_x)
    cxy = xy - n * mean_x * mean_y
    raw = np.append(np.diag(xx), yy)
    centred = np.append(np.diag(cxx), yy - n * mean_y**2)
    if not np.all(raw <= MAX_CANCELLATION * centred):
        return centred_products(x, y, mean_x, mean_y)
    return Moments(n=n, mean_x=mean_x, mean_y=float(mean_y), cxx=cxx, cxy=cxy)


def centred_products(x: np.ndarray, y: np.ndarray, mean_x: np.ndarray, mean_y: float) -> Moments:
    """Second pass: moments from the centred data itself, the means refined on the way.

    The sums of the centred data are zero but for the rounding of the first
    means; they correct both the means and the cross-products (the corrected
    two-pass algorithm of Chan, Golub & LeVeque, 1983).
    """
    d = x.shape[1]
    cxx, cxy, sx, sy = np.zeros((d, d)), np.zeros(d), np.zeros(d), 0.0
    for xb, yb in blocks(x, y):
        xc, yc = xb - mean_x, yb[:, 0] - mean_y
        cxx += xc.T @ xc
        cxy += xc.T @ yc
        sx += xc.sum(axis=0)
        sy += yc.sum()
    n = len(y)
    return Moments(
        n=n, mean_x=mean_x + sx / n, mean_y=float(mean_y + sy / n),
        cxx=cxx - np.outer(sx, sx) / n, cxy=cxy - sx * sy / n,
    )


def solve_centred(moments: Moments) -> tuple[np.ndarray, float] | None:
    """Solve the centred normal equations, or None when they are not safe to solve.

    Returns:
        (coef (d,), intercept), or None when n < 2, a feature is constant, or the
        correlation matrix of x has a condition number above MAX_CONDITION.
    """
    variances = np.diag(moments.cxx)
    finite = all(np.isfinite(a).all() for a in (moments.cxx, moments.cxy, moments.mean_x, moments.mean_y))
    if moments.n < 2 or not finite or not np.all(variances > 0):
        return None
    scale = np.sqrt(variances)
    # The correlation matrix: scaling columns leaves the solution's accuracy as it is,
    # and its condition number is the one that measures collinearity.
    correlation = moments.cxx / np.outer(scale, scale)
    if not np.linalg.cond(correlation) <= MAX_CONDITION:
        return None
    coef = np.linalg.solve(correlation, moments.cxy / scale) / scale
    return coef, float(moments.mean_y - moments.mean_x @ coef)


def lstsq_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares by `numpy.linalg.lstsq` on [1, x]: the minimum-norm solution when rank deficient."""
    beta, *_ = np.linalg.lstsq(design_matrix(x), y, rcond=None)
    return beta[1:], float(beta[0])


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    start = perf_counter()
    solution = solve_centred(centred_moments(data.x, data.y))
    coef, intercept = solution if solution is not None else lstsq_fit(data.x, data.y)
    return FitResult(
        solver="closed_form", coef=coef, intercept=intercept,
        seconds=perf_counter() - start, device="cpu",
    )
