"""The fit's diagnostics against statsmodels, against exact rational arithmetic, and streamed against in memory.

Two tables: NIST's Longley (`data/examples/longley.csv`, target `employed`: collinear, κ ≈ 4e4
as fitted) and a seeded heteroscedastic one (skewed errors whose spread grows with a feature,
one high-leverage row), each with and without an intercept, each streamed in chunks of 3 and 7
rows and whole.

Tolerances follow the problem. On the heteroscedastic table statsmodels and this module agree
to rounding: 1e-9 relative, element by element. On Longley statsmodels' pinv loses digits of its
own (exact arithmetic puts its HC3 standard errors 1.6e-9 and its Cook's distances 2.1e-9 off,
where ours are within 1e-11), so there it is compared at 5e-9 element by element, per-row arrays
at 1e-9 relative to their largest value, and every value is checked against exact rational
arithmetic on the same float64 data at 1e-10. The residual tests (Durbin–Watson to kurtosis) agree
with statsmodels to 1e-10; a p-value p = exp(−K/2) magnifies K's relative error by K/2, and is
compared with its tolerance magnified so. Streamed and in-memory results agree to 1e-12.
"""

import functools
import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats

from linreg.data import holdout_mask
from linreg.diagnostics import bread as bread_module, passes
from linreg.diagnostics import (
    COV_TYPES, diagnose, diagnostic_panels, influential_rows, kurtosistest_z, partial_regression, residual_tests,
    robust_covariance, skewtest_z,
)
from linreg.least_squares import solve_least_squares
from linreg.moments import accumulate

ROOT = Path(__file__).resolve().parents[1]
LONGLEY = ROOT / "data" / "examples" / "longley.csv"
CHUNK_SIZES = (3, 7, None)  # None: every row in one chunk
TESTS_RTOL = 1e-10
STATSMODELS_RTOL = {"longley": 5e-9, "heteroscedastic": 1e-9}
ROWS_RTOL = 1e-9  # per-row arrays, relative to their largest value
EXACT_RTOL = 1e-10
STREAM_RTOL = 1e-12


# --- Data and fits ----------------------------------------------------------------------------------

def longley() -> tuple[np.ndarray, np.ndarray]:
    table = pacsv.read_csv(LONGLEY).to_pandas().astype(float)
    return table.drop(columns="employed").to_numpy(), table["employed"].to_numpy()


def heteroscedastic() -> tuple[np.ndarray, np.ndarray]:
    """300 rows, 3 features of different scales and offsets; gamma errors (skewed) whose spread
    grows with |x0|; row 1 far out in x0 (high leverage)."""
    rng = np.random.default_rng(20260517)
    n = 300
    x = rng.normal(size=(n, 3)) * [1.0, 20.0, 0.05] + [0.0, 100.0, -1.0]
    x[0] = [6.0, 100.0, -0.97]
    noise = (rng.gamma(4.0, size=n) - 4.0) / 2 * (0.5 + np.abs(x[:, 0]))
    return x, 2.0 + x @ [1.5, -0.2, 10.0] + noise


TABLES = {"longley": longley, "heteroscedastic": heteroscedastic}


def chunked(x: np.ndarray, y: np.ndarray, size: int | None):
    """chunks(): a fresh iterator of (x, y) in row order, `size` rows at a time (None: all at once)."""
    size = size or len(y)
    return lambda: ((x[i : i + size], y[i : i + size]) for i in range(0, len(y), size))


def fitted(x: np.ndarray, y: np.ndarray, fit_intercept: bool = True):
    moments = accumulate([(x, y)], x.shape[1])
    return solve_least_squares(moments, lambda: [(x, y)], fit_intercept), moments


@functools.cache
def statsmodels():
    """statsmodels' OLS and what reads it, imported on first use (as test_inference does: it warns
    at import under pandas 3, which is not this project's to fix)."""
    from pandas.errors import Pandas4Warning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Pandas4Warning)
        from statsmodels.regression.linear_model import OLS
        from statsmodels.stats.outliers_influence import OLSInfluence
        from statsmodels.stats.stattools import durbin_watson, jarque_bera, omni_normtest
        from statsmodels.tools.tools import add_constant
    return OLS, add_constant, OLSInfluence, durbin_watson, omni_normtest, jarque_bera


