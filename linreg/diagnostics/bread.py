"""The bread (X̃ᵀX̃)⁻¹ as a triangular factor: the moments' Cholesky when well conditioned, else a QR pass."""

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cholesky, solve_triangular
from threadpoolctl import threadpool_limits

from linreg.diagnostics.chunks import Chunks, _checked_chunks
from linreg.least_squares import RFactor, qr_block_rows
from linreg.moments import Moments

# The Cholesky factor of the moments' correlation matrix loses about log10 κ digits of the bread:
# up to 1e5 it keeps 10 or more; beyond, a TSQR pass over the data keeps them.
MAX_MOMENTS_CONDITION = 1e5


@dataclass(frozen=True)
class Bread:
    """(X̃ᵀX̃)⁻¹ as the upper-triangular R of the standardised design Z, ZᵀZ = RᵀR.

    Z = [1, (x − shift)/scale] with an intercept (shift the means), x/scale without (shift 0);
    each scale is its column's root sum of squares as Z centres it (1 for a column of zeros).

    Attributes:
        r: (p, p) upper-triangular float64.
        shift: (d,) subtracted from each column.
        scale: (d,) each column divided by it.
        fit_intercept: whether Z's first column is the intercept's.
        method: "Cholesky of the moments" or "QR pass".
        inverse: (p, p) R⁻¹, upper triangular (derived).
    """

    r: np.ndarray
    shift: np.ndarray
    scale: np.ndarray
    fit_intercept: bool
    method: str
    inverse: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "inverse", solve_triangular(self.r, np.eye(len(self.r))))

    def design(self, x: np.ndarray) -> np.ndarray:
        """Z for rows x (k, d): (k, p)."""
        z = (x - self.shift) / self.scale
        return np.hstack([np.ones((len(x), 1)), z]) if self.fit_intercept else z

    def whitened(self, x: np.ndarray) -> np.ndarray:
        """q_i = R⁻ᵀ z_i for rows x (k, d): (k, p), orthonormal columns over all rows."""
        return self.design(x) @ self.inverse

    def parameter_covariance(self, inner: np.ndarray) -> np.ndarray:
        """T R⁻¹ inner R⁻ᵀ Tᵀ: the (p, p) covariance of (b, w), given `inner` (p, p), the meat in
        whitened coordinates (Σ ω_i e_i² q_i q_iᵀ, or s²·I for the nonrobust one).

        T takes Z's parameters θ to the data's: w_j = θ_j / scale_j, b = θ_0 − Σ shift_j w_j.
        """
        a = self._to_parameters() @ self.inverse
        return a @ inner @ a.T

    def _to_parameters(self) -> np.ndarray:
        if not self.fit_intercept:
            return np.diag(1 / self.scale)
        t = np.zeros((len(self.r), len(self.r)))
        t[0, 0] = 1.0
        t[0, 1:] = -self.shift / self.scale
        t[1:, 1:] = np.diag(1 / self.scale)
        return t

    def partial_columns(self, q: np.ndarray) -> np.ndarray:
        """(k, d): each feature's residual on the other columns of the design, for rows whitened
        as q (k, p), in the feature's units.

        Z B e_j / B_jj (B = (ZᵀZ)⁻¹) is z_j less a combination of the other columns, orthogonal
        to them: z_j's residual on them. Row i of Z B is (R⁻¹ q_i)ᵀ.
        """
        u = q @ self.inverse.T
        b_diag = np.sum(self.inverse**2, axis=1)
        first = int(self.fit_intercept)
        return u[:, first:] / b_diag[first:] * self.scale


def bread_of(moments: Moments, chunks: Chunks, fit_intercept: bool) -> Bread:
    """The bread of the design these moments summarise (in their units, `Moments.in_range`):
    from the moments when well conditioned, else by a QR pass over `chunks()` (in the same units).

    Raises:
        ValueError: the design is singular (a constant column beside the intercept, say).
    """
    shift, scale, correlation = _standardised(moments, fit_intercept)
    if np.linalg.cond(correlation) <= MAX_MOMENTS_CONDITION:
        r = cholesky(correlation)
        if fit_intercept:
            r = np.block([[np.full((1, 1), math.sqrt(moments.n)), np.zeros((1, moments.d))],
                          [np.zeros((moments.d, 1)), r]])
        return Bread(r, shift, scale, fit_intercept, "Cholesky of the moments")
    return _bread_by_qr(moments, chunks, shift, scale, fit_intercept)


def _standardised(moments: Moments, fit_intercept: bool):
    """(shift, scale, the correlation-scaled cross-products of the features as Z holds them)."""
    n = moments.n
    gram = moments.sxx if fit_intercept else moments.sxx + n * np.outer(moments.mean_x, moments.mean_x)
    spread = np.sqrt(np.diag(gram))
    scale = np.where(spread > 0, spread, 1.0)
    shift = moments.mean_x if fit_intercept else np.zeros(moments.d)
    return shift, scale, (gram / scale[:, None]) / scale[None, :]


def _bread_by_qr(moments: Moments, chunks: Chunks, shift, scale, fit_intercept: bool) -> Bread:
    p = moments.d + int(fit_intercept)
    factor = RFactor(p)
    shift_e, scale_e = shift.astype(factor.dtype), scale.astype(factor.dtype)
    with threadpool_limits(1, user_api="blas"):
        for x, _ in _checked_chunks(moments, chunks):
            for start in range(0, len(x), qr_block_rows(p)):
                z = (x[start : start + qr_block_rows(p)].astype(factor.dtype) - shift_e) / scale_e
                factor.add(np.hstack([np.ones((len(z), 1), dtype=factor.dtype), z]) if fit_intercept else z)
    r = np.asarray(factor.r, dtype=np.float64)
    if not np.all(np.abs(np.diag(r)) > 0):
        raise ValueError("the design is singular: a column is a combination of the others")
    return Bread(r, shift, scale, fit_intercept, "QR pass")
