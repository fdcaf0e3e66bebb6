"""Figures of a run and of a sweep. Functions return a Figure; where it is saved is the caller's choice."""

import io

import numpy as np
from matplotlib.figure import Figure  # the Figure API needs no pyplot backend: headless workers are fine

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