def statsmodels_ols(x, y, fit_intercept: bool, cov_type: str = "nonrobust"):
    OLS, add_constant, *_ = statsmodels()
    return OLS(y, add_constant(x, has_constant="add") if fit_intercept else x).fit(cov_type=cov_type)


def statsmodels_block(resid: np.ndarray) -> np.ndarray:
    """The summary's lower block: DW, Omnibus and p, JB and p, skew, kurtosis."""
    *_, durbin_watson, omni_normtest, jarque_bera = statsmodels()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's kurtosistest warns below 20 rows, and prints the value anyway
        omnibus, omnibus_p = omni_normtest(resid)
    jb, jb_p, skew, kurtosis = jarque_bera(resid)
    return np.array([durbin_watson(resid), omnibus, omnibus_p, jb, jb_p, skew, kurtosis], dtype=float)


def block_of(t) -> np.ndarray:
    return np.array([t.durbin_watson, t.omnibus, t.omnibus_pvalue, t.jarque_bera, t.jarque_bera_pvalue,
                     t.skew, t.kurtosis])


def assert_block_close(actual, expected, rtol: float):
    """The summary block at rtol, its p-values (p = exp(−K/2): d ln p / d ln K = K/2) at rtol·(1 + K/2)."""
    tolerance = np.full(7, rtol)
    tolerance[[2, 4]] *= 1 + np.abs(expected[[1, 3]]) / 2
    for got, want, each in zip(actual, expected, tolerance):
        assert_allclose(got, want, rtol=each)


def standard_errors(c) -> np.ndarray:
    return np.concatenate([[c.intercept_se], c.coef_se]) if not math.isnan(c.intercept_se) else c.coef_se


@functools.cache
def case_data(table: str, fit_intercept: bool):
    """(x, y, solution, moments, statsmodels' results, its influence frame) of one case."""
    x, y = TABLES[table]()
    solution, moments = fitted(x, y, fit_intercept)
    ols = statsmodels_ols(x, y, fit_intercept)
    frame = statsmodels()[2](ols).summary_frame()
    return x, y, solution, moments, ols, frame


CASES = [(table, fit_intercept) for table in TABLES for fit_intercept in (True, False)]
CASE_IDS = [f"{table}-{'intercept' if i else 'no-intercept'}" for table, i in CASES]


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request):
    return request.param


@pytest.fixture(params=CHUNK_SIZES, ids=lambda size: f"chunks-{size or 'all'}")
def size(request):
    return request.param


def streamed(table: str, fit_intercept: bool, size: int | None, **options):
    """`diagnose` of the case, every row in the panels, streamed `size` rows at a time."""
    x, y, solution, moments, *_ = case_data(table, fit_intercept)
    return diagnose(solution, moments, chunked(x, y, size), max_rows=len(y), **options)


def assert_rows_close(actual, desired, rtol: float):
    """Per-row values relative to the largest of them (a small residual's digits are its norm's)."""
    desired = np.asarray(desired, dtype=float)
    assert_allclose(actual, desired, rtol=0, atol=rtol * np.max(np.abs(desired)))


# --- Against statsmodels ----------------------------------------------------------------------------

def test_residual_tests_match_statsmodels(case, size):
    table, fit_intercept = case
    _, _, _, _, ols, _ = case_data(*case)
    expected = statsmodels_block(np.asarray(ols.resid))
    result = streamed(table, fit_intercept, size).residual_tests
    assert result.n == len(ols.resid)
    assert_block_close(block_of(result), expected, TESTS_RTOL)


def test_residual_tests_alone_equal_those_of_diagnose(case, size):
    x, y, solution, moments, *_ = case_data(*case)
    alone = residual_tests(solution, moments, chunked(x, y, size))
    assert_allclose(block_of(alone), block_of(streamed(*case, None).residual_tests), rtol=STREAM_RTOL)


