"""Evaluation: metrics, closed-form inference, the report and the run verdict."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from linreg.data import make_dataset
from linreg.evaluate import closed_form_inference, evaluate_fit, summarize, training_mse_r2
from linreg.least_squares import solve_least_squares
from linreg.moments import accumulate
from linreg.report import console_table, outcome, render_markdown, summary_rows
from linreg.solvers import SOLVERS
from linreg.solvers.base import FitResult, failed_result, iterative_result
from linreg.specs import DataSpec
from linreg.storage import DatasetRef

SPEC = DataSpec(n=300, weights=[2.0, -1.0], bias=0.5, noise=0.3, seed=11)


@pytest.fixture(scope="module")
def data():
    return make_dataset(SPEC)


def closed(data):
    return SOLVERS["closed_form"].fit(data, SOLVERS["closed_form"].defaults)


def moments(data):
    return accumulate(data.iter_chunks(), data.d)


def solution(data, fit_intercept=True):
    return solve_least_squares(moments(data), data.iter_chunks, fit_intercept)


def test_errors_are_measured_against_the_truth_and_the_reference(data):
    reference = closed(data)
    fit = FitResult(solver="x", coef=np.array([2.1, -1.0]), intercept=0.4)
    report = evaluate_fit(moments(data), data.spec, fit, reference)
    assert_allclose(report.weights_abs_error, [0.1, 0.0], atol=1e-12)
    assert report.bias_abs_error == pytest.approx(0.1)
    expected = np.linalg.norm(np.append(fit.coef - reference.coef, fit.intercept - reference.intercept))
    assert report.distance_to_closed_form == pytest.approx(expected)


def test_mse_and_r2_match_their_definitions(data):
    coef, intercept = np.array([1.9, -0.8]), 0.6
    mse, r2 = training_mse_r2(moments(data), coef, intercept)
    residual = data.y - intercept - data.x @ coef
    assert mse == pytest.approx(np.mean(residual**2))
    assert r2 == pytest.approx(1 - np.sum(residual**2) / np.sum((data.y - data.y.mean()) ** 2))


def test_closed_form_inference_matches_the_textbook_formula(data):
    intervals = closed_form_inference(solution(data), data.spec)
    design = np.column_stack([np.ones(data.n), data.x])
    beta = np.linalg.solve(design.T @ design, design.T @ data.y)
    sigma2 = np.sum((data.y - design @ beta) ** 2) / (data.n - 3)
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(design.T @ design)))
    assert [i.parameter for i in intervals] == ["bias", "w0", "w1"]
    assert_allclose([i.estimate for i in intervals], beta, rtol=1e-10)
    assert_allclose([i.std_error for i in intervals], se, rtol=1e-10)
    # t(297) 97.5% quantile: 1.968 in printed tables (1.960 would be the normal approximation)
    assert_allclose([i.ci_high - i.estimate for i in intervals], 1.968 * se, rtol=2e-4)


def _inference(spec):
    data = make_dataset(spec)
    return closed_form_inference(solution(data), spec)


def test_95_percent_intervals_cover_the_truth_about_95_percent_of_the_time():
    covered = [
        interval.covers_truth
        for seed in range(300)
        for interval in _inference(DataSpec(n=20, weights=[1.5], noise=1.0, seed=seed))
    ]
    assert 0.92 <= np.mean(covered) <= 0.98


def test_inference_without_residual_degrees_of_freedom_is_nan():
    intervals = _inference(DataSpec(n=2, seed=0))
    assert all(math.isnan(i.std_error) and not i.covers_truth for i in intervals)


def _summary(data, fits):
    ref = DatasetRef(path="d.parquet", sha256="ab" * 32, spec=data.spec)
    return summarize("run-1", ref, data, fits)


def test_an_exact_fit_without_residual_dof_is_reported_with_its_warning():
    exact = make_dataset(DataSpec(n=3, weights=[1.0, 2.0], noise=0.5, seed=4))  # 3 rows, 3 parameters
    reference = closed(exact)
    assert reference.status == "ok" and "0 residual degrees of freedom: no standard errors" in reference.message
    summary = _summary(exact, [reference])
    assert "0 residual degrees of freedom: no standard errors" in summary.reference.warning
    assert "Warning: 0 residual degrees of freedom: no standard errors" in console_table(summary)
    assert all(math.isnan(c.std_error) for c in summary.coefficients)
    assert all(math.isnan(i.std_error) for i in summary.inference)


def test_mse_and_r2_of_a_target_beyond_float64s_squares():
    """y ~1e200: R² is computed in power-of-two units, the MSE (~1e400) is NaN and the row says why."""
    from linreg.evaluate import MSE_OUT_OF_RANGE
    from linreg.moments import Moments

    rng = np.random.default_rng(12)
    x = rng.standard_normal((200, 2))
    y = (1 + x @ [1.0, -1.0] + 0.5 * rng.standard_normal(200)) * 1e200
    moments = Moments.of_chunk(x, y)
    coef, intercept = np.array([0.9e200, -1.1e200]), 1e200
    mse, r2 = training_mse_r2(moments, coef, intercept)
    scaled = (y - intercept - x @ coef) / 1e200
    assert math.isnan(mse)
    assert r2 == pytest.approx(1 - np.sum(scaled**2) / np.sum((y / 1e200 - np.mean(y / 1e200)) ** 2), rel=1e-10)
    report = evaluate_fit(moments, None, FitResult(solver="x", coef=coef, intercept=intercept), None)
    assert report.message == MSE_OUT_OF_RANGE


def test_summary_rows_are_plain_python_and_nan_free(data):
    fits = [
        closed(data),
        iterative_result("numpy_gd", [np.inf, 1.0], np.nan, [1.0, np.inf], 0.1, "cpu"),
        failed_result("torch_optim", 2, RuntimeError("boom")),
    ]
    rows = summary_rows(_summary(data, fits))
    allowed = (str, int, float, type(None))
    assert all(isinstance(v, allowed) and not isinstance(v, np.generic) for row in rows for v in row.values())
    assert all(not (isinstance(v, float) and not math.isfinite(v)) for row in rows for v in row.values())
    assert [r["status"] for r in rows] == ["ok", "diverged", "failed"]
    assert rows[2]["message"] == "RuntimeError: boom"


def test_verdict_fails_only_when_a_solver_failed(data):
    ok = closed(data)
    diverged = iterative_result("numpy_gd", [np.nan, 1.0], 0.0, [1.0, np.nan], 0.1, "cpu")
    failed = failed_result("torch_optim", 2, RuntimeError("boom"))
    assert outcome(_summary(data, [ok])) == (True, "all 1 solvers ok")
    assert outcome(_summary(data, [ok, diverged])) == (True, "1 of 2 solvers ok; 1 diverged (numpy_gd)")
    assert outcome(_summary(data, [ok, diverged, failed])) == (
        False, "1 of 3 solvers ok; 1 failed (torch_optim); 1 diverged (numpy_gd)"
    )


def test_markdown_report_states_the_dataset_and_embeds_images(data):
    text = render_markdown(_summary(data, [closed(data)]), {"Plot A": b"\x89PNG fake", "Plot B": b"png"})
    assert "`d.parquet`" in text and "ab" * 32 in text
    assert text.count("](data:image/png;base64,") == 2
    assert "| closed_form | ok |" in text


def test_console_table_has_a_row_per_solver(data):
    table = console_table(_summary(data, [closed(data), failed_result("numpy_gd", 2, ValueError("x"))]))
    rows, reference = table.split("\n\n")
    lines = rows.splitlines()
    assert lines[0].split()[:2] == ["solver", "status"]
    assert [line.split()[:2] for line in lines[1:]] == [["closed_form", "ok"], ["numpy_gd", "failed"]]
    assert reference.startswith("Reference: closed form by normal equations, with an intercept; condition number")
    assert "R² centred" in reference and "Warning" not in reference


def test_rss_from_moments_matches_the_residuals(data):
    coef, intercept = np.array([1.7, -0.9]), 0.8
    residual = data.y - intercept - data.x @ coef
    assert moments(data).rss(coef, intercept) == pytest.approx(residual @ residual, rel=1e-12)


def test_solve_matches_lstsq_and_says_when_singular(data):
    solution = solve_least_squares(moments(data), lambda: [(data.x, data.y)])
    beta = np.linalg.lstsq(np.column_stack([np.ones(data.n), data.x]), data.y, rcond=None)[0]
    assert_allclose([solution.intercept, *solution.coef], beta, rtol=1e-10)
    assert solution.method == "normal equations" and not solution.rank_deficient
    twin = np.column_stack([data.x[:, 0], data.x[:, 0]])  # perfectly collinear
    singular = solve_least_squares(accumulate([(twin, data.y)], 2), lambda: [(twin, data.y)])
    assert singular.rank_deficient and "w0, w1" in singular.warning and "minimum-norm" in singular.warning
    assert np.isfinite(singular.coef).all() and singular.coef[0] == pytest.approx(singular.coef[1])
