"""The figures for d > 1: what each draws, how a diverged solver shows, and that they render."""

import functools
import io
import re
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest
from matplotlib.collections import LineCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from PIL import Image
from scipy.stats import norm

from linreg.diagnostics import Panels, diagnose
from linreg.least_squares import solve_least_squares
from linreg.moments import accumulate
from linreg.plots import (
    COEFFICIENT_SPREAD,
    MAX_SOLVER_PANELS,
    figure_png,
    plot_coefficients,
    plot_diagnostics,
    plot_partial_regression,
    plot_predicted_vs_actual,
    plot_residuals,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def legend_labels(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


@pytest.fixture
def sample():
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    return y, {"closed_form": y + 0.1 * rng.normal(size=50), "numpy_sgd": y + 0.2 * rng.normal(size=50)}


# --- predicted against actual -----------------------------------------------------------------------

def test_predicted_vs_actual_draws_a_panel_per_solver_with_points_and_diagonal(sample):
    y, predictions = sample
    fig = plot_predicted_vs_actual(y, predictions, target="Employed")
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["closed_form", "numpy_sgd"]
    for ax, predicted in zip(fig.axes, predictions.values()):
        points, diagonal = ax.lines
        np.testing.assert_array_equal(points.get_xdata(), y)
        np.testing.assert_array_equal(points.get_ydata(), predicted)
        low, high = min(y.min(), predicted.min()), max(y.max(), predicted.max())
        np.testing.assert_array_equal(diagonal.get_xdata(), [low, high])
        np.testing.assert_array_equal(diagonal.get_ydata(), [low, high])  # y = x over every point
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("actual Employed", "predicted Employed")


@pytest.mark.parametrize("solvers, grid", [(1, (1, 1)), (4, (1, 4)), (5, (2, 4)), (8, (2, 4))])
def test_predicted_vs_actual_lays_panels_four_to_a_row(sample, solvers, grid):
    y, _ = sample
    fig = plot_predicted_vs_actual(y, {f"s{i}": y for i in range(solvers)})
    assert len(fig.axes) == solvers  # the short last row's spare cells are removed
    geometry = {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes}
    assert geometry == {grid}


def test_predicted_vs_actual_draws_the_first_eight_and_says_so(sample):
    y, _ = sample
    fig = plot_predicted_vs_actual(y, {f"s{i}": y for i in range(MAX_SOLVER_PANELS + 2)})
    assert [ax.get_title() for ax in fig.axes] == [f"s{i}" for i in range(MAX_SOLVER_PANELS)]
    assert fig.get_suptitle() == "Predicted against actual: the first 8 of 10 solvers"


@pytest.mark.parametrize("bad", [np.inf, np.nan, -np.inf])
def test_a_diverged_solver_panel_says_so_and_draws_no_points(sample, bad):
    y, predictions = sample
    broken = predictions["numpy_sgd"].copy()
    broken[3] = bad
    fig = plot_predicted_vs_actual(y, {**predictions, "numpy_sgd": broken})
    healthy, diverged = fig.axes
    assert texts(diverged) == ["diverged"] and not diverged.lines
    assert texts(healthy) == [] and len(healthy.lines) == 2


def test_predicted_vs_actual_refuses_mismatched_or_empty_input(sample):
    y, predictions = sample
    with pytest.raises(ValueError, match=r"predictions\['numpy_sgd'\]: shape \(49,\), y has \(50,\)"):
        plot_predicted_vs_actual(y, {**predictions, "numpy_sgd": y[:-1]})
    with pytest.raises(ValueError, match="at least one solver"):
        plot_predicted_vs_actual(y, {})
    with pytest.raises(ValueError, match="0 rows"):
        plot_predicted_vs_actual(np.array([]), {"closed_form": np.array([])})


# --- residuals --------------------------------------------------------------------------------------

def test_residuals_against_fitted_with_a_zero_line(sample):
    y, predictions = sample
    fitted = predictions["closed_form"]
    fig = plot_residuals(fitted, y - fitted, target="Employed")
    (ax,) = fig.axes
    points, zero = ax.lines
    np.testing.assert_array_equal(points.get_xdata(), fitted)
    np.testing.assert_array_equal(points.get_ydata(), y - fitted)
    assert set(zero.get_ydata()) == {0.0}
    assert ax.get_xlabel() == "fitted Employed" and "residual" in ax.get_ylabel()


def test_residuals_leave_out_non_finite_points_and_say_when_none_is_left():
    fitted = np.array([1.0, np.nan, 3.0])
    fig = plot_residuals(fitted, np.array([0.5, 0.1, np.inf]))
    points = fig.axes[0].lines[0]
    np.testing.assert_array_equal(points.get_xdata(), [1.0])
    fig = plot_residuals(np.full(3, np.nan), np.zeros(3))
    assert texts(fig.axes[0]) == ["no finite fitted values"] and len(fig.axes[0].lines) == 1  # the zero line


def test_residuals_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match=r"residuals: shape \(2,\), fitted has \(3,\)"):
        plot_residuals(np.zeros(3), np.zeros(2))


# --- coefficients -----------------------------------------------------------------------------------

NAMES = ["a", "b", "c"]
REFERENCE = np.array([1.0, -2.0, 3.0])
CI_LOW, CI_HIGH = REFERENCE - 0.5, REFERENCE + [0.5, 0.25, 1.0]


def test_coefficients_plot_reference_with_its_interval_and_each_solver():
    solvers = {"numpy_sgd": REFERENCE + 0.1, "gd_torch": REFERENCE - 0.1}
    fig = plot_coefficients(NAMES, solvers, REFERENCE, CI_LOW, CI_HIGH)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert ax.get_ylabel() == "coefficient"
    assert legend_labels(ax) == ["reference (95% CI)", "numpy_sgd", "gd_torch"]
    (container,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    marker, _, (bars,) = container
    np.testing.assert_array_equal(marker.get_ydata(), REFERENCE)
    assert isinstance(bars, LineCollection)
    spans = [(segment[0][1], segment[1][1]) for segment in bars.get_segments()]
    np.testing.assert_allclose(spans, np.column_stack([CI_LOW, CI_HIGH]))
    drawn = {line.get_label(): line for line in ax.lines}
    np.testing.assert_array_equal(drawn["numpy_sgd"].get_ydata(), REFERENCE + 0.1)
    # Each series sits within its column's half-width, beside the reference, not on top of it.
    columns = np.arange(len(NAMES))
    for x in [marker.get_xdata()] + [drawn[name].get_xdata() for name in solvers]:
        assert np.all(np.abs(x - columns) < 0.5)
    for name in solvers:
        assert np.all(drawn[name].get_xdata() != marker.get_xdata())
    assert np.all(drawn["numpy_sgd"].get_xdata() != drawn["gd_torch"].get_xdata())


def test_coefficients_on_different_scales_are_drawn_relative_to_the_reference():
    reference = np.array([1829.0, -0.036, 15.0])  # Longley's sizes: no linear axis shows all three
    assert np.abs(reference).max() > COEFFICIENT_SPREAD * np.abs(reference).min()
    names = ["Year", "GNP", "GNP_deflator"]
    fig = plot_coefficients(names, {"s": reference * 1.1}, reference, reference - 1, reference + 1)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "coefficient ÷ |reference|"
    marker = ax.containers[0][0]
    np.testing.assert_allclose(marker.get_ydata(), np.sign(reference))
    np.testing.assert_allclose(ax.lines[-1].get_ydata(), 1.1 * np.sign(reference))


def test_long_column_names_are_rotated_short_ones_not():
    short = plot_coefficients(NAMES, {}, REFERENCE, CI_LOW, CI_HIGH).axes[0]
    long_names = ["GNP_deflator", "Unemployed", "Population"]
    rotated = plot_coefficients(long_names, {}, REFERENCE, CI_LOW, CI_HIGH).axes[0]
    assert {t.get_rotation() for t in short.get_xticklabels()} == {0.0}
    assert {t.get_rotation() for t in rotated.get_xticklabels()} == {30.0}
    assert [t.get_text() for t in rotated.get_xticklabels()] == long_names


def test_a_diverged_solver_is_left_out_of_the_coefficients_and_named():
    solvers = {"sgd_torch": np.array([np.nan, 1.0, 2.0]), "ok": REFERENCE}
    fig = plot_coefficients(NAMES, solvers, REFERENCE, CI_LOW, CI_HIGH)
    ax = fig.axes[0]
    assert legend_labels(ax) == ["reference (95% CI)", "ok"]
    assert "diverged, not shown: sgd_torch" in ax.get_title()


def test_undefined_intervals_still_plot_the_reference():
    """A rank-deficient reference has NaN intervals: its coefficients are drawn without bars."""
    nan = np.full(3, np.nan)
    fig = plot_coefficients(NAMES, {}, REFERENCE, nan, nan)
    np.testing.assert_array_equal(fig.axes[0].containers[0][0].get_ydata(), REFERENCE)
    assert figure_png(fig).startswith(PNG_SIGNATURE)


def test_coefficients_refuse_arrays_that_do_not_match_the_names():
    with pytest.raises(ValueError, match=r"ci_high: shape \(2,\), expected \(3,\) for 3 names"):
        plot_coefficients(NAMES, {}, REFERENCE, CI_LOW, CI_HIGH[:2])
    with pytest.raises(ValueError, match=r"coefficients\['s'\]: shape \(4,\)"):
        plot_coefficients(NAMES, {"s": np.zeros(4)}, REFERENCE, CI_LOW, CI_HIGH)


# --- rendering --------------------------------------------------------------------------------------

def test_every_figure_renders_to_png(sample):
    y, predictions = sample
    diverged = {**predictions, "sgd_torch": np.full_like(y, np.inf)}
    figures = [
        plot_predicted_vs_actual(y, diverged),
        plot_residuals(predictions["closed_form"], y - predictions["closed_form"]),
        plot_coefficients(NAMES, {"s": REFERENCE, "d": np.full(3, np.inf)}, REFERENCE, CI_LOW, CI_HIGH),
    ]
    for fig in figures:
        png = figure_png(fig)
        assert png.startswith(PNG_SIGNATURE) and len(png) > 1000


# --- the reference's diagnostics: added-variable plots and R's four panels --------------------------

LONGLEY = Path(__file__).resolve().parents[1] / "data" / "examples" / "longley.csv"
SLOPE_RTOL = 1e-12
# Every diagnostic figure's PNG, in pixels a side: big enough to read, small enough for a report
# (20 added-variable panels are 1200 × 880; R's four panels 800 × 640).
PNG_SIDE = (400, 1600)


def fitted_diagnostics(x: np.ndarray, y: np.ndarray, **options):
    """(the reference fit, `diagnose` of it) on every row."""
    moments = accumulate([(x, y)], x.shape[1])
    solution = solve_least_squares(moments, lambda: [(x, y)], True)
    return solution, diagnose(solution, moments, lambda: [(x, y)], **options)


@functools.cache
def longley_case():
    """(names, fit, diagnostics) of NIST's Longley: 16 rows, 6 features, target `employed`."""
    table = pacsv.read_csv(LONGLEY).to_pandas().astype(float)
    names = [c for c in table.columns if c != "employed"]
    return names, *fitted_diagnostics(table[names].to_numpy(), table["employed"].to_numpy())


@functools.cache
def wide_case():
    """(names, fit, diagnostics) of a seeded table of 400 rows and 25 features, sampled at 150 rows."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 25))
    y = x @ np.linspace(-1.0, 1.5, 25) + rng.normal(size=400)
    return [f"col_{j}" for j in range(25)], *fitted_diagnostics(x, y, max_rows=150, seed=1)


def data_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.has_data()]


def line_labelled(ax, label: str):
    (line,) = [line for line in ax.lines if line.get_label() == label]
    return line


def slope(line) -> float:
    (x0, x1), (y0, y1) = line.get_xdata(), line.get_ydata()
    return (y1 - y0) / (x1 - x0)


def png_size(fig) -> tuple[int, int]:
    with Image.open(io.BytesIO(figure_png(fig))) as image:
        image.load()  # decodes every row, not only the header
        return image.size


def t_values(solution) -> np.ndarray:
    return solution.coef / solution.coef_se


def test_partial_regression_draws_every_feature_with_the_coefficients_as_slopes():
    names, solution, result = longley_case()
    partial = result.partial_regression
    solvers = {"numpy_sgd": solution.coef * 1.05, "gd_torch": solution.coef * 0.9}
    fig = plot_partial_regression(partial, names, t_values(solution), solvers, target="employed")
    axes = data_axes(fig)
    assert len(axes) == 6
    for j, (ax, name) in enumerate(zip(axes, names)):
        assert ax.get_title().startswith(f"{name}: coef ")
        assert (ax.get_xlabel(), ax.get_ylabel()) == (f"{name} | others", "employed | others")
        points = ax.lines[0]
        np.testing.assert_array_equal(points.get_xdata(), partial.x_residuals[:, j])
        np.testing.assert_array_equal(points.get_ydata(), partial.y_residuals[:, j])
        assert slope(line_labelled(ax, "reference")) == pytest.approx(partial.coef[j], rel=SLOPE_RTOL)
        for solver, coef in solvers.items():
            assert slope(line_labelled(ax, solver)) == pytest.approx(coef[j], rel=SLOPE_RTOL)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["numpy_sgd", "gd_torch", "reference"]
    assert "all 16 rows" in fig.get_suptitle() and "sample" not in fig.get_suptitle()


def test_partial_regression_past_max_panels_draws_the_largest_t_and_says_so():
    names, solution, result = wide_case()
    t = t_values(solution)
    fig = plot_partial_regression(result.partial_regression, names, t, max_panels=20, total_rows=400)
    axes = data_axes(fig)
    assert len(axes) == 20 == len(fig.axes)
    ranked = [names[j] for j in np.argsort(-np.abs(t))[:20]]
    assert [ax.get_title().split(":")[0] for ax in axes] == ranked
    m = len(result.partial_regression.rows)
    assert result.partial_regression.sampled and m <= 150
    assert "first 20 of 25 features by |t|" in fig.get_suptitle()
    assert f"a sample of {m:,} of 400 rows" in fig.get_suptitle()
    width, height = png_size(fig)
    assert PNG_SIDE[0] <= width <= PNG_SIDE[1] and PNG_SIDE[0] <= height <= PNG_SIDE[1]


def test_partial_regression_of_one_feature_is_one_panel():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 1))
    solution, result = fitted_diagnostics(x, 2.0 * x[:, 0] + rng.normal(size=50))
    fig = plot_partial_regression(result.partial_regression, ["dose"])
    (ax,) = data_axes(fig)
    assert slope(line_labelled(ax, "reference")) == pytest.approx(solution.coef[0], rel=SLOPE_RTOL)


def test_a_non_finite_solver_coefficient_draws_no_line_in_that_panel_only():
    names, solution, result = longley_case()
    broken = solution.coef.copy()
    broken[2] = np.nan
    axes = data_axes(plot_partial_regression(result.partial_regression, names, solver_coefs={"sgd": broken}))
    assert [sum(line.get_label() == "sgd" for line in ax.lines) for ax in axes] == [1, 1, 0, 1, 1, 1]


def test_partial_regression_refuses_missing_t_values_and_mismatched_arrays():
    names, solution, result = wide_case()
    partial = result.partial_regression
    with pytest.raises(ValueError, match=re.escape("t_values: needed to choose 20 of 25 features by |t|, got None")):
        plot_partial_regression(partial, names)
    with pytest.raises(ValueError, match=r"t_values: shape \(24,\), expected \(25,\)"):
        plot_partial_regression(partial, names, t_values(solution)[:24])
    with pytest.raises(ValueError, match=r"partial.coef: shape \(25,\), expected \(24,\)"):
        plot_partial_regression(partial, names[:24], max_panels=30)
    with pytest.raises(ValueError, match=r"solver_coefs\['s'\]: shape \(3,\)"):
        plot_partial_regression(partial, names, t_values(solution), {"s": np.zeros(3)})
    with pytest.raises(ValueError, match="max_panels: 0"):
        plot_partial_regression(partial, names, t_values(solution), max_panels=0)


def test_diagnostics_draw_r_four_panels_and_label_the_top_cooks_rows():
    _, _, result = longley_case()
    panels = result.panels
    fig = plot_diagnostics(panels, target="employed")
    assert len(data_axes(fig)) == 4
    fitted_ax, qq, scale_location, leverage = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["Residuals vs fitted", "Normal Q-Q", "Scale-location",
                                                   "Residuals vs leverage"]
    top = [str(row.row) for row in result.influential[:3]]  # the whole data's top rows by Cook's distance
    for ax in (fitted_ax, qq, leverage):
        assert texts(ax) == top
    assert texts(scale_location) == []
    points = qq.lines[0]
    n = len(panels.rows)
    np.testing.assert_allclose(points.get_xdata(), norm.ppf((np.arange(1, n + 1) - 0.375) / (n + 0.25)))
    np.testing.assert_array_equal(points.get_ydata(), np.sort(panels.standardized_residuals))
    assert "all 16 rows" in fig.get_suptitle() and "sample" not in fig.get_suptitle()


def test_cooks_contours_are_labelled_and_follow_the_formula():
    _, _, result = longley_case()
    panels = result.panels
    ax = plot_diagnostics(panels).axes[3]
    assert legend_labels(ax) == ["Cook's distance 0.5", "Cook's distance 1"]
    for level in (0.5, 1.0):
        line = line_labelled(ax, f"Cook's distance {level:g}")
        h, r = line.get_xdata(), line.get_ydata()
        drawn = np.isfinite(h)
        assert h[drawn].max() == pytest.approx(panels.leverage.max()) and h[drawn].min() > 0
        assert (r[drawn] > 0).sum() == (r[drawn] < 0).sum()  # both branches
        np.testing.assert_allclose(r[drawn] ** 2, level * panels.parameters * (1 - h[drawn]) / h[drawn], rtol=1e-12)
    low, high = ax.get_ylim()  # the axes show the points, not the contours' run to infinity
    r = panels.standardized_residuals
    assert low < r.min() and high > r.max() and high - low < 1.5 * (r.max() - r.min())


def test_the_trend_line_follows_a_curve_in_the_residuals():
    fitted = np.linspace(-3.0, 3.0, 301)
    curved = fitted**2 - 3.0
    panels = Panels(np.arange(1, 302), fitted, curved, curved, np.full(301, 0.01), np.full(301, 0.001), 2, False)
    trend = line_labelled(plot_diagnostics(panels).axes[0], "trend")
    x, y = trend.get_xdata(), trend.get_ydata()
    assert x[0] == fitted[0] and x[-1] == fitted[-1]
    middle = np.abs(x) < 0.5
    assert y[middle].max() < -1.5 and y[0] > 2.0 and y[-1] > 2.0  # U-shaped, as the residuals


def test_rows_of_leverage_one_are_skipped_not_drawn():
    """A feature nonzero on row 5 only fits that row exactly: its standardized residual and Cook's are NaN."""
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(size=30), np.zeros(30)])
    x[4, 1] = 1.0
    _, result = fitted_diagnostics(x, x @ [1.0, 2.0] + rng.normal(size=30))
    panels = result.panels
    assert np.isnan(panels.cooks_distance[4])
    fig = plot_diagnostics(panels, label_rows=30)
    _, qq, _, leverage = fig.axes
    assert len(qq.lines[0].get_xdata()) == 29 and np.isfinite(leverage.lines[0].get_ydata()).all()
    assert "5" not in texts(leverage) and len(texts(leverage)) == 29
    assert png_size(fig) == (800, 640)