def test_covariances_match_statsmodels(case, size):
    x, y, solution, moments, *_ = case_data(*case)
    result = streamed(*case, size)
    for cov_type in COV_TYPES:
        ols = statsmodels_ols(x, y, case[1], cov_type)
        covariance = result.covariances[cov_type]
        assert covariance.cov_type == cov_type
        assert_allclose(standard_errors(covariance), ols.bse, rtol=STATSMODELS_RTOL[case[0]])
        assert_allclose(np.sqrt(np.diag(covariance.cov)), ols.bse, rtol=STATSMODELS_RTOL[case[0]])
        assert_allclose(covariance.cov, covariance.cov.T, rtol=1e-12)
    nonrobust = result.covariances["nonrobust"]
    assert_allclose(nonrobust.coef_se, solution.coef_se, rtol=1e-10)


def test_robust_covariance_alone_equals_diagnose(case, size):
    x, y, solution, moments, *_ = case_data(*case)
    whole = streamed(*case, None).covariances
    for cov_type in COV_TYPES:
        alone = robust_covariance(solution, moments, chunked(x, y, size), cov_type)
        assert_allclose(alone.cov, whole[cov_type].cov, rtol=STREAM_RTOL)


def test_influence_matches_statsmodels(case, size):
    x, y, _, _, ols, frame = case_data(*case)
    panels = streamed(*case, size).panels
    assert not panels.sampled and panels.parameters == len(ols.params)
    assert_array_equal(panels.rows, np.arange(1, len(y) + 1))
    for ours, theirs in ((panels.leverage, frame["hat_diag"]), (panels.cooks_distance, frame["cooks_d"]),
                         (panels.standardized_residuals, frame["standard_resid"]),
                         (panels.residuals, ols.resid), (panels.fitted, ols.fittedvalues)):
        assert_rows_close(ours, theirs, ROWS_RTOL)
        if case[0] == "heteroscedastic":
            assert_allclose(ours, theirs, rtol=STATSMODELS_RTOL["heteroscedastic"])


def test_top_rows_by_cooks_distance_match_statsmodels(case, size):
    x, y, solution, moments, _, frame = case_data(*case)
    expected = frame.sort_values("cooks_d", ascending=False, kind="stable").head(5)
    top = influential_rows(solution, moments, chunked(x, y, size))
    assert [row.row for row in top] == list(expected.index + 1)  # data rows, counted from 1
    rtol = STATSMODELS_RTOL[case[0]]
    assert_allclose([row.cooks_distance for row in top], expected["cooks_d"], rtol=rtol)
    assert_allclose([row.leverage for row in top], expected["hat_diag"], rtol=rtol)
    assert_allclose([row.student_residual for row in top], expected["student_resid"], rtol=rtol)
    assert top == streamed(*case, size).influential


def test_top_rows_keep_as_many_as_asked(case, size):
    x, y, solution, moments, _, frame = case_data(*case)
    top = influential_rows(solution, moments, chunked(x, y, size), top=len(y) + 4)
    assert [row.row for row in top] == list(frame.sort_values("cooks_d", ascending=False, kind="stable").index + 1)
    assert [row.row for row in influential_rows(solution, moments, chunked(x, y, size), top=1)] == [top[0].row]


def test_partial_regression_slopes_are_the_coefficients(case, size):
    x, y, solution, moments, *_ = case_data(*case)
    partial = partial_regression(solution, moments, chunked(x, y, size), max_rows=len(y))
    slopes = np.sum(partial.x_residuals * partial.y_residuals, axis=0) / np.sum(partial.x_residuals**2, axis=0)
    assert_allclose(slopes, solution.coef, rtol=1e-10)
    assert_allclose(partial.coef, solution.coef, rtol=0)
    assert not partial.sampled and partial.x_residuals.shape == (len(y), x.shape[1])


def test_partial_regression_residuals_are_the_auxiliary_regressions(case):
    """Each is the residual of the full data's regression on the other columns (lstsq, in memory)."""
    x, y, solution, moments, *_ = case_data(*case)
    partial = streamed(*case, 7).partial_regression
    for j in range(x.shape[1]):
        others = np.delete(x, j, axis=1)
        if case[1]:
            others = np.column_stack([np.ones(len(y)), others])
        for ours, target in ((partial.x_residuals[:, j], x[:, j]), (partial.y_residuals[:, j], y)):
            expected = target - others @ np.linalg.lstsq(others, target, rcond=None)[0]
            assert_rows_close(ours, expected, 1e-9)


