"""Figures of a run. Functions return a Figure; where it is saved is the caller's choice."""

import io

import numpy as np
from matplotlib.figure import Figure  # the Figure API needs no pyplot backend: headless workers are fine

from linreg.solvers.base import FitResult

MAX_POINTS = 2000
MAX_PANELS = 4
LOSS_CAP = 1e30


def plot_fits(x: np.ndarray, y: np.ndarray, fits: list[FitResult]) -> Figure:
    """The data with every fitted line, one panel per feature (at most four).

    For d > 1 each line is the fit along one feature with the others held at
    their means.

    Args:
        x: (k, d) sample of the features (rows are i.i.d., so the first MAX_POINTS will do).
        y: (k,) matching targets.
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
        ax.set_xlabel(f"x{k}")
        ax.set_ylabel("y")
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
