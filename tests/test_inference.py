"""The reference's inference table against statsmodels' OLS on the same data.

statsmodels is a test dependency only (pyproject's dev extra): the library never imports it.
Tolerances follow the problem: both sides carry rounding of about u·κ relative (κ the
design's condition number as fitted), so each case is compared at a few hundred times
that, never below 1e-11. A p-value magnifies a relative error in t by d ln p / d ln t,
and is compared with its tolerance magnified so (see `p_value_rtol`).
"""

import dataclasses
import functools
import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import stdtr

from linreg.inference import COLUMNS, coefficient_rows, fit_statistics
from linreg.least_squares import LeastSquares, solve_least_squares
from linreg.moments import Moments
from strd import load

UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2


def reference(x: np.ndarray, y: np.ndarray, fit_intercept: bool) -> LeastSquares:
    return solve_least_squares(Moments.of_chunk(x, y), lambda: [(x, y)], fit_intercept)


@functools.cache
def statsmodels():
    """statsmodels' OLS and add_constant, imported on first use: the import takes seconds, which
    collecting the whole suite should not pay. Its own use of pandas' deprecated decorators
    warns at import (statsmodels 0.14.6 with pandas 3): not this project's to fix."""
    from pandas.errors import Pandas4Warning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Pandas4Warning)
        from statsmodels.regression.linear_model import OLS
        from statsmodels.tools.tools import add_constant
    return OLS, add_constant


def statsmodels_ols(x: np.ndarray, y: np.ndarray, fit_intercept: bool):
    OLS, add_constant = statsmodels()
    return OLS(y, add_constant(x, has_constant="add") if fit_intercept else x).fit()


def rtol_for(solution: LeastSquares) -> float:
    """A few hundred times what rounding costs either side on this design, at least 1e-11."""
    return max(1e-11, 300 * UNIT_ROUNDOFF * solution.condition_number)


def p_value_rtol(rtol: float, t: np.ndarray, dof: int) -> np.ndarray:
    """rtol of t, magnified into p = 2·stdtr(dof, −|t|): d ln p / d ln t ≈ (dof + 1)·t² / (dof + t²)."""
    return rtol * (1 + (dof + 1) * t**2 / (dof + t**2))


def longley():
    case = load("Longley")
    return np.array(case.x), np.array(case.y), True


def noint1():
    case = load("NoInt1")
    return np.array(case.x), np.array(case.y), False


def random_without_intercept():
    rng = np.random.default_rng(7)
    x = rng.normal(loc=2.0, size=(30, 2))
    return x, x @ [0.3, -0.4] + rng.normal(size=30), False


def random_three_features():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(40, 3)) * [1.0, 10.0, 0.1]  # scales a decade apart, as real columns are
    return x, 1.5 + x @ [0.5, -0.02, 3.0] + rng.normal(size=40), True


def random_nearly_collinear():
    """A third column within 3e-4 of the first: the reference takes its QR path."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 3))
    x[:, 2] = x[:, 0] + 3e-4 * rng.normal(size=60)
    return x, 1.0 + x @ [1.0, 2.0, -1.0] + rng.normal(size=60), True


CASES = {
    "longley": longley,
    "noint1": noint1,
    "random_without_intercept": random_without_intercept,
    "random_three_features": random_three_features,
    "random_nearly_collinear": random_nearly_collinear,
}


@pytest.fixture(params=list(CASES), scope="module")
def case(request):
    x, y, fit_intercept = CASES[request.param]()
    solution = reference(x, y, fit_intercept)
    names = [f"x{j}" for j in range(x.shape[1])]
    return solution, names, statsmodels_ols(x, y, fit_intercept)


def column(rows: list[dict], key: str) -> np.ndarray:
    return np.array([row[key] for row in rows])


def test_coefficients_and_standard_errors_match_statsmodels(case):
    solution, names, ols = case
    rows = coefficient_rows(solution, names)
    rtol = rtol_for(solution)
    assert [row["parameter"] for row in rows] == (["intercept"] if solution.fit_intercept else []) + names
    assert_allclose(column(rows, "coefficient"), ols.params, rtol=rtol)
    assert_allclose(column(rows, "std_error"), ols.bse, rtol=rtol)
    assert_allclose(column(rows, "t"), ols.tvalues, rtol=2 * rtol)


def test_p_values_match_statsmodels(case):
    solution, names, ols = case
    rows = coefficient_rows(solution, names)
    tolerance = p_value_rtol(2 * rtol_for(solution), np.asarray(ols.tvalues), solution.dof)
    p = column(rows, "p_value")
    assert np.all(np.abs(p - ols.pvalues) <= tolerance * ols.pvalues), (p, ols.pvalues)


def test_p_value_is_two_sided_t_tail_of_statsmodels_t():
    """The formula alone, on statsmodels' own t: agreement to rounding, tiny p included."""
    ols = statsmodels_ols(*noint1())
    assert ols.pvalues[0] < 1e-15  # NoInt1's slope: a p-value a 1 − cdf formula would round to 0
    assert_allclose(2 * stdtr(ols.df_resid, -np.abs(ols.tvalues)), ols.pvalues, rtol=1e-12)