# --- Streamed against in memory, and against exact arithmetic -------------------------------------

def test_streamed_equals_in_memory(case):
    whole = streamed(*case, None)
    for size in (1, 3, 7):
        part = streamed(*case, size)
        assert_allclose(block_of(part.residual_tests), block_of(whole.residual_tests), rtol=STREAM_RTOL)
        for cov_type in COV_TYPES:
            assert_allclose(part.covariances[cov_type].cov, whole.covariances[cov_type].cov, rtol=STREAM_RTOL)
        assert [r.row for r in part.influential] == [r.row for r in whole.influential]
        for name in ("fitted", "residuals", "standardized_residuals", "leverage", "cooks_distance"):
            assert_rows_close(getattr(part.panels, name), getattr(whole.panels, name), STREAM_RTOL)
        for name in ("x_residuals", "y_residuals"):
            assert_rows_close(getattr(part.partial_regression, name), getattr(whole.partial_regression, name),
                              STREAM_RTOL)


def test_blocks_within_chunks_do_not_change_the_result(monkeypatch, case):
    """Each chunk is read a cache-sized block at a time: blocks of 5 rows across chunks of 7."""
    whole = streamed(*case, None)
    monkeypatch.setattr(passes, "block_rows", lambda columns: 5)
    part = streamed(*case, 7)
    assert_allclose(block_of(part.residual_tests), block_of(whole.residual_tests), rtol=STREAM_RTOL)
    assert_allclose(part.covariances["HC3"].cov, whole.covariances["HC3"].cov, rtol=STREAM_RTOL)
    assert [r.row for r in part.influential] == [r.row for r in whole.influential]
    assert_rows_close(part.partial_regression.y_residuals, whole.partial_regression.y_residuals, STREAM_RTOL)


def test_a_table_streamed_from_parquet_equals_it_in_memory(tmp_path):
    """Longley ingested and read back one 5-row batch at a time from parquet (no memory budget)."""
    from linreg.storage import ingest_table
    from linreg.storage.ingest.reader import open_table

    source = open_table(ingest_table(LONGLEY, "employed", data_root=tmp_path), memory_budget=0)
    assert source.arrays() is None  # streamed
    moments = accumulate(source.iter_chunks(5), source.d)
    solution = solve_least_squares(moments, lambda: source.iter_chunks(5))
    result = diagnose(solution, moments, lambda: source.iter_chunks(5))
    whole = streamed("longley", True, None)
    assert_allclose(result.covariances["HC3"].cov, whole.covariances["HC3"].cov, rtol=1e-11)
    assert_allclose(block_of(result.residual_tests), block_of(whole.residual_tests), rtol=1e-10)
    assert [r.row for r in result.influential] == [r.row for r in whole.influential]
    assert_rows_close(result.panels.cooks_distance, whole.panels.cooks_distance, 1e-10)


def _inverse(matrix: list[list[Fraction]]) -> list[list[Fraction]]:
    """The exact inverse by Gauss–Jordan elimination."""
    p = len(matrix)
    rows = [row[:] + [Fraction(int(i == j)) for j in range(p)] for i, row in enumerate(matrix)]
    for c in range(p):
        pivot = next(r for r in range(c, p) if rows[r][c] != 0)
        rows[c], rows[pivot] = rows[pivot], rows[c]
        rows[c] = [v / rows[c][c] for v in rows[c]]
        for r in range(p):
            if r != c and rows[r][c] != 0:
                factor = rows[r][c]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[c])]
    return [row[p:] for row in rows]


