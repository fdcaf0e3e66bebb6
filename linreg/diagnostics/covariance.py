"""The parameters' covariances, nonrobust and HC0–HC3, from the meats summed in one pass."""

import math

import numpy as np

from linreg.diagnostics.passes import _Fit, _one_minus, _Rows
from linreg.diagnostics.results import Covariance

COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3")


class _Meats:
    """Running Σ ω_i e_i² q_i q_iᵀ for ω_i = 1 (HC0), 1/(1 − h_i) (HC2) and 1/(1 − h_i)² (HC3)."""

    def __init__(self, p: int):
        self.p = p
        self.products = np.zeros((2 * p, 2 * p))  # of [e q, e q / (1 − h)]: all three at once

    def add(self, rows: _Rows) -> None:
        weighted = rows.q * rows.residual[:, None]
        with np.errstate(invalid="ignore"):
            both = np.hstack([weighted, weighted / _one_minus(rows.leverage)[:, None]])
            self.products += both.T @ both

    @property
    def hc0(self) -> np.ndarray:
        return self.products[: self.p, : self.p]

    @property
    def hc2(self) -> np.ndarray:
        block = self.products[self.p :, : self.p]
        return (block + block.T) / 2  # symmetric but for the rounding of e q_a/(1 − h) · e q_b

    @property
    def hc3(self) -> np.ndarray:
        return self.products[self.p :, self.p :]


def _covariance_of(cov_type: str, fit: _Fit, meats: _Meats, squares: float) -> Covariance:
    """The covariance of `cov_type` from the pass's meats and Σ e² (both in the pass's units)."""
    p, n, dof = fit.p, fit.n, fit.dof
    if dof <= 0:  # an exact fit: no standard errors
        inner = np.full((p, p), math.nan)
    else:
        inner = {"nonrobust": np.eye(p) * (squares / dof), "HC0": meats.hc0, "HC1": meats.hc0 * (n / dof),
                 "HC2": meats.hc2, "HC3": meats.hc3}[cov_type]
    with np.errstate(invalid="ignore"):
        return _in_data_units(cov_type, fit.bread.parameter_covariance(inner), fit)


def _in_data_units(cov_type: str, cov: np.ndarray, fit: _Fit) -> Covariance:
    """cov (in the pass's units) times 2**(f_a + f_b), f the parameters' unit exponents."""
    x_exponent, _ = fit.moments.exponents
    exponent = fit.y_exponent - np.asarray(x_exponent, dtype=int)
    if fit.fit_intercept:
        exponent = np.concatenate([[fit.y_exponent], exponent])
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        se = np.ldexp(np.sqrt(np.diag(cov)), exponent)  # before squaring back: se may be finite where cov is not
        cov = np.ldexp(cov, exponent[:, None] + exponent[None, :])
    intercept_se = float(se[0]) if fit.fit_intercept else math.nan
    return Covariance(cov_type, cov, intercept_se, se[int(fit.fit_intercept):], fit.bread.method)