def assert_close_on_scale(actual: np.ndarray, expected: np.ndarray, rtol: float, scale: np.ndarray) -> None:
    """|actual − expected| ≤ rtol·(|expected| + scale), elementwise (assert_allclose takes a scalar atol only)."""
    error = np.abs(actual - expected)
    assert np.all(error <= rtol * (np.abs(expected) + scale)), (actual, expected, error / (np.abs(expected) + scale))


def test_confidence_intervals_match_statsmodels(case):
    solution, names, ols = case
    rows = coefficient_rows(solution, names)
    rtol = rtol_for(solution)
    # A bound near 0 has no relative precision of its own: judge it on the scale of its row.
    scale = np.maximum(np.abs(column(rows, "coefficient")), column(rows, "std_error"))
    interval = ols.conf_int(alpha=0.05)
    assert_close_on_scale(column(rows, "ci_low"), interval[:, 0], rtol, scale)
    assert_close_on_scale(column(rows, "ci_high"), interval[:, 1], rtol, scale)


def test_other_levels_match_statsmodels(case):
    solution, names, ols = case
    rows = coefficient_rows(solution, names, level=0.9)
    rtol = rtol_for(solution)
    scale = np.maximum(np.abs(column(rows, "coefficient")), column(rows, "std_error"))
    assert_close_on_scale(column(rows, "ci_low"), ols.conf_int(alpha=0.1)[:, 0], rtol, scale)


def test_fit_statistics_match_statsmodels(case):
    solution, _, ols = case
    stats = fit_statistics(solution)
    rtol = rtol_for(solution)
    assert (stats["nobs"], stats["df_model"], stats["df_resid"]) == (ols.nobs, ols.df_model, ols.df_resid)
    assert stats["r2_convention"] == ("centred" if solution.fit_intercept else "uncentred")
    assert_allclose(stats["r_squared"], ols.rsquared, rtol=rtol)
    assert_allclose(stats["adj_r_squared"], ols.rsquared_adj, rtol=rtol)
    assert_allclose(stats["f_statistic"], ols.fvalue, rtol=rtol)
    # ln of the F tail moves by at most (df_model + df_resid)/2 times ln F.
    assert_allclose(stats["f_pvalue"], ols.f_pvalue, rtol=rtol * (1 + (ols.df_model + ols.df_resid) / 2))
    assert_allclose(stats["residual_sd"], math.sqrt(ols.scale), rtol=rtol)


def test_statistics_carry_the_reference_conditions(case):
    solution, _, _ = case
    stats = fit_statistics(solution)
    assert stats["condition_number"] == solution.condition_number
    if solution.fit_intercept:
        assert stats["condition_number_centred"] == solution.condition_number_centred
    else:
        assert stats["condition_number_centred"] is None


def test_nearly_collinear_case_exercises_the_qr_path():
    x, y, fit_intercept = random_nearly_collinear()
    assert reference(x, y, fit_intercept).method.startswith("QR")


def test_values_are_plain_python_floats():
    x, y, fit_intercept = random_three_features()
    solution = reference(x, y, fit_intercept)
    rows = coefficient_rows(solution, ["a", "b", "c"])
    assert all(set(row) == set(COLUMNS) for row in rows)
    assert {type(row[key]) for row in rows for key in COLUMNS if key != "parameter"} == {float}
    stats = fit_statistics(solution)
    assert {type(stats[key]) for key in ("nobs", "df_model", "df_resid")} == {int}
    floats = ("r_squared", "adj_r_squared", "f_statistic", "f_pvalue", "residual_sd", "condition_number")
    assert {type(stats[key]) for key in floats + ("condition_number_centred",)} == {float}