def exact_diagnostics(x: np.ndarray, y: np.ndarray, fit_intercept: bool) -> dict:
    """The least-squares diagnostics of these float64 values in exact rational arithmetic (square
    roots, and the residual tests' formulas of the exact residuals, in float64)."""
    design = [([Fraction(1)] if fit_intercept else []) + [Fraction(v) for v in row] for row in x.tolist()]
    target = [Fraction(v) for v in y.tolist()]
    n, p = len(design), len(design[0])
    bread = _inverse([[sum(r[a] * r[b] for r in design) for b in range(p)] for a in range(p)])
    moment = [sum(r[a] * t for r, t in zip(design, target)) for a in range(p)]
    theta = [sum(bread[a][b] * moment[b] for b in range(p)) for a in range(p)]
    e = [t - sum(v * c for v, c in zip(r, theta)) for r, t in zip(design, target)]
    h = [sum(r[a] * bread[a][b] * r[b] for a in range(p) for b in range(p)) for r in design]
    rss, dof = sum(v * v for v in e), n - p
    s2 = rss / dof

    def standard_errors(weights):
        meat = [[sum(w * v * v * r[a] * r[b] for w, v, r in zip(weights, e, design)) for b in range(p)]
                for a in range(p)]
        left = [[sum(bread[a][k] * meat[k][b] for k in range(p)) for b in range(p)] for a in range(p)]
        return np.sqrt([float(sum(left[a][k] * bread[k][a] for k in range(p))) for a in range(p)])

    weights = {"HC0": [1] * n, "HC1": [Fraction(n, dof)] * n, "HC2": [1 / (1 - v) for v in h],
               "HC3": [1 / (1 - v) ** 2 for v in h]}
    se = {t: standard_errors(w) for t, w in weights.items()}
    se["nonrobust"] = np.sqrt([float(s2 * bread[a][a]) for a in range(p)])
    left_out = [(rss - v * v / (1 - g)) / (dof - 1) if dof > 1 else math.nan for v, g in zip(e, h)]
    return {
        "residuals": np.array([float(v) for v in e]), "leverage": np.array([float(v) for v in h]),
        "cooks_distance": np.array([float(v * v * g / (p * s2 * (1 - g) ** 2)) for v, g in zip(e, h)]),
        "standardized_residuals": np.array([float(v) / math.sqrt(float(s2 * (1 - g))) for v, g in zip(e, h)]),
        "student_residuals": np.array([float(v) / math.sqrt(float(s * (1 - g))) for v, g, s in zip(e, h, left_out)]),
        "se": se,
    }


@functools.cache
def exact_longley(fit_intercept: bool) -> dict:
    return exact_diagnostics(*longley(), fit_intercept)


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
def test_longley_matches_exact_rational_arithmetic(fit_intercept):
    exact = exact_longley(fit_intercept)
    result = streamed("longley", fit_intercept, 3)
    expected_tests = statsmodels_block(exact["residuals"])
    assert_block_close(block_of(result.residual_tests), expected_tests, EXACT_RTOL)
    for cov_type in COV_TYPES:
        assert_allclose(standard_errors(result.covariances[cov_type]), exact["se"][cov_type], rtol=EXACT_RTOL)
    for name in ("residuals", "leverage", "cooks_distance", "standardized_residuals"):
        assert_allclose(getattr(result.panels, name), exact[name], rtol=EXACT_RTOL)
    x, y, solution, moments, *_ = case_data("longley", fit_intercept)
    top = influential_rows(solution, moments, chunked(x, y, 3), top=len(y))
    assert_allclose([r.student_residual for r in top], exact["student_residuals"][[r.row - 1 for r in top]],
                    rtol=EXACT_RTOL)


# --- The bread --------------------------------------------------------------------------------------

def test_the_bread_is_taken_from_the_moments_when_they_keep_its_digits_else_by_a_qr_pass():
    assert streamed("longley", True, 7).covariances["HC0"].bread == "Cholesky of the moments"  # κ(corr) ≈ 1.2e4
    assert streamed("longley", False, 7).covariances["HC0"].bread == "QR pass"  # uncentred: κ(corr) ≈ 1.2e6
    assert streamed("heteroscedastic", False, 7).covariances["HC0"].bread == "Cholesky of the moments"


@pytest.mark.parametrize("limit, method", [(0.0, "QR pass"), (math.inf, "Cholesky of the moments")],
                         ids=["qr", "moments"])
@pytest.mark.parametrize("table, fit_intercept", [("heteroscedastic", True), ("heteroscedastic", False),
                                                  ("longley", True)])
