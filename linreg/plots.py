"""Figures of a run and of a sweep. Functions return a Figure; where it is saved is the caller's choice."""

import io
import math

import numpy as np
from matplotlib.figure import Figure  # the Figure API needs no pyplot backend: headless workers are fine
from scipy.stats import norm

from linreg.diagnostics import Panels, PartialRegression
from linreg.solvers.base import FitResult

MAX_POINTS = 2000
MAX_PANELS = 4
LOSS_CAP = 1e30
# Predicted-against-actual panels: one per solver, four to a row; the registry has eight solvers.
MAX_SOLVER_PANELS = 8
GRID_COLUMNS = 4
# Coefficients whose reference sizes span more than this factor share no readable linear axis
# (Longley: Year's 1829 beside GNP's −0.036); each is then drawn relative to its reference.
COEFFICIENT_SPREAD = 100.0
# Tick labels longer than this (or more ticks than LABEL_TICKS) are rotated so they do not overlap.
LABEL_CHARS = 6
LABEL_TICKS = 8
MARKERS = "s^vD<>pX*h"


def plot_fits(x: np.ndarray, y: np.ndarray, fits: list[FitResult], names: list[str] | None = None,
              target: str = "y") -> Figure:
    """The data with every fitted line, one panel per feature (at most four).

    For d > 1 each line is the fit along one feature with the others held at
    their means.

    Args:
        x: (k, d) sample of the features (rows are i.i.d., so the first MAX_POINTS will do).
        y: (k,) matching targets.
        names, target: the axes' labels (a user's columns); x0.., y by default.
    """
    d = x.shape[1]
    panels = min(d, MAX_PANELS)
    fig = Figure(figsize=(5 * panels, 4), dpi=80, layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    means = x.mean(axis=0)
    for k, ax in enumerate(axes):
        ax.plot(x[:, k], y, ".", color="0.6", markersize=3, label="data")
        grid = np.linspace(x[:, k].min(), x[:, k].max(), 2)
        for fit in fits:
            if not (np.isfinite(fit.coef).all() and np.isfinite(fit.intercept)):
                continue
            offset = fit.intercept + means @ fit.coef - means[k] * fit.coef[k]
            ax.plot(grid, offset + fit.coef[k] * grid, "-", linewidth=1, label=fit.solver)
        ax.set_xlabel(names[k] if names else f"x{k}")
        ax.set_ylabel(target)
    axes[0].set_title("Data and fitted lines")
    axes[-1].legend(fontsize=7)
    return fig


def plot_losses(fits: list[FitResult]) -> Figure:
    """Training loss per epoch of every iterative solver, on a log scale."""
    fig = Figure(figsize=(6, 4), dpi=80, layout="constrained")
    ax = fig.subplots()
    for fit in fits:
        # Up to divergence, capped so a blow-up does not overflow the log axis.
        history = fit.loss_history[: fit.diverged_epoch]
        if history.size:
            label = fit.solver + (" (diverged)" if fit.diverged_epoch is not None else "")
            ax.plot(np.arange(1, history.size + 1), np.minimum(history, LOSS_CAP), linewidth=1, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training MSE")
    ax.set_title("Loss curves")
    if ax.lines:
        ax.legend(fontsize=7)
    return fig


def figure_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_history(frame) -> Figure:
    """Seconds and error against the truth of each solver across runs, oldest first.

    Args:
        frame: the history as `linreg.results.load_history` returns it (a row per
            run and solver, in run order); runs are spaced evenly on the x axis.
    """
    runs = list(dict.fromkeys(frame["run_id"]))
    position = {run: i for i, run in enumerate(runs)}
    fig = Figure(figsize=(10, 4), dpi=80, layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, column, label in ((axes[0], "seconds", "seconds per fit"), (axes[1], "error", "error against the truth")):
        for solver, rows in frame.groupby("solver", sort=False):
            values = rows[column].to_numpy(dtype=float)
            keep = np.isfinite(values) & (values > 0)  # a log axis: a 0 s or failed fit is left out
            if keep.any():
                x = [position[r] for r in rows["run_id"][keep]]
                ax.plot(x, values[keep], "o-", markersize=3, linewidth=1, label=solver)
        if ax.lines:
            ax.set_yscale("log")
        ax.set_xlabel("run (oldest first)")
        ax.set_ylabel(label)
        ax.set_title(label.capitalize())
    ticks = list(range(0, len(runs), max(1, len(runs) // 8)))
    for ax in axes:
        ax.set_xticks(ticks, [runs[i][:15] for i in ticks], rotation=30, ha="right", fontsize=7)
    if axes[0].lines:
        axes[0].legend(fontsize=7)
    return fig


# --- A sweep: seconds and error against n ----------------------------------------------------------

def plot_sweep_seconds(frame) -> Figure:
    """A sweep's seconds against n, log-log, one line per (solver, device kind, d); bars span min..max over seeds.

    Args:
        frame: the sweep's rows (`linreg.sweep.results_frame`); only cells that ran count.
    """
    return _plot_against_n(frame, "seconds", "seconds per fit")


def plot_sweep_error(frame) -> Figure:
    """A sweep's largest absolute parameter error against n, log-log; bars span min..max over seeds."""
    return _plot_against_n(frame, "error", "max |fitted - true| of (b, w)")


def _plot_against_n(frame, column: str, label: str) -> Figure:
    ran = frame[frame["status"].isin(["ok", "diverged"]) & (frame[column] > 0)].copy()
    ran["kind"] = np.where(ran["device"].str.startswith("cuda"), "cuda", "cpu")
    fig = Figure(figsize=(8, 5), dpi=80, layout="constrained")
    ax = fig.subplots()
    for (solver, kind, d), group in ran.groupby(["solver", "kind", "d"]):
        stats = group.groupby("n")[column].agg(["median", "min", "max"]).sort_index()
        n = stats.index.to_numpy(dtype=float)
        ax.errorbar(n, stats["median"], yerr=[stats["median"] - stats["min"], stats["max"] - stats["median"]],
                    marker="o" if kind == "cpu" else "s", linestyle="-" if kind == "cpu" else "--",
                    capsize=3, label=f"{solver} {kind}" + (f" d={d}" if ran["d"].nunique() > 1 else ""))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n (rows)")
    ax.set_ylabel(label)
    if len(ran):
        ax.legend(fontsize=7, ncol=2)
    return fig


# --- d > 1: predicted against actual, residuals, coefficients --------------------------------------

def plot_predicted_vs_actual(y: np.ndarray, predictions: dict[str, np.ndarray], target: str = "y") -> Figure:
    """Each solver's predictions against the actual targets, one panel per solver, with y = x.

    A solver whose predictions are not all finite (it diverged) gets a panel that says
    "diverged" and shows no points. Past MAX_SOLVER_PANELS solvers, the first ones are
    drawn and the figure's title says how many were left out.

    Args:
        y: (k,) actual targets of a sample of rows: the caller passes at most MAX_POINTS
            (rows are what the figure shows, not what it summarises).
        predictions: solver name -> (k,) its predictions on the same rows, in panel order.
        target: the target column's name, for the axis labels.

    Returns:
        A figure with one axes per solver drawn (at most MAX_SOLVER_PANELS), GRID_COLUMNS to a row.

    Raises:
        ValueError: no solvers or no rows, or a solver's predictions do not match y's shape.
    """
    y = np.asarray(y, dtype=np.float64)
    if not predictions or y.size == 0:
        raise ValueError(
            f"predictions: need at least one solver and one row (got {len(predictions)} solvers, {y.size} rows)"
        )
    for name, predicted in predictions.items():
        if np.shape(predicted) != y.shape:
            raise ValueError(f"predictions[{name!r}]: shape {np.shape(predicted)}, y has {y.shape}")
    shown = list(predictions.items())[:MAX_SOLVER_PANELS]
    columns = min(len(shown), GRID_COLUMNS)
    rows = -(-len(shown) // columns)
    fig = Figure(figsize=(3.2 * columns, 3.0 * rows), dpi=80, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(shown):]:
        ax.remove()  # the grid's last row may be short
    for ax, (name, predicted) in zip(axes, shown):
        predicted = np.asarray(predicted, dtype=np.float64)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"actual {target}")
        ax.set_ylabel(f"predicted {target}")
        if not np.isfinite(predicted).all():
            ax.text(0.5, 0.5, "diverged", transform=ax.transAxes, ha="center", va="center", color="C3")
            ax.set_xticks([])
            ax.set_yticks([])  # an empty panel's default 0..1 ticks would read as data
            continue
        ax.plot(y, predicted, ".", markersize=3, alpha=0.6)
        low, high = min(y.min(), predicted.min()), max(y.max(), predicted.max())
        ax.plot([low, high], [low, high], "--", color="0.3", linewidth=1)
    if len(predictions) > len(shown):
        fig.suptitle(f"Predicted against actual: the first {len(shown)} of {len(predictions)} solvers")
    return fig


def plot_residuals(fitted: np.ndarray, residuals: np.ndarray, target: str = "y") -> Figure:
    """The reference fit's residuals against its fitted values, with the zero line.

    Structure around the zero line (a curve, a funnel) is what a linear model with constant
    noise does not explain.

    Args:
        fitted: (k,) the reference's fitted values on a sample of rows (at most MAX_POINTS).
        residuals: (k,) actual − fitted on the same rows.
        target: the target column's name, for the axis label.

    Returns:
        A figure with one axes. Non-finite values are not drawn; when none is finite the
        axes says so.

    Raises:
        ValueError: the two arrays differ in shape.
    """
    fitted, residuals = np.asarray(fitted, dtype=np.float64), np.asarray(residuals, dtype=np.float64)
    if fitted.shape != residuals.shape:
        raise ValueError(f"residuals: shape {residuals.shape}, fitted has {fitted.shape}")
    fig = Figure(figsize=(6, 4), dpi=80, layout="constrained")
    ax = fig.subplots()
    finite = np.isfinite(fitted) & np.isfinite(residuals)
    if finite.any():
        ax.plot(fitted[finite], residuals[finite], ".", markersize=3, alpha=0.6)
    else:
        ax.text(0.5, 0.5, "no finite fitted values", transform=ax.transAxes, ha="center", va="center", color="C3")
    ax.axhline(0.0, color="0.3", linewidth=1)
    ax.set_xlabel(f"fitted {target}")
    ax.set_ylabel(f"residual ({target} − fitted)")
    ax.set_title("Residuals of the reference fit")
    return fig


def plot_coefficients(
    names: list[str],
    coefficients: dict[str, np.ndarray],
    reference: np.ndarray,
    ci_low: np.ndarray,
    ci_high: np.ndarray,
) -> Figure:
    """Each solver's coefficients beside the reference's, the reference with its confidence interval.

    When the reference's coefficients differ in size by more than COEFFICIENT_SPREAD, every
    column is divided by its reference's absolute value (the y label says so): the reference
    then sits at ±1, and a solver's distance from it reads as a fraction of the coefficient.
    A solver with a non-finite coefficient (it diverged) is not drawn; the title names it.

    Args:
        names: (d,) the feature columns' names, in coefficient order.
        coefficients: solver name -> (d,) its coefficients, in legend order.
        reference: (d,) the reference's coefficients.
        ci_low: (d,) the lower bounds of the reference's 95% interval (NaN where undefined).
        ci_high: (d,) the upper bounds.

    Returns:
        A figure with one axes: the reference as error bars, a marker series per finite
        solver, the columns' names on the x axis, and a legend.

    Raises:
        ValueError: an array's length differs from the number of names.
    """
    d = len(names)
    arrays = {"reference": reference, "ci_low": ci_low, "ci_high": ci_high}
    arrays.update({f"coefficients[{name!r}]": values for name, values in coefficients.items()})
    for label, values in arrays.items():
        if np.shape(values) != (d,):
            raise ValueError(f"{label}: shape {np.shape(values)}, expected ({d},) for {d} names")
    reference = np.asarray(reference, dtype=np.float64)
    scale, relative = _coefficient_scale(reference)
    position = np.arange(d)
    offsets = np.linspace(-0.3, 0.3, len(coefficients) + 1) if coefficients else np.zeros(1)

    fig = Figure(figsize=(min(16.0, max(6.0, 0.7 * d + 3)), 4.5), dpi=80, layout="constrained")
    ax = fig.subplots()
    ax.axhline(0.0, color="0.85", linewidth=1, zorder=0)
    below = (reference - np.asarray(ci_low, dtype=np.float64)) / scale
    above = (np.asarray(ci_high, dtype=np.float64) - reference) / scale
    handles = [ax.errorbar(
        position + offsets[0], reference / scale, yerr=np.vstack([below, above]),
        fmt="o", color="black", capsize=3, label="reference (95% CI)",
    )]
    diverged = []
    for k, (name, values) in enumerate(coefficients.items()):
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            diverged.append(name)
            continue
        marker = MARKERS[k % len(MARKERS)]
        handles += ax.plot(position + offsets[k + 1], values / scale, marker, markersize=5, label=name)

    rotate = d > LABEL_TICKS or max((len(name) for name in names), default=0) > LABEL_CHARS
    ax.set_xticks(position, names, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    ax.set_xlabel("column")
    ax.set_ylabel("coefficient ÷ |reference|" if relative else "coefficient")
    title = "Coefficients against the reference"
    if diverged:
        title += f" (diverged, not shown: {', '.join(diverged)})"
    ax.set_title(title, fontsize=10)
    ax.legend(handles=handles, fontsize=7)  # the reference first (matplotlib lists error bars last)
    return fig


def _coefficient_scale(reference: np.ndarray) -> tuple[np.ndarray, bool]:
    """(d,) divisors for the coefficient plot, and whether they are the reference's sizes.

    A reference coefficient of exactly 0 (or a non-finite one) keeps divisor 1.
    """
    size = np.abs(reference)
    usable = np.isfinite(size) & (size > 0)
    if not usable.any() or size[usable].max() <= COEFFICIENT_SPREAD * size[usable].min():
        return np.ones_like(reference), False
    return np.where(usable, size, 1.0), True


# --- The reference's diagnostics: added-variable plots and R's four `plot(lm)` panels --------------

# Added-variable panels: up to 20, ceil(√k) to a row, each PARTIAL_PANEL inches (20: 5 × 4 panels,
# 1200 × 880 px at dpi 80); a figure is at least PARTIAL_MIN_WIDTH wide, so that its title fits.
MAX_PARTIAL_PANELS = 20
PARTIAL_PANEL = (3.0, 2.6)
PARTIAL_MIN_WIDTH = 6.0
PARTIAL_TITLE_HEIGHT = 0.6
# Past MAX_POINTS the points are drawn smaller and fainter, so that dense regions still read as density.
DENSE_POINTS = {"markersize": 1.5, "alpha": 0.25}
SPARSE_POINTS = {"markersize": 3, "alpha": 0.6}
# The trend line: a running median over TREND_SPAN of the points (at least TREND_MIN_ROWS) in fitted
# order, read at up to TREND_POINTS places, then averaged over the same span (`_draw_trend`). R draws
# a (robust) LOWESS; statsmodels, which has one, is not a run-time dependency, and a median, too,
# is not pulled by the few outliers these panels are there to show.
TREND_SPAN = 0.3
TREND_MIN_ROWS = 5
TREND_POINTS = 100
COOKS_LEVELS = (0.5, 1.0)
COOKS_COLORS = ("C1", "C3")


def plot_partial_regression(
    partial: PartialRegression,
    names: list[str],
    t_values: np.ndarray | None = None,
    solver_coefs: dict[str, np.ndarray] | None = None,
    max_panels: int = MAX_PARTIAL_PANELS,
    target: str = "y",
    total_rows: int | None = None,
) -> Figure:
    """Added-variable plots of the reference fit: a panel per feature, y's residual on the other
    columns against the feature's residual on them, with the lines through the origin.

    By Frisch–Waugh–Lovell the least-squares slope of each panel's points (all rows) is the fit's
    coefficient: the reference's line (solid black, "reference") has slope coef[j]; each solver's
    line (faint, its own colour) has its own coefficient, so a solver off the reference shows as a
    line off the points' trend. A solver's non-finite coefficient draws no line; non-finite residuals
    draw no point.

    Args:
        partial: `linreg.diagnostics.diagnose(...).partial_regression`, m rows and d features.
        names: (d,) the feature columns' names, in coefficient order.
        t_values: (d,) the reference's t statistics; with d > max_panels the max_panels features of
            largest |t| are drawn (NaN last), in that order; required then.
        solver_coefs: solver name -> (d,) its coefficients, in legend order.
        max_panels: the most panels drawn (at least 1).
        target: the target column's name, for the y labels.
        total_rows: the data's rows, for the title when `partial.sampled`.

    Returns:
        A figure with one axes per feature drawn, ceil(√k) to a row, and a legend below them.

    Raises:
        ValueError: an array's shape does not match the names, max_panels < 1, or d > max_panels
            without t_values.
    """
    d = len(names)
    solver_coefs = solver_coefs or {}
    _check_partial(partial, names, t_values, solver_coefs, max_panels)
    shown = _partial_order(d, t_values, max_panels)
    columns = math.ceil(math.sqrt(len(shown)))
    rows = -(-len(shown) // columns)
    width, height = PARTIAL_PANEL
    fig = Figure(figsize=(max(PARTIAL_MIN_WIDTH, width * columns), height * rows + PARTIAL_TITLE_HEIGHT),
                 dpi=80, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(shown):]:
        ax.remove()  # the grid's last row may be short
    for ax, j in zip(axes, shown):
        t = None if t_values is None else float(t_values[j])
        _draw_partial_panel(ax, partial, j, names[j], target, t, solver_coefs)
    handles = {line.get_label(): line for ax in axes[: len(shown)] for line in ax.lines
               if not line.get_label().startswith("_")}
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=min(len(handles), 5), fontsize=8)
    notes = ([f"first {len(shown)} of {d} features by |t|"] if len(shown) < d else []) + [
        _rows_note(len(partial.rows), partial.sampled, total_rows)]
    fig.suptitle(f"Added-variable plots of the reference fit\n{'; '.join(notes)}", fontsize=11)
    return fig


def _check_partial(partial, names, t_values, solver_coefs, max_panels) -> None:
    d = len(names)
    m = len(partial.rows)
    arrays = {"partial.coef": (partial.coef, (d,)), "partial.x_residuals": (partial.x_residuals, (m, d)),
              "partial.y_residuals": (partial.y_residuals, (m, d))}
    if t_values is not None:
        arrays["t_values"] = (t_values, (d,))
    arrays.update({f"solver_coefs[{name!r}]": (values, (d,)) for name, values in solver_coefs.items()})
    for label, (values, shape) in arrays.items():
        if np.shape(values) != shape:
            raise ValueError(f"{label}: shape {np.shape(values)}, expected {shape} for {d} names and {m} rows")
    if isinstance(max_panels, bool) or not isinstance(max_panels, (int, np.integer)) or max_panels < 1:
        raise ValueError(f"max_panels: {max_panels!r} is not a whole number of panels, at least 1")
    if d > max_panels and t_values is None:
        raise ValueError(f"t_values: needed to choose {max_panels} of {d} features by |t|, got None")


def _partial_order(d: int, t_values: np.ndarray | None, max_panels: int) -> list[int]:
    """The features drawn: all in column order when they fit, else the max_panels of largest |t|."""
    if d <= max_panels:
        return list(range(d))
    size = np.abs(np.asarray(t_values, dtype=np.float64))
    size = np.where(np.isnan(size), -1.0, size)  # an undefined t goes last
    return [int(j) for j in np.argsort(-size, kind="stable")[:max_panels]]


def _draw_partial_panel(ax, partial, j: int, name: str, target: str, t: float | None,
                        solver_coefs: dict[str, np.ndarray]) -> None:
    x, y = partial.x_residuals[:, j], partial.y_residuals[:, j]
    keep = np.isfinite(x) & np.isfinite(y)
    coef = float(partial.coef[j])
    title = f"{name}: coef {coef:.4g}" + (f", t {t:.3g}" if t is not None else "")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"{name} | others", fontsize=8)
    ax.set_ylabel(f"{target} | others", fontsize=8)
    ax.tick_params(labelsize=7)
    if not keep.any():
        ax.text(0.5, 0.5, "no finite residuals", transform=ax.transAxes, ha="center", va="center", color="C3")
        return
    _draw_points(ax, x[keep], y[keep], color="0.4")
    ends = np.array([x[keep].min(), x[keep].max()])
    for k, (solver, values) in enumerate(solver_coefs.items()):
        slope = float(values[j])
        if np.isfinite(slope):
            ax.plot(ends, slope * ends, "-", color=f"C{k % 10}", linewidth=1, alpha=0.6, label=solver)
    if np.isfinite(coef):
        ax.plot(ends, coef * ends, "-", color="black", linewidth=1.5, label="reference")


def plot_diagnostics(panels: Panels, target: str = "y", label_rows: int = 3, total_rows: int | None = None) -> Figure:
    """R's four `plot(lm)` panels of the reference fit, in a 2 × 2 figure.

    (a) residuals against fitted values, (b) a normal Q-Q plot of the standardized residuals,
    (c) scale-location: √|standardized residual| against fitted, and (d) standardized residuals
    against leverage with Cook's distance contours at 0.5 and 1. (a) and (c) carry a trend line
    (a running median: TREND_SPAN); (a), (b) and (d) label the `label_rows` points of largest Cook's
    distance with their data row numbers, as R does. Non-finite values (the standardized residual
    and Cook's distance of a row of leverage 1) draw no point.

    Args:
        panels: `linreg.diagnostics.diagnose(...).panels`.
        target: the target column's name, for the fitted axes.
        label_rows: how many of the most influential rows to label (0: none).
        total_rows: the data's rows, for the title when `panels.sampled`.

    Returns:
        A figure with four axes, in R's order.

    Raises:
        ValueError: label_rows is not a whole number at least 0.
    """
    if isinstance(label_rows, bool) or not isinstance(label_rows, (int, np.integer)) or label_rows < 0:
        raise ValueError(f"label_rows: {label_rows!r} is not a whole number of rows, at least 0")
    labelled = _most_influential(panels.cooks_distance, label_rows)
    # A fixed 2 x 2 grid: margins set once rather than by the constrained layout, which took half of
    # this figure's 0.6 s to render (it measures every tick label twice), on every run's critical path.
    fig = Figure(figsize=(10, 8), dpi=80)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.07, top=0.92, wspace=0.22, hspace=0.28)
    (a, b), (c, d) = fig.subplots(2, 2)
    _draw_residuals_vs_fitted(a, panels, labelled, target)
    _draw_normal_qq(b, panels, labelled)
    _draw_scale_location(c, panels, target)
    _draw_residuals_vs_leverage(d, panels, labelled)
    fig.suptitle(f"Diagnostics of the reference fit: {_rows_note(len(panels.rows), panels.sampled, total_rows)}",
                 fontsize=11)
    return fig


def _most_influential(cooks_distance: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` largest finite Cook's distances, largest first (ties: the earlier row)."""
    finite = np.flatnonzero(np.isfinite(cooks_distance))
    return finite[np.argsort(-cooks_distance[finite], kind="stable")[:count]]


def _draw_residuals_vs_fitted(ax, panels: Panels, labelled: np.ndarray, target: str) -> None:
    x, y = panels.fitted, panels.residuals
    keep = _finite(x, y)
    _draw_points(ax, x[keep], y[keep])
    ax.axhline(0.0, color="0.3", linewidth=1, linestyle=":")
    _draw_trend(ax, x[keep], y[keep])
    _label_points(ax, x[labelled], y[labelled], panels.rows[labelled])
    ax.set_xlabel(f"fitted {target}")
    ax.set_ylabel("residual")
    ax.set_title("Residuals vs fitted", fontsize=10)


def _draw_normal_qq(ax, panels: Panels, labelled: np.ndarray) -> None:
    """Sorted standardized residuals against the normal quantiles of (i − 3/8)/(n + 1/4) (R's ppoints)."""
    r = panels.standardized_residuals
    keep = np.flatnonzero(np.isfinite(r))
    order = keep[np.argsort(r[keep], kind="stable")]
    theoretical = norm.ppf((np.arange(1, len(order) + 1) - 0.375) / (len(order) + 0.25))
    _draw_points(ax, theoretical, r[order])
    if len(order):  # y = x over the quantiles only: a long tail must not squeeze the normal range
        ends = [theoretical[0], theoretical[-1]]
        ax.plot(ends, ends, "--", color="0.3", linewidth=1)
    position = dict(zip(order.tolist(), theoretical))
    shown = [i for i in labelled if i in position]
    _label_points(ax, np.array([position[i] for i in shown]), r[shown], panels.rows[shown])
    ax.set_xlabel("theoretical quantiles")
    ax.set_ylabel("standardized residual")
    ax.set_title("Normal Q-Q", fontsize=10)


def _draw_scale_location(ax, panels: Panels, target: str) -> None:
    x, y = panels.fitted, np.sqrt(np.abs(panels.standardized_residuals))
    keep = _finite(x, y)
    _draw_points(ax, x[keep], y[keep])
    _draw_trend(ax, x[keep], y[keep])
    ax.set_xlabel(f"fitted {target}")
    ax.set_ylabel("√|standardized residual|")
    ax.set_title("Scale-location", fontsize=10)


def _draw_residuals_vs_leverage(ax, panels: Panels, labelled: np.ndarray) -> None:
    x, y = panels.leverage, panels.standardized_residuals
    keep = _finite(x, y)
    _draw_points(ax, x[keep], y[keep])
    ax.axhline(0.0, color="0.3", linewidth=1, linestyle=":")
    _label_points(ax, x[labelled], y[labelled], panels.rows[labelled])
    ax.set_xlabel("leverage")
    ax.set_ylabel("standardized residual")
    ax.set_title("Residuals vs leverage", fontsize=10)
    if not keep.any():
        return
    _draw_cooks_contours(ax, float(x[keep].max()), panels.parameters)
    # The contours run off to ±∞ as h → 0: the axes show the points, as R's do, and cut the curves.
    low, high = y[keep].min(), y[keep].max()
    margin = 0.08 * (high - low) or 1.0
    ax.set_ylim(low - margin, high + margin)
    ax.set_xlim(0.0, 1.05 * x[keep].max() or 1.0)
    ax.legend(fontsize=7, loc="lower left")


def _draw_cooks_contours(ax, max_leverage: float, parameters: int) -> None:
    """r = ±√(D p (1 − h) / h) for h in (0, max leverage]: one line per level, its branches split by NaN."""
    if not max_leverage > 0:
        return
    h = np.linspace(0.0, max_leverage, 101)[1:]
    for level, color in zip(COOKS_LEVELS, COOKS_COLORS):
        r = np.sqrt(level * parameters * (1 - h) / h)
        ax.plot(np.concatenate([h, [np.nan], h]), np.concatenate([r, [np.nan], -r]), "--", color=color,
                linewidth=1, label=f"Cook's distance {level:g}")


def _draw_trend(ax, x: np.ndarray, y: np.ndarray) -> None:
    """A running median of y over TREND_SPAN of the points in x's order, then a running mean of
    those medians over the same span (Tukey's smoothing: the median resists outliers, the mean
    takes out its steps); the windows are one-sided at the ends."""
    if len(x) < 2:
        return
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    half = max(TREND_MIN_ROWS, math.ceil(TREND_SPAN * len(x))) // 2
    at = np.unique(np.linspace(0, len(x) - 1, min(len(x), TREND_POINTS)).round().astype(int))
    medians = np.array([np.median(y[max(0, i - half) : i + half + 1]) for i in at])
    low, high = np.searchsorted(at, at - half), np.searchsorted(at, at + half, side="right")
    sums = np.concatenate([[0.0], np.cumsum(medians)])
    ax.plot(x[at], (sums[high] - sums[low]) / (high - low), "-", color="C3", linewidth=1.2, label="trend")


def _draw_points(ax, x: np.ndarray, y: np.ndarray, color: str = "C0") -> None:
    style = DENSE_POINTS if len(x) > MAX_POINTS else SPARSE_POINTS
    ax.plot(x, y, ".", color=color, linestyle="none", **style)


def _label_points(ax, x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> None:
    """Each point's row number beside it, on the side towards the middle (as R's pos = 2 or 4), so
    that a label at the edge stays inside the axes."""
    middle = np.mean(ax.dataLim.intervalx)  # the points drawn so far
    for xi, yi, row in zip(x, y, rows):
        left = xi > middle
        ax.annotate(str(row), (xi, yi), xytext=(-3 if left else 3, 3), textcoords="offset points",
                    ha="right" if left else "left", fontsize=7)


def _finite(*arrays: np.ndarray) -> np.ndarray:
    return np.logical_and.reduce([np.isfinite(a) for a in arrays])


def _rows_note(shown: int, sampled: bool, total_rows: int | None) -> str:
    if not sampled:
        return f"all {shown:,} rows"
    of = f" of {total_rows:,}" if total_rows is not None else ""
    return f"a sample of {shown:,}{of} rows"