def test_rank_deficient_design_gives_nan_errors_not_numbers():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 2))
    x = np.column_stack([x, x[:, 0]])  # a duplicate column: only the sum of its two weights is estimable
    y = 2.0 + x[:, 0] - x[:, 1] + rng.normal(size=50)
    solution = reference(x, y, True)
    assert solution.rank_deficient
    rows = coefficient_rows(solution, ["a", "b", "a_again"])
    assert all(math.isfinite(row["coefficient"]) for row in rows)
    for key in ("std_error", "t", "p_value", "ci_low", "ci_high"):
        assert all(math.isnan(row[key]) for row in rows), (key, rows)
    stats = fit_statistics(solution)
    assert 0.0 < stats["r_squared"] < 1.0  # the fitted values, hence R², are well defined
    assert math.isnan(stats["adj_r_squared"]) and math.isnan(stats["f_statistic"]) and math.isnan(stats["f_pvalue"])


def test_rank_deficient_flag_alone_blanks_the_errors():
    """Whatever standard errors a rank-deficient solution carries, the table does not print them."""
    x, y, fit_intercept = random_three_features()
    solution = reference(x, y, fit_intercept)
    flagged = dataclasses.replace(solution, rank_deficient=True)
    assert all(math.isnan(row["std_error"]) for row in coefficient_rows(flagged, ["a", "b", "c"]))


def test_no_residual_degrees_of_freedom_gives_nan_inference():
    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 3.0]])
    y = np.array([1.0, 2.0, 0.5])
    solution = reference(x, y, True)  # 3 rows, 3 parameters: an exact fit, dof 0
    assert solution.dof == 0
    assert "0 residual degrees of freedom: no standard errors" in solution.warning  # fitted, and said
    rows = coefficient_rows(solution, ["a", "b"])
    assert all(math.isnan(row[key]) for row in rows for key in ("std_error", "t", "p_value", "ci_low", "ci_high"))
    stats = fit_statistics(solution)
    assert stats["df_resid"] == 0
    assert math.isnan(stats["f_statistic"]) and math.isnan(stats["adj_r_squared"]) and math.isnan(stats["residual_sd"])


def test_exact_fit_with_residual_dof_has_infinite_f_and_zero_p():
    x = np.arange(10.0).reshape(-1, 1)
    solution = reference(x, 3.0 + 2.0 * x[:, 0], True)
    stats = fit_statistics(solution)
    assert stats["f_statistic"] > 1e20 and stats["f_pvalue"] < 1e-20


def test_names_must_match_the_coefficients():
    x, y, fit_intercept = random_three_features()
    solution = reference(x, y, fit_intercept)
    with pytest.raises(ValueError, match="names: 2 names for 3 coefficients"):
        coefficient_rows(solution, ["a", "b"])
    with pytest.raises(ValueError, match="'a' appears more than once"):
        coefficient_rows(solution, ["a", "b", "a"])
    with pytest.raises(ValueError, match="'intercept' appears more than once"):
        coefficient_rows(solution, ["intercept", "b", "c"])


def test_a_feature_may_be_called_intercept_without_one():
    x, y, _ = random_without_intercept()
    rows = coefficient_rows(reference(x, y, False), ["intercept", "slope"])
    assert [row["parameter"] for row in rows] == ["intercept", "slope"]


