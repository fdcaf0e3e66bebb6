"""The reference fit's inference table, as a statsmodels OLS user expects to read it.

`coefficient_rows` gives a row per parameter (estimate, standard error, t, p-value and
confidence interval), `fit_statistics` the fit as a whole (R², adjusted R², F and its
p-value, degrees of freedom, condition numbers). Both read a
`linreg.least_squares.LeastSquares`, so they cost no pass over the data, and follow
statsmodels' conventions, including its no-intercept one: without a constant the
total sum of squares is uncentred, every coefficient counts in the model's degrees of
freedom, and the F test is against the model y = 0.

Values are plain Python floats, NaN where a quantity does not exist: without residual
degrees of freedom, or for a rank-deficient design, whose minimum-norm coefficients
are not estimable one by one.

With a heteroscedasticity-robust covariance (`linreg.diagnostics.robust_covariance`,
HC0 to HC3) the table follows statsmodels' `cov_type` results: the robust standard
errors, p-values and intervals from the normal distribution (statsmodels' `use_t=False`
for a robust covariance), and F the Wald test of the slopes with that covariance.
"""

import math
from typing import TYPE_CHECKING

import numpy as np
# The t and F distributions from scipy.special: scipy.stats costs 3x the import time.
from scipy.special import fdtrc, ndtr, ndtri, stdtr, stdtrit

from linreg.least_squares import LeastSquares

if TYPE_CHECKING:
    from linreg.diagnostics import Covariance

INTERCEPT = "intercept"

COLUMNS = ("parameter", "coefficient", "std_error", "t", "p_value", "ci_low", "ci_high")


