"""Centred first and second moments of (x, y), accumulated one chunk at a time.

One streaming pass gives everything the evaluation needs: the least-squares
fit, the residual sum of squares of any (w, b), the total sum of squares and
the covariance of the estimates. Chunks are merged with the pairwise update of
Chan, Golub and LeVeque, which stays accurate where raw sums of squares would
cancel (data far from the origin).
"""

from dataclasses import dataclass
from typing import Iterable

import numpy as np

# Beyond this condition number of the centred XᵀX, the normal equations lose
# too many digits and the solve falls back to an SVD-based least squares.
MAX_CONDITION = 1e10


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of a linear fit.

    Attributes:
        n: rows seen.
        mean_x: (d,) column means.
        mean_y: mean target.
        sxx: (d, d) centred cross-products, sum (x - mean_x)(x - mean_x)ᵀ.
        sxy: (d,) sum (x - mean_x)(y - mean_y).
        syy: sum (y - mean_y)².
    """

    n: int
    mean_x: np.ndarray
    mean_y: float
    sxx: np.ndarray
    sxy: np.ndarray
    syy: float

    @classmethod
    def of_chunk(cls, x: np.ndarray, y: np.ndarray) -> "Moments":
        """Moments of one chunk: x (k, d), y (k,)."""
        mean_x, mean_y = x.mean(axis=0), float(y.mean())
        xc, yc = x - mean_x, y - mean_y
        return cls(len(y), mean_x, mean_y, xc.T @ xc, xc.T @ yc, float(yc @ yc))

    def merge(self, other: "Moments") -> "Moments":
        """Moments of both sets of rows together."""
        if self.n == 0:
            return other
        n = self.n + other.n
        weight = self.n * other.n / n
        dx, dy = other.mean_x - self.mean_x, other.mean_y - self.mean_y
        return Moments(
            n=n,
            mean_x=self.mean_x + dx * (other.n / n),
            mean_y=self.mean_y + dy * (other.n / n),
            sxx=self.sxx + other.sxx + np.outer(dx, dx) * weight,
            sxy=self.sxy + other.sxy + dx * dy * weight,
            syy=self.syy + other.syy + dy * dy * weight,
        )

    @property
    def d(self) -> int:
        return len(self.mean_x)

    def condition(self) -> float:
        """Condition number of the centred XᵀX (inf when singular)."""
        return float(np.linalg.cond(self.sxx)) if self.n > 1 else float("inf")

    def solve(self) -> tuple[np.ndarray, float]:
        """Least-squares (coef, intercept) from the centred normal equations.

        Falls back to the minimum-norm solution (SVD) when the system is
        ill-conditioned or singular, as `lstsq` would give.
        """
        if self.condition() <= MAX_CONDITION:
            coef = np.linalg.solve(self.sxx, self.sxy)
        else:
            coef = np.linalg.lstsq(self.sxx, self.sxy, rcond=None)[0]
        return coef, float(self.mean_y - self.mean_x @ coef)

    def rss(self, coef: np.ndarray, intercept: float) -> float:
        """Residual sum of squares of y ≈ intercept + x @ coef, without another pass.

        sum (y - b - x w)² = syy - 2 wᵀsxy + wᵀsxx w + n (mean_y - b - mean_x·w)².
        """
        with np.errstate(over="ignore", invalid="ignore"):
            offset = self.mean_y - intercept - self.mean_x @ coef
            value = self.syy - 2 * coef @ self.sxy + coef @ self.sxx @ coef + self.n * offset**2
        return max(float(value), 0.0) if np.isfinite(value) else float("nan")


def accumulate(chunks: Iterable[tuple[np.ndarray, np.ndarray]], d: int) -> Moments:
    """Merge the moments of every (x, y) chunk."""
    total = Moments(0, np.zeros(d), 0.0, np.zeros((d, d)), np.zeros(d), 0.0)
    for x, y in chunks:
        total = total.merge(Moments.of_chunk(x, y))
    return total