def test_either_bread_matches_statsmodels(monkeypatch, limit, method, table, fit_intercept):
    monkeypatch.setattr(bread_module, "MAX_MOMENTS_CONDITION", limit)
    x, y, _, _, ols, frame = case_data(table, fit_intercept)
    result = streamed(table, fit_intercept, 7)
    for cov_type in COV_TYPES:
        assert result.covariances[cov_type].bread == method
        assert_allclose(standard_errors(result.covariances[cov_type]),
                        statsmodels_ols(x, y, fit_intercept, cov_type).bse, rtol=STATSMODELS_RTOL[table])
    assert_rows_close(result.panels.leverage, frame["hat_diag"], ROWS_RTOL)
    assert_rows_close(result.panels.cooks_distance, frame["cooks_d"], ROWS_RTOL)


# --- Sampled rows -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
def test_a_sample_is_the_same_rows_however_the_data_is_chunked(fit_intercept):
    x, y, solution, moments, *_ = case_data("heteroscedastic", fit_intercept)
    whole = streamed("heteroscedastic", fit_intercept, None)
    samples = [diagnose(solution, moments, chunked(x, y, size), max_rows=40, seed=3) for size in CHUNK_SIZES]
    for sample in samples:
        panels, partial = sample.panels, sample.partial_regression
        assert panels.sampled and partial.sampled
        assert 0 < len(panels.rows) <= 40 and np.all(np.diff(panels.rows) > 0)
        assert_array_equal(panels.rows, samples[0].panels.rows)
        assert_array_equal(partial.rows, panels.rows)
        index = panels.rows - 1
        for name in ("fitted", "residuals", "standardized_residuals", "leverage", "cooks_distance"):
            assert_allclose(getattr(panels, name), getattr(whole.panels, name)[index], rtol=1e-12)
        for name in ("x_residuals", "y_residuals"):
            assert_rows_close(getattr(partial, name), getattr(whole.partial_regression, name)[index], STREAM_RTOL)
    other = diagnostic_panels(solution, moments, chunked(x, y, 7), max_rows=40, seed=4)
    assert not np.array_equal(other.rows, samples[0].panels.rows)


def test_a_sample_holds_at_most_max_rows_and_the_cap_is_reached():
    x, y, solution, moments, *_ = case_data("heteroscedastic", True)
    counts = [len(diagnostic_panels(solution, moments, chunked(x, y, None), max_rows=40, seed=seed).rows)
              for seed in range(30)]
    assert max(counts) == 40 and min(counts) > 20  # Binomial(300, 40/300), capped at 40


def test_a_sample_is_not_the_holdout_split_of_the_same_seed():
    x, y, solution, moments, *_ = case_data("heteroscedastic", True)
    panels = diagnostic_panels(solution, moments, chunked(x, y, 7), max_rows=40, seed=0)
    held_out = np.flatnonzero(holdout_mask(0, len(y), 40 / len(y), 0)) + 1
    assert len(np.intersect1d(panels.rows, held_out)) < len(panels.rows) // 2


def test_every_row_when_max_rows_is_at_least_n():
    x, y, solution, moments, *_ = case_data("heteroscedastic", True)
    panels = diagnostic_panels(solution, moments, chunked(x, y, 7), max_rows=len(y))
    assert not panels.sampled
    assert_array_equal(panels.rows, np.arange(1, len(y) + 1))
    assert panels.rows.dtype == np.int64


# --- Data in power-of-two units, and the edges -----------------------------------------------------