def coefficient_rows(solution: LeastSquares, names: list[str], level: float = 0.95,
                     covariance: "Covariance | None" = None) -> list[dict]:
    """One row per parameter: the intercept first when fitted, then each feature by name.

    Two-sided p-values and the confidence interval come from the t distribution with
    the fit's residual degrees of freedom (n − p), as statsmodels' OLS computes them.

    Args:
        solution: the least-squares fit (`linreg.least_squares.solve_least_squares`).
        names: (d,) the features' names, in the order of `solution.coef`.
        level: the confidence interval's coverage, in (0, 1).
        covariance: a robust covariance of the same fit (HC0..HC3); None or "nonrobust": the
            classical one, from the fit itself.

    Returns:
        p = d (+1 with an intercept) dicts with the keys of `COLUMNS`: `parameter` (str)
        and the rest plain floats, NaN where undefined (no residual dof, a rank-deficient
        design).

    Raises:
        ValueError: names do not match the coefficients one to one, a name repeats or
            is "intercept" beside a fitted intercept, or level is outside (0, 1).
    """
    names = list(names)
    if len(names) != len(solution.coef):
        raise ValueError(f"names: {len(names)} names for {len(solution.coef)} coefficients")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: {level} is not a probability strictly between 0 and 1")
    labels = ([INTERCEPT] if solution.fit_intercept else []) + names
    repeated = sorted({name for name in labels if labels.count(name) > 1})
    if repeated:
        raise ValueError(f"names: {', '.join(map(repr, repeated))} appears more than once among {labels}")

    estimates = np.array(([solution.intercept] if solution.fit_intercept else []) + list(solution.coef), dtype=float)
    robust = is_robust(covariance)
    source = covariance if robust else solution
    se = np.array(([source.intercept_se] if solution.fit_intercept else []) + list(source.coef_se), dtype=float)
    dof = solution.dof
    if dof <= 0 or solution.rank_deficient:
        # A minimum-norm solution's coefficients are one of many that fit equally well: no
        # standard error describes them (statsmodels' pinv prints numbers that mean nothing).
        se = np.full_like(se, math.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = estimates / se  # an exact fit (se = 0) gives ±inf and p = 0, as statsmodels
    if dof <= 0:
        p, half = np.full_like(t, math.nan), np.full_like(se, math.nan)
    elif robust:  # statsmodels: a robust covariance's inference is asymptotic (normal)
        p, half = 2.0 * ndtr(-np.abs(t)), ndtri(0.5 + level / 2) * se
    else:
        p, half = 2.0 * stdtr(dof, -np.abs(t)), stdtrit(dof, 0.5 + level / 2) * se
    return [
        {
            "parameter": label, "coefficient": float(b), "std_error": float(s), "t": float(tv),
            "p_value": float(pv), "ci_low": float(b - h), "ci_high": float(b + h),
        }
        for label, b, s, tv, pv, h in zip(labels, estimates, se, t, p, half)
    ]


def is_robust(covariance: "Covariance | None") -> bool:
    return covariance is not None and covariance.cov_type != "nonrobust"


def fit_statistics(solution: LeastSquares, covariance: "Covariance | None" = None) -> dict:
    """The whole fit's statistics, with statsmodels' conventions and names.

    With an intercept R² is centred, df_model = d and F tests every slope = 0; without one
    R² is uncentred (1 − RSS/Σy²), df_model = d and F tests every coefficient = 0. With a
    robust `covariance` F is the Wald statistic of that test with it, on (df_model, df_resid)
    degrees of freedom, as statsmodels computes it for a robust `cov_type`.

    Args:
        solution: the least-squares fit (`linreg.least_squares.solve_least_squares`).
        covariance: a robust covariance of the same fit, or None (classical).

    Returns:
        nobs, df_model, df_resid (ints); r_squared, adj_r_squared, f_statistic, f_pvalue,
        residual_sd, condition_number (floats, NaN where undefined: adj_r_squared, F and
        its p-value without residual dof or for a rank-deficient design, whose effective
        degrees of freedom are not the nominal ones); condition_number_centred (None without
        an intercept); r2_convention ("centred" or "uncentred").
    """
    n, df_model, df_resid = solution.n, len(solution.coef), solution.dof
    r2 = float(solution.r_squared)
    adj_r2 = f = f_p = math.nan
    if df_resid > 0 and not solution.rank_deficient:
        # statsmodels: 1 − (n − k_constant)/df_resid · (1 − R²); k_constant is 0 without an intercept.
        adj_r2 = 1.0 - (n - int(solution.fit_intercept)) / df_resid * (1.0 - r2)
        if df_model > 0:
            # In the units y was fitted in: the sums of squares of values beyond ~1e154 overflow, their ratio does not.
            if is_robust(covariance):
                f = _wald_f(solution, covariance)
            else:
                rss, tss = solution.sums_of_squares
                f = _f_statistic(tss - rss, df_model, rss, df_resid)
            f_p = float(fdtrc(df_model, df_resid, f))
    centred = solution.condition_number_centred
    return {
        "nobs": int(n),
        "df_model": int(df_model),
        "df_resid": int(df_resid),
        "r_squared": r2,
        "adj_r_squared": float(adj_r2),
        "f_statistic": float(f),
        "f_pvalue": f_p,
        "residual_sd": float(solution.residual_sd),
        "condition_number": float(solution.condition_number),
        "condition_number_centred": None if centred is None else float(centred),
        "r2_convention": "centred" if solution.fit_intercept else "uncentred",
        "cov_type": covariance.cov_type if covariance is not None else "nonrobust",
    }


def _wald_f(solution: LeastSquares, covariance: "Covariance") -> float:
    """bᵀ V⁻¹ b / q for the slopes b (every coefficient without an intercept) and their covariance V."""
    cov = np.asarray(covariance.cov)
    slopes = cov[1:, 1:] if solution.fit_intercept else cov
    coef = np.asarray(solution.coef, dtype=float)
    try:
        return float(coef @ np.linalg.solve(slopes, coef)) / len(coef)
    except np.linalg.LinAlgError:
        return math.nan


def _f_statistic(explained: float, df_model: int, rss: float, df_resid: int) -> float:
    """(ESS/df_model) / (RSS/df_resid); an exact fit (RSS = 0) with something explained is +inf."""
    if rss > 0:
        return (explained / df_model) / (rss / df_resid)
    return math.inf if explained > 0 else math.nan