def test_sampled_diagnostics_say_so():
    _, _, result = wide_case()
    panels = result.panels
    assert panels.sampled
    title = plot_diagnostics(panels, total_rows=400).get_suptitle()
    assert f"a sample of {len(panels.rows):,} of 400 rows" in title
    assert f"a sample of {len(panels.rows):,} rows" in plot_diagnostics(panels).get_suptitle()


def test_diagnostics_label_no_rows_on_request_and_refuse_a_bad_count():
    _, _, result = longley_case()
    fig = plot_diagnostics(result.panels, label_rows=0)
    assert all(texts(ax) == [] for ax in fig.axes)
    with pytest.raises(ValueError, match="label_rows: -1"):
        plot_diagnostics(result.panels, label_rows=-1)
    with pytest.raises(ValueError, match="label_rows: 2.5"):
        plot_diagnostics(result.panels, label_rows=2.5)


def test_diagnostic_figures_render_to_pngs_of_a_readable_size():
    names, solution, result = longley_case()
    figures = [plot_partial_regression(result.partial_regression, names, t_values(solution)),
               plot_diagnostics(result.panels)]
    for fig in figures:
        width, height = png_size(fig)
        assert PNG_SIDE[0] <= width <= PNG_SIDE[1] and PNG_SIDE[0] <= height <= PNG_SIDE[1]
