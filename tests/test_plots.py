"""The figures for d > 1: what each draws, how a diverged solver shows, and that they render."""

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from linreg.plots import (
    COEFFICIENT_SPREAD,
    MAX_SOLVER_PANELS,
    figure_png,
    plot_coefficients,
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
