"""Three edges of a user's table: collinear named columns, no residual degrees of freedom, and
values whose squares overflow float64.

Each is checked in the library (`linreg.least_squares`, `linreg.moments`), then on a real
table through the ingest, the solvers and `summarize`, as a run reports it. Huge data are
checked against statsmodels fitted on the same data divided by powers of two (exact) and
multiplied back: on the raw values statsmodels and numpy's lstsq return zeros.
"""

import functools
import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from linreg.evaluate import MSE_OUT_OF_RANGE, evaluate_fit, parameter_distance, summarize, training_mse_r2
from linreg.inference import coefficient_rows, fit_statistics
from linreg.least_squares import NO_RESIDUAL_DOF, NonFiniteData, solve_least_squares
from linreg.moments import HUGE_SUMS, Moments, accumulate, moments_on_device
from linreg.report import console_table
from linreg.scaling import Scaling, ScaledSource
from linreg.solvers import SOLVERS
from linreg.storage import ingest_table, open_data, table_ref


def solve(x, y, fit_intercept=True, names=None, rows=None):
    """The closed form, in memory (rows None) or from chunks of `rows` rows."""
    if rows is None:
        return solve_least_squares(Moments.of_chunk(x, y), lambda: [(x, y)], fit_intercept, names)
    chunks = [(x[i : i + rows], y[i : i + rows]) for i in range(0, len(y), rows)]
    return solve_least_squares(accumulate(chunks, x.shape[1]), lambda: chunks, fit_intercept, names)


@functools.cache
def _ols():
    from pandas.errors import Pandas4Warning

    with warnings.catch_warnings():  # statsmodels 0.14.6 warns at import with pandas 3: not ours to fix
        warnings.simplefilter("ignore", Pandas4Warning)
        from statsmodels.regression.linear_model import OLS
        from statsmodels.tools.tools import add_constant
    return OLS, add_constant


def statsmodels_in_powers_of_two(x, y, fit_intercept=True):
    """statsmodels' OLS on x_j / 2^e_j and y / 2^e_y (each column's largest |value| in [0.5, 1)),
    its coefficients and standard errors multiplied back: (coef, coef_se, intercept, intercept_se, R²)."""
    OLS, add_constant = _ols()
    ex, ey = np.frexp(np.max(np.abs(x), axis=0))[1], int(np.frexp(np.max(np.abs(y)))[1])
    xs, ys = np.ldexp(x, -ex), np.ldexp(y, -ey)
    fit = OLS(ys, add_constant(xs, has_constant="add") if fit_intercept else xs).fit()
    k = int(fit_intercept)
    intercept = float(np.ldexp(fit.params[0], ey)) if fit_intercept else 0.0
    intercept_se = float(np.ldexp(fit.bse[0], ey)) if fit_intercept else math.nan
    return (np.ldexp(fit.params[k:], ey - ex), np.ldexp(fit.bse[k:], ey - ex), intercept, intercept_se, fit.rsquared)