@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
def test_data_whose_squares_overflow_give_the_same_diagnostics_scaled(fit_intercept):
    """Longley times 2^600 (x) and 2^700 (y): fitted in power-of-two units, reported in the data's."""
    x, y = longley()
    solution, moments = fitted(np.ldexp(x, 600), np.ldexp(y, 700), fit_intercept)
    assert moments.scaled
    big = diagnose(solution, moments, chunked(np.ldexp(x, 600), np.ldexp(y, 700), 3))
    small = streamed("longley", fit_intercept, 3)
    assert_allclose(block_of(big.residual_tests), block_of(small.residual_tests), rtol=1e-13)
    for cov_type in COV_TYPES:
        assert_allclose(big.covariances[cov_type].coef_se, np.ldexp(small.covariances[cov_type].coef_se, 100),
                        rtol=1e-13)
    if fit_intercept:
        assert_allclose(big.covariances["HC3"].intercept_se, np.ldexp(small.covariances["HC3"].intercept_se, 700),
                        rtol=1e-13)
    assert_allclose(big.panels.fitted, np.ldexp(small.panels.fitted, 700), rtol=1e-13)
    assert_allclose(big.panels.cooks_distance, small.panels.cooks_distance, rtol=1e-13)
    assert_allclose(big.partial_regression.x_residuals, np.ldexp(small.partial_regression.x_residuals, 600),
                    rtol=1e-13, atol=0)
    assert [r.row for r in big.influential] == [r.row for r in small.influential]


def test_no_residual_degrees_of_freedom_give_nan_without_a_warning():
    x, y = longley()
    x, y = x[:7], y[:7]  # 7 rows, 7 parameters
    solution, moments = fitted(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = diagnose(solution, moments, chunked(x, y, 3))
    assert result.residual_tests.n == 7 and np.all(np.isnan(block_of(result.residual_tests)))
    for cov_type in COV_TYPES:
        assert np.all(np.isnan(result.covariances[cov_type].cov))
    assert_allclose(result.panels.leverage, 1.0, rtol=1e-10)
    assert np.all(np.isnan(result.panels.cooks_distance)) and np.all(np.isnan(result.panels.standardized_residuals))
    assert [r.row for r in result.influential] == [1, 2, 3, 4, 5]  # every Cook's distance NaN: in row order
    assert all(math.isnan(r.student_residual) for r in result.influential)


def test_one_residual_degree_of_freedom_has_no_studentized_residual():
    x, y = longley()
    x, y = x[:8], y[:8]
    solution, moments = fitted(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = diagnose(solution, moments, chunked(x, y, 3))
    assert all(math.isnan(r.student_residual) for r in result.influential)
    exact = exact_diagnostics(x, y, True)  # leverages up to 0.997: statsmodels' Cook's are 3e-8 off
    for name in ("leverage", "cooks_distance", "standardized_residuals"):
        assert_allclose(getattr(result.panels, name), exact[name], rtol=EXACT_RTOL)
    assert np.all(np.isfinite(block_of(result.residual_tests)))  # 8 rows: the Omnibus exists


def test_a_row_of_leverage_one_has_no_cooks_distance_and_no_hc2_or_hc3():
    """A feature that is nonzero on row 5 only fits that row exactly (h = 1)."""
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(size=30), np.zeros(30)])
    x[4, 1] = 1.0
    y = x @ [1.0, 2.0] + rng.normal(size=30)
    solution, moments = fitted(x, y)
    _, _, OLSInfluence, *_ = statsmodels()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # statsmodels divides by 1 − h = 0
        frame = OLSInfluence(statsmodels_ols(x, y, True)).summary_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = diagnose(solution, moments, chunked(x, y, 7))
    panels = result.panels
    assert panels.leverage[4] == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(panels.cooks_distance[4]) and math.isnan(panels.standardized_residuals[4])
    others = np.arange(30) != 4
    assert_allclose(panels.cooks_distance[others], frame["cooks_d"].to_numpy()[others], rtol=1e-9)
    assert np.all(np.isnan(result.covariances["HC2"].cov)) and np.all(np.isnan(result.covariances["HC3"].cov))
    for cov_type in ("nonrobust", "HC0", "HC1"):
        assert_allclose(standard_errors(result.covariances[cov_type]),
                        statsmodels_ols(x, y, True, cov_type).bse, rtol=1e-9)
    top = influential_rows(solution, moments, chunked(x, y, 7), top=30)
    assert top[-1].row == 5 and math.isnan(top[-1].cooks_distance)  # NaN after every number


