"""The diagnostics' frozen results: residual tests, covariances, influential rows, panels, partial regression."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ResidualTests:
    """The lower block of statsmodels' OLS summary, for the reference fit's residuals.

    Attributes:
        n: rows.
        durbin_watson: Σ (e_i − e_{i−1})² / Σ e_i².
        omnibus: D'Agostino–Pearson K² (`scipy.stats.normaltest`); NaN below 8 rows.
        omnibus_pvalue: its χ²(2) upper tail.
        jarque_bera: n/6 · (S² + (K − 3)²/4).
        jarque_bera_pvalue: its χ²(2) upper tail.
        skew: S, the biased sample skewness m3 / m2^1.5.
        kurtosis: K, the biased sample kurtosis m4 / m2² (not excess: 3 for a normal sample).
    """

    n: int
    durbin_watson: float
    omnibus: float
    omnibus_pvalue: float
    jarque_bera: float
    jarque_bera_pvalue: float
    skew: float
    kurtosis: float


@dataclass(frozen=True)
class Covariance:
    """The parameters' covariance of one type, in the data's units.

    Attributes:
        cov_type: one of COV_TYPES.
        cov: (p, p) covariance of (intercept, coef...) with an intercept, of coef without.
        intercept_se: the intercept's standard error (NaN without an intercept).
        coef_se: (d,) the coefficients' standard errors.
        bread: how (X̃ᵀX̃)⁻¹ was taken: "Cholesky of the moments" or "QR pass" (`Bread.method`).
    """

    cov_type: str
    cov: np.ndarray
    intercept_se: float
    coef_se: np.ndarray
    bread: str


@dataclass(frozen=True)
class InfluentialRow:
    """One row's influence on the fit.

    Attributes:
        row: the data row number, from 1, in the order `chunks()` gives the rows.
        cooks_distance: e_i² h_i / (p s² (1 − h_i)²), s² = RSS / (n − p).
        leverage: h_i, the hat matrix's diagonal.
        student_residual: e_i / (s_(i) √(1 − h_i)), s_(i)² = (RSS − e_i²/(1 − h_i)) / (n − p − 1).
        residual: e_i, in y's units.
    """

    row: int
    cooks_distance: float
    leverage: float
    student_residual: float
    residual: float


@dataclass(frozen=True)
class Panels:
    """The arrays of R's four `plot(lm)` panels, for m ≤ max_rows rows.

    Attributes:
        rows: (m,) int64 data row numbers, from 1, in the order streamed, increasing.
        fitted: (m,) fitted values ŷ_i.
        residuals: (m,) e_i = y_i − ŷ_i.
        standardized_residuals: (m,) e_i / (s √(1 − h_i)) (R's `rstandard`).
        leverage: (m,) h_i.
        cooks_distance: (m,) as `InfluentialRow.cooks_distance`.
        parameters: p, for the Cook's distance contours of the residuals-vs-leverage panel.
        sampled: whether the rows are a sample (n > max_rows) rather than every row.
    """

    rows: np.ndarray
    fitted: np.ndarray
    residuals: np.ndarray
    standardized_residuals: np.ndarray
    leverage: np.ndarray
    cooks_distance: np.ndarray
    parameters: int
    sampled: bool


@dataclass(frozen=True)
class PartialRegression:
    """Added-variable arrays: for each feature j, the full-data residuals of y and of x_j on the
    other features (and the intercept, when fitted), on the same rows as `Panels`.

    Over all rows, the least-squares slope (through the origin) of y_residuals[:, j] on
    x_residuals[:, j] is the fit's coefficient j (Frisch–Waugh–Lovell).

    Attributes:
        rows: (m,) int64 data row numbers, from 1.
        x_residuals: (m, d) x_j's residuals on the other columns, in x_j's units.
        y_residuals: (m, d) y's residuals on the columns other than x_j, in y's units.
        coef: (d,) the fit's coefficients: the slopes of the panels' lines.
        sampled: whether the rows are a sample.
    """

    rows: np.ndarray
    x_residuals: np.ndarray
    y_residuals: np.ndarray
    coef: np.ndarray
    sampled: bool


@dataclass(frozen=True)
class Diagnostics:
    """Everything above, from one pass over the data (two when the bread takes a QR pass)."""

    residual_tests: ResidualTests
    covariances: dict[str, Covariance]
    influential: tuple[InfluentialRow, ...]
    panels: Panels
    partial_regression: PartialRegression