def assert_close_to_norm(actual, expected, rtol):
    """|actual − expected| within rtol of ‖expected‖ (the coefficients differ by orders of magnitude)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert np.all(np.isfinite(actual))
    assert np.max(np.abs(actual - expected)) <= rtol * np.linalg.norm(expected)


def huge_data(n=400, seed=0, x_scale=(1e200, 1e-3), y_scale=1e180, noise=0.1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(x_scale)))
    y = 1.0 + x @ np.linspace(2.0, -3.0, len(x_scale)) + noise * rng.standard_normal(n)
    return x * np.asarray(x_scale), y * y_scale


# --- 1. Rank deficiency names the user's columns ---------------------------------------------------

def collinear(n=60, seed=1):
    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal(n)
    x = np.column_stack([x1, 2 * x1, rng.standard_normal(n)])
    return x, 1.0 + x1 - x[:, 2] + 0.1 * rng.standard_normal(n)


def test_a_rank_deficiency_names_the_users_columns_quoted():
    x, y = collinear()
    fit = solve(x, y, names=["x1", "x2", "x3"])
    assert fit.rank_deficient and "columns involved: 'x1', 'x2'." in fit.warning
    assert "w0" not in fit.warning and "'x3'" not in fit.warning
    assert fit.dropped == ("x1", "x2")


def test_a_column_name_with_a_comma_stays_one_name():
    x, y = collinear()
    fit = solve(x, y, names=["height, cm", "twice", "other"])
    assert "columns involved: 'height, cm', 'twice'." in fit.warning


def test_generated_data_keep_the_default_names_unquoted():
    x, y = collinear()
    assert "columns involved: w0, w1." in solve(x, y).warning


def test_naming_a_fit_afterwards_rewrites_its_warning():
    x, y = collinear()
    named = solve(x, y).named(["x1", "x2", "x3"])
    assert named.warning == solve(x, y, names=["x1", "x2", "x3"]).warning and named.dropped == ("x1", "x2")


def test_a_constant_column_is_named_quoted():
    x = np.column_stack([np.full(30, 3.0), np.random.default_rng(2).standard_normal(30)])
    fit = solve(x, x[:, 1] + 1.0, names=["const", "z"])
    assert "columns involved: 'const'." in fit.warning and fit.dropped == ("const",)


# --- 2. n = d + 1: an exact fit without residual degrees of freedom ---------------------------------

@pytest.mark.parametrize("fit_intercept", [True, False])
def test_no_residual_degrees_of_freedom_fits_and_says_there_are_no_standard_errors(fit_intercept):
    d = 20
    rng = np.random.default_rng(3)
    n = d + int(fit_intercept)
    x, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    fit = solve(x, y, fit_intercept)
    design = np.column_stack([np.ones(n), x]) if fit_intercept else x
    exact = np.linalg.solve(design, y)
    assert_close_to_norm(np.append(fit.intercept, fit.coef) if fit_intercept else fit.coef, exact, 1e-10)
    assert fit.dof == 0 and not fit.rank_deficient
    assert NO_RESIDUAL_DOF == "0 residual degrees of freedom: no standard errors" and NO_RESIDUAL_DOF in fit.warning
    rows = coefficient_rows(fit, [f"x{i}" for i in range(d)])
    assert all(math.isnan(r[k]) for r in rows for k in ("std_error", "t", "p_value", "ci_low", "ci_high"))
    stats = fit_statistics(fit)
    assert stats["df_resid"] == 0 and math.isnan(stats["f_statistic"]) and math.isnan(stats["residual_sd"])


def test_one_residual_degree_of_freedom_warns_of_nothing():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((22, 20)), rng.standard_normal(22)
    fit = solve(x, y)
    assert fit.dof == 1 and (fit.warning is None or NO_RESIDUAL_DOF not in fit.warning)


# --- 3. Values whose squares overflow float64 ------------------------------------------------------

@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("rows", [None, 37])
def test_huge_values_are_fitted_in_powers_of_two_as_statsmodels_fits_them_prescaled(fit_intercept, rows):
    x, y = huge_data()
    with np.errstate(over="raise", invalid="raise"):  # the overflow is handled, never merely produced
        fit = solve(x, y, fit_intercept, rows=rows)
    coef, coef_se, intercept, intercept_se, r2 = statsmodels_in_powers_of_two(x, y, fit_intercept)
    # Relative to each coefficient's scale: they differ by 200 orders of magnitude.
    assert_allclose(fit.coef, coef, rtol=1e-9)
    assert_allclose(fit.coef_se, coef_se, rtol=1e-8)
    if fit_intercept:
        assert fit.intercept == pytest.approx(intercept, rel=1e-9)
        assert fit.intercept_se == pytest.approx(intercept_se, rel=1e-8)
    assert fit.r_squared == pytest.approx(r2, rel=1e-12)
    assert math.isinf(fit.rss) and math.isfinite(fit.residual_sd)  # (1e180)² is beyond float64; its root is not
    assert fit.warning is None and fit.expected_digits >= 9


def test_on_raw_huge_values_statsmodels_returns_zeros_where_the_closed_form_does_not():
    x, y = huge_data()
    OLS, add_constant = _ols()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = OLS(y, add_constant(x)).fit().params
    assert not np.any(raw[1:] == solve(x, y).coef)  # what this edge is about: zeros, or nonsense


def test_power_of_two_units_leave_the_fit_exactly_as_on_ordinary_data():
    """Scaling by 2^k is exact: an ill-conditioned design (the QR path) gives the same bits, times 2^k."""
    rng = np.random.default_rng(5)
    t = rng.standard_normal(300)
    x = np.column_stack([t, t + 1e-7 * rng.standard_normal(300)])
    y = 1 + x @ [1.0, 1.0] + 0.01 * rng.standard_normal(300)
    plain, huge = solve(x, y), solve(np.ldexp(x, 700), np.ldexp(y, 600))
    assert plain.method == huge.method == "QR, extended precision"
    assert_allclose(np.ldexp(huge.coef, 100), plain.coef, rtol=1e-15)
    assert np.ldexp(huge.intercept, -600) == pytest.approx(plain.intercept, rel=1e-13)
    assert huge.expected_digits == plain.expected_digits and huge.warning == plain.warning


def test_chunks_in_different_units_merge_exactly():
    """A stream whose last rows are 1e170 times the first: each chunk's units, merged to the coarser."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((300, 2))
    y = 2 + x @ [1.0, -1.0] + 0.1 * rng.standard_normal(300)
    x[200:] *= 1e170
    fit = solve(x, y, names=["p", "q"], rows=50)
    coef, _, intercept, _, _ = statsmodels_in_powers_of_two(x, y)
    assert_allclose(fit.coef, coef, rtol=1e-9)
    assert fit.intercept == pytest.approx(intercept, rel=1e-9)