def test_the_omnibus_test_needs_eight_rows():
    x, y = longley()
    x, y = x[:7, :1], y[:7]
    solution, moments = fitted(x, y)
    result = residual_tests(solution, moments, chunked(x, y, 3))
    expected = statsmodels_block(np.asarray(statsmodels_ols(x, y, True).resid))
    assert math.isnan(result.omnibus) and math.isnan(result.omnibus_pvalue)
    assert_allclose(block_of(result)[[0, 3, 4, 5, 6]], expected[[0, 3, 4, 5, 6]], rtol=TESTS_RTOL)


@pytest.mark.parametrize("n", [8, 9, 20, 21, 57, 1000])
def test_skewtest_and_kurtosistest_from_moments_equal_scipy(n):
    rng = np.random.default_rng(n)
    for sample in (rng.normal(size=n), rng.exponential(size=n), rng.uniform(size=n)):
        skew, kurtosis = stats.skew(sample), stats.kurtosis(sample, fisher=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # kurtosistest warns below 20 rows
            assert skewtest_z(n, skew) == pytest.approx(stats.skewtest(sample).statistic, rel=1e-12)
            assert kurtosistest_z(n, kurtosis) == pytest.approx(stats.kurtosistest(sample).statistic, rel=1e-12)
    assert math.isnan(skewtest_z(7, 0.5)) and math.isnan(kurtosistest_z(4, 3.0))


# --- Refusals ---------------------------------------------------------------------------------------

def test_a_rank_deficient_fit_is_refused_but_its_residuals_are_tested():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 2))
    x = np.column_stack([x, x[:, 0] + x[:, 1]])
    y = x[:, 0] + rng.normal(size=40)
    solution, moments = fitted(x, y)
    assert solution.rank_deficient
    for call in (lambda c: diagnose(solution, moments, c), lambda c: robust_covariance(solution, moments, c),
                 lambda c: influential_rows(solution, moments, c), lambda c: diagnostic_panels(solution, moments, c),
                 lambda c: partial_regression(solution, moments, c)):
        with pytest.raises(ValueError, match="rank-deficient"):
            call(chunked(x, y, 7))
    assert math.isfinite(residual_tests(solution, moments, chunked(x, y, 7)).durbin_watson)


@pytest.mark.parametrize("call, message", [
    (lambda s, m, c: robust_covariance(s, m, c, "HC4"), "cov_type: 'HC4' is not one of"),
    (lambda s, m, c: robust_covariance(s, m, c, "hc1"), "cov_type: 'hc1'"),
    (lambda s, m, c: influential_rows(s, m, c, top=0), "top: 0"),
    (lambda s, m, c: influential_rows(s, m, c, top=2.5), "top: 2.5"),
    (lambda s, m, c: diagnose(s, m, c, top=True), "top: True"),
    (lambda s, m, c: diagnostic_panels(s, m, c, max_rows=0), "max_rows: 0"),
    (lambda s, m, c: partial_regression(s, m, c, seed=-1), "seed: -1"),
])
def test_bad_arguments_are_refused_by_name(call, message):
    x, y, solution, moments, *_ = case_data("heteroscedastic", True)
    with pytest.raises(ValueError, match=message):
        call(solution, moments, chunked(x, y, 7))


@pytest.mark.parametrize("limit", [0.0, math.inf], ids=["qr", "moments"])
def test_chunks_that_are_not_the_fitted_rows_are_refused(monkeypatch, limit):
    monkeypatch.setattr(bread_module, "MAX_MOMENTS_CONDITION", limit)  # the QR pass reads the chunks first
    x, y, solution, moments, *_ = case_data("heteroscedastic", True)
    with pytest.raises(ValueError, match="chunks: gave 299 rows, but the fit and its moments hold 300"):
        diagnose(solution, moments, chunked(x[1:], y[1:], 7))
    wide = r"chunks: x of shape \(7, 2\) beside y of shape \(7,\); expected \(7, 3\)"
    with pytest.raises(ValueError, match=wide):
        residual_tests(solution, moments, chunked(x[:, :2], y, 7))
    with pytest.raises(ValueError, match=wide):
        diagnose(solution, moments, chunked(x[:, :2], y, 7))
    other, other_moments = fitted(x[:50], y[:50])
    with pytest.raises(ValueError, match="does not match moments of 300 rows"):
        diagnose(other, moments, chunked(x, y, 7))