@pytest.mark.parametrize("level", [0.0, 1.0, 95.0, -0.5, math.nan])
def test_level_must_be_a_probability(level):
    x, y, fit_intercept = random_three_features()
    with pytest.raises(ValueError, match="level"):
        coefficient_rows(reference(x, y, fit_intercept), ["a", "b", "c"], level=level)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_the_table_of_values_beyond_float64s_squares_is_statsmodels_on_the_data_divided_by_powers_of_two(
        fit_intercept):
    """|values| ~1e200: statsmodels on the raw data returns zeros; on the data divided by powers of two
    (exact) it is right, and its table multiplied back is what the reference reports."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(80, 2)) * [1e200, 1e-30]
    y = (1.0 + x @ [2e-200, 5e29] + rng.normal(size=80)) * 1e190
    solution = reference(x, y, fit_intercept)
    ex, ey = np.frexp(np.abs(x).max(axis=0))[1], int(np.frexp(np.abs(y).max())[1])
    ols = statsmodels_ols(np.ldexp(x, -ex), np.ldexp(y, -ey), fit_intercept)
    unit = np.append([ey] if fit_intercept else [], ey - ex)  # each parameter's power of two
    rows = coefficient_rows(solution, ["big", "small"])
    rtol = rtol_for(solution)
    assert_allclose(column(rows, "coefficient"), np.ldexp(ols.params, unit.astype(int)), rtol=rtol)
    assert_allclose(column(rows, "std_error"), np.ldexp(ols.bse, unit.astype(int)), rtol=rtol)
    assert_allclose(column(rows, "t"), ols.tvalues, rtol=2 * rtol)
    stats = fit_statistics(solution)
    assert stats["r_squared"] == pytest.approx(ols.rsquared, rel=rtol)
    assert stats["adj_r_squared"] == pytest.approx(ols.rsquared_adj, rel=rtol)
    assert stats["f_statistic"] == pytest.approx(ols.fvalue, rel=2 * rtol)
    assert stats["residual_sd"] == pytest.approx(math.ldexp(math.sqrt(ols.scale), ey), rel=rtol)
    assert math.isinf(solution.rss)  # (1e190)² has no float64: the ratios are read in the fitted units


# --- Robust standard errors (HC0..HC3), as statsmodels' cov_type ---------------------------------


def heteroscedastic():
    """Noise whose spread grows with the first feature: the case robust standard errors are for."""
    rng = np.random.default_rng(21)
    x = rng.uniform(0.0, 4.0, size=(80, 2))
    return x, 0.5 + x @ [1.5, -0.7] + (0.2 + x[:, 0]) * rng.normal(size=80), True


@pytest.mark.parametrize("make", [longley, heteroscedastic, random_without_intercept],
                         ids=["longley", "heteroscedastic", "without_intercept"])
@pytest.mark.parametrize("cov_type", ["HC0", "HC1", "HC2", "HC3"])
def test_a_robust_table_equals_statsmodels_cov_type(make, cov_type):
    from linreg.diagnostics import robust_covariance

    x, y, fit_intercept = make()
    solution = reference(x, y, fit_intercept)
    covariance = robust_covariance(solution, Moments.of_chunk(x, y), lambda: [(x, y)], cov_type)
    rows = coefficient_rows(solution, [f"x{j}" for j in range(x.shape[1])], covariance=covariance)
    OLS, add_constant = statsmodels()
    fitted = OLS(y, add_constant(x, has_constant="add") if fit_intercept else x).fit(cov_type=cov_type)
    assert not fitted.use_t  # statsmodels: a robust covariance's inference is asymptotic (normal)
    rtol = 1e-9 if make is not longley else 5e-9  # statsmodels itself is ~8.7 digits on Longley's HC3
    assert_allclose(column(rows, "std_error"), fitted.bse, rtol=rtol)
    assert_allclose(column(rows, "t"), fitted.tvalues, rtol=rtol)
    assert_allclose(column(rows, "p_value"), fitted.pvalues, rtol=1e-6, atol=1e-300)
    # An interval's end b ± 1.96·se cancels when |b| is near 1.96·se: compared on the scale of its parts.
    scale = rtol * (np.abs(column(rows, "coefficient")) + 2 * column(rows, "std_error"))
    for end, key in enumerate(("ci_low", "ci_high")):
        off = np.abs(column(rows, key) - fitted.conf_int()[:, end])
        assert (off <= scale).all(), (key, off / scale)
    stats = fit_statistics(solution, covariance)
    assert stats["cov_type"] == cov_type
    assert stats["f_statistic"] == pytest.approx(fitted.fvalue, rel=1e-7)
    assert stats["f_pvalue"] == pytest.approx(fitted.f_pvalue, rel=1e-6)


def test_the_nonrobust_table_is_the_classical_one_whatever_the_covariance_object():
    from linreg.diagnostics import robust_covariance

    x, y, fit_intercept = heteroscedastic()
    solution = reference(x, y, fit_intercept)
    nonrobust = robust_covariance(solution, Moments.of_chunk(x, y), lambda: [(x, y)], "nonrobust")
    names = ["a", "b"]
    assert coefficient_rows(solution, names, covariance=nonrobust) == coefficient_rows(solution, names)
    assert fit_statistics(solution, nonrobust) == fit_statistics(solution)