def test_ordinary_moments_carry_no_units_and_huge_ones_do():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((100, 2)), rng.standard_normal(100)
    assert not Moments.of_chunk(x, y).scaled
    big = Moments.of_chunk(x * [1e200, 1.0], y)
    assert big.scaled and big.finite and not big.out_of_range
    assert big.x_exponent[0] == int(np.frexp(np.max(np.abs(x[:, 0] * 1e200)))[1])


def test_finite_moments_near_the_top_of_float64_are_rescaled_without_another_pass():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((20000, 1)) * 5e142  # Σx² ≈ 2.5e288 per 1000 rows, 5e289 in all (HUGE_SUMS ≈ 1e289)
    y = x[:, 0] + 1e141 * rng.standard_normal(20000)
    chunks = [(x[i : i + 1000], y[i : i + 1000]) for i in range(0, 20000, 1000)]
    assert all(not Moments.of_chunk(*c).scaled for c in chunks)  # each chunk is in range ...
    moments = accumulate(chunks, 1)
    assert moments.scaled and np.diag(moments.sxx).max() < HUGE_SUMS  # ... their sum is not
    fit = solve_least_squares(moments, lambda: chunks)
    coef, _, intercept, _, _ = statsmodels_in_powers_of_two(x, y)
    assert_allclose(fit.coef, coef, rtol=1e-10)
    assert fit.intercept == pytest.approx(intercept, rel=1e-8)


def test_values_near_the_float64_maximum_are_fitted():
    x, y = huge_data(x_scale=(1e307,), y_scale=1e306)
    fit = solve(x, y)
    coef, _, intercept, _, _ = statsmodels_in_powers_of_two(x, y)
    assert_allclose(fit.coef, coef, rtol=1e-9)
    assert fit.intercept == pytest.approx(intercept, rel=1e-9)


def test_tiny_values_whose_squares_underflow_are_fitted_too():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((100, 2))
    y = 1 + x @ [3.0, 4.0] + 0.1 * rng.standard_normal(100)
    plain, tiny = solve(x, y), solve(x * 1e-200, y)
    assert not tiny.rank_deficient  # the squares are 0 in float64: without units the columns looked constant
    assert_allclose(tiny.coef * 1e-200, plain.coef, rtol=1e-12)


def test_a_coefficient_beyond_float64_is_refused_in_one_line_naming_its_column():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((50, 1)) * 1e-200
    y = 1e200 * (x[:, 0] * 1e200 + 0.1 * rng.standard_normal(50))  # slope ~1e400
    with pytest.raises(NonFiniteData, match=r"^the coefficient of 'tiny' is about 2\^\d+, beyond float64's range") as e:
        solve(x, y, names=["tiny"])
    assert "\n" not in str(e.value)


def test_a_nan_is_refused_naming_its_column():
    x, y = huge_data(n=30)
    x[4, 1] = np.nan
    with pytest.raises(NonFiniteData, match="^feature column 1 .*NaN or an infinite value") as e:
        Moments.of_chunk(x, y)
    assert e.value.column == 1
    y2 = np.where(np.arange(30) == 3, np.inf, 1.0)
    with pytest.raises(NonFiniteData, match="^the target holds a NaN or an infinite value"):
        solve(x[:, :1], y2)


def test_moments_a_caller_summed_past_float64_are_summed_again_by_the_fit():
    from linreg.moments import centred_from_raw, raw_sums

    x, y = huge_data()
    with np.errstate(all="ignore"):
        overflowed = centred_from_raw(len(y), *raw_sums(x, y), second_pass=None)
    assert not overflowed.finite
    fit = solve_least_squares(overflowed, lambda: [(x, y)], names=["a", "b"])
    assert_allclose(fit.coef, solve(x, y).coef, rtol=1e-12)


def test_the_device_path_falls_back_to_power_of_two_units():
    pytest.importorskip("torch")
    x, y = huge_data(n=100)
    on_device = moments_on_device(x, y, "cpu")  # the device code, on torch's CPU
    assert on_device.scaled and on_device.finite
    assert_allclose(on_device.sxx, Moments.of_chunk(x, y).sxx, rtol=1e-12)


def test_scores_of_huge_data_are_computed_in_units_and_the_mse_is_said_out_of_range():
    x, y = huge_data()
    moments = Moments.of_chunk(x, y)
    fit = solve(x, y)
    mse, r2 = training_mse_r2(moments, fit.coef, fit.intercept)
    assert math.isnan(mse) and r2 == pytest.approx(fit.r_squared, rel=1e-10)
    # A target whose residuals are in range: the MSE is computed, multiplied back.
    xs, ys = huge_data(x_scale=(1e160, 1.0), y_scale=1e100)
    small = Moments.of_chunk(xs, ys)
    fit = solve(xs, ys)
    mse, _ = training_mse_r2(small, fit.coef, fit.intercept)
    residual = ys - fit.intercept - xs @ fit.coef
    assert mse == pytest.approx(np.mean(residual**2), rel=1e-8)


def test_the_distance_between_huge_parameters_is_not_inf():
    a = np.array([3e200, 1.0])
    assert parameter_distance(a, 2e200, a * 0.5, 1e200) == pytest.approx(math.hypot(1.5e200, 1e200))
    assert parameter_distance(np.array([1.0, 2.0]), 0.0, np.zeros(2), 0.0) == math.sqrt(5.0)


def test_iterative_solvers_on_standardised_huge_data_agree_with_the_closed_form():
    """What a run on a table does by default: the scaling from the moments (now in range), then
    unscaled; the MSE is said to be out of range, the R² and the distance are numbers."""
    from linreg.data import SourceSpec

    x, y = huge_data(n=500, x_scale=(1e170, 1e-20), y_scale=1e200)

    class Source:  # a DataSource in memory, without a generating spec
        spec, n, d, row_groups = SourceSpec(n=500, d=2, seed=0), 500, 2, 1

        def arrays(self):
            return x, y

        def iter_chunks(self, rows=1 << 20):
            yield x, y

        def iter_row_groups(self, order):
            for _ in order:
                yield x, y

        def head(self, rows):
            return x[:rows], y[:rows]

    data = Source()
    moments = accumulate(data.iter_chunks(), 2)
    scaling = Scaling.of(moments)
    assert all(map(math.isfinite, (*scaling.scale_x, scaling.scale_y, *scaling.mean_x, scaling.mean_y)))
    closed = SOLVERS["closed_form"].fit(data, SOLVERS["closed_form"].defaults)
    info = SOLVERS["numpy_gd"]
    fit = scaling.unscale(info.fit(ScaledSource(data, scaling), info.defaults))
    assert_allclose(fit.coef, closed.coef, rtol=1e-6)
    report = evaluate_fit(moments, None, fit, closed)
    assert math.isnan(report.mse) and MSE_OUT_OF_RANGE in report.message and math.isnan(report.final_loss)
    assert report.r2 == pytest.approx(closed.least_squares.r_squared, rel=1e-8)
    assert math.isfinite(report.distance_to_closed_form)


# --- The three through a table, as a run reports them ---------------------------------------------

def table(tmp_path, name, columns: dict, target="y"):
    """A CSV of `columns` ingested as a run ingests it, read in memory and streamed one row group at a time."""
    import pandas as pd

    path = tmp_path / f"{name}.csv"
    pd.DataFrame(columns).to_csv(path, index=False, float_format="%.17g")
    ref = table_ref(ingest_table(path, target, data_root=tmp_path / "root"), seed=0)
    return ref, open_data(ref), open_data(ref, memory_budget=1)


def run_summary(ref, data):
    """The closed form and gradient descent on standardised data (a table's default), summarised."""
    scaling = Scaling.of(accumulate(data.iter_chunks(), data.d))
    gd = SOLVERS["numpy_gd"]
    fits = [SOLVERS["closed_form"].fit(data, SOLVERS["closed_form"].defaults),
            scaling.unscale(gd.fit(ScaledSource(data, scaling), gd.defaults))]
    return summarize("run-1", ref, data, fits)


def test_a_tables_collinear_columns_are_named_in_the_summary_and_the_console(tmp_path):
    x, y = collinear()
    ref, data, _ = table(tmp_path, "twice", {"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y})
    summary = run_summary(ref, data)
    closed = next(r for r in summary.results if r.solver == "closed_form")
    for said in (summary.reference.warning, closed.message):
        assert "columns involved: 'x1', 'x2'." in said and "w0" not in said
    assert "columns involved: 'x1', 'x2'." in console_table(summary)


def test_a_table_with_as_many_rows_as_parameters_warns_in_the_summary_and_the_console(tmp_path):
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal(4)
    ref, data, _ = table(tmp_path, "exact", {"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})
    summary = run_summary(ref, data)
    closed = next(r for r in summary.results if r.solver == "closed_form")
    assert closed.status == "ok"
    assert NO_RESIDUAL_DOF in summary.reference.warning and NO_RESIDUAL_DOF in closed.message
    assert f"Warning: {NO_RESIDUAL_DOF}" in console_table(summary)
    assert all(math.isnan(c.std_error) for c in summary.coefficients)
    assert summary.fit_statistics.df_resid == 0 and math.isnan(summary.fit_statistics.f_statistic)


def test_a_table_of_huge_values_is_fitted_in_memory_and_streamed_and_scored(tmp_path):
    x, y = huge_data(n=300, x_scale=(1e200, 1e-3), y_scale=1e180)
    ref, in_memory, streamed = table(tmp_path, "huge", {"big": x[:, 0], "small": x[:, 1], "y": y})
    coef, coef_se, intercept, _, r2 = statsmodels_in_powers_of_two(x, y)
    for data in (in_memory, streamed):
        closed = SOLVERS["closed_form"].fit(data, SOLVERS["closed_form"].defaults)
        assert closed.status == "ok" and closed.message is None
        assert_allclose(closed.coef, coef, rtol=1e-9)
        assert_allclose(closed.least_squares.coef_se, coef_se, rtol=1e-8)
        assert closed.intercept == pytest.approx(intercept, rel=1e-9)
    summary = run_summary(ref, streamed)
    assert summary.fit_statistics.r_squared == pytest.approx(r2, rel=1e-10)
    assert math.isfinite(summary.fit_statistics.f_statistic) and math.isfinite(summary.fit_statistics.residual_sd)
    assert all(math.isnan(r.mse) and r.r2 == pytest.approx(r2, rel=1e-6) for r in summary.results)
    assert MSE_OUT_OF_RANGE in summary.reference.warning  # the console's reference line says why
