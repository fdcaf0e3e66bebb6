"""Write the run's files and publish its Prefect artifacts."""

from pathlib import Path

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from linreg.evaluate import Evaluation, RunSummary
from linreg.inference import INTERCEPT
from linreg.plots import (
    MAX_POINTS, figure_png, plot_coefficients, plot_diagnostics, plot_fits, plot_losses, plot_partial_regression,
    plot_predicted_vs_actual, plot_residuals,
)
from linreg.report import render_markdown, saved_summary_rows
from linreg.results import compare, previous_run
from linreg.solvers import FitResult
from linreg.solvers.registry import REFERENCE
from linreg.storage import Catalog, DataRef, open_data, write_bytes, write_csv, write_text
from linreg.storage.catalog import (
    COEFFICIENTS_PNG, DIAGNOSTICS_PNG, FITS_PNG, LOSSES_PNG, PREDICTED_PNG, RESIDUALS_PNG, SUMMARY, SUMMARY_CSV,
)
from tasks.dataset import memory_budget, retry_on_io_error

FIGURES = {FITS_PNG: "Data and fitted lines", LOSSES_PNG: "Loss curves",
           PREDICTED_PNG: "Predicted against actual", RESIDUALS_PNG: "Residuals of the reference fit",
           COEFFICIENTS_PNG: "Coefficients by solver",
           DIAGNOSTICS_PNG: "Diagnostics of the reference fit"}  # the report's title of each of the catalog's figures
PARTIAL_TITLE = "Partial regression: each coefficient as a slope"  # fits.png's title for d > 1


def table_figures(summary: RunSummary, fits: list[FitResult], x: np.ndarray, y: np.ndarray) -> dict[str, bytes]:
    """The figures for d > 1 (and any user's table), where one line per solver no longer shows a fit:
    predictions against the actual target, the reference's residuals, and every solver's
    coefficients beside the reference's 95% interval, by column name."""
    ds = summary.dataset
    target = ds.target or "y"
    ok = [f for f in fits if np.isfinite(f.coef).all()]
    predictions = {f.solver: f.intercept + x @ f.coef for f in ok}
    pngs = {PREDICTED_PNG: figure_png(plot_predicted_vs_actual(y, predictions, target))}
    reference = next((f for f in fits if f.solver == REFERENCE), None)
    if reference is not None and np.isfinite(reference.coef).all():
        fitted = reference.intercept + x @ reference.coef
        pngs[RESIDUALS_PNG] = figure_png(plot_residuals(fitted, y - fitted, target))
        rows = {c.parameter: c for c in summary.coefficients or []}
        names = ds.names
        low = np.array([rows[n].ci_low if n in rows else np.nan for n in names])
        high = np.array([rows[n].ci_high if n in rows else np.nan for n in names])
        pngs[COEFFICIENTS_PNG] = figure_png(plot_coefficients(
            names, {f.solver: f.coef for f in fits if f.solver != REFERENCE}, reference.coef, low, high))
    return pngs


def diagnostic_figures(evaluation: Evaluation, fits: list[FitResult]) -> dict[str, bytes]:
    """The reference's four diagnostic panels, and for d > 1 its partial-regression plots (as fits.png,
    where a line per feature through the raw scatter would misread a multiple regression); none for
    a rank-deficient reference, which has no unique leverage."""
    found, summary = evaluation.diagnosis.diagnostics, evaluation.summary
    if found is None:
        return {}
    ds, target = summary.dataset, summary.dataset.target or "y"
    pngs = {DIAGNOSTICS_PNG: figure_png(plot_diagnostics(found.panels, target, total_rows=ds.n))}
    if ds.d > 1:
        t = np.array([c.t for c in summary.coefficients or [] if c.parameter != INTERCEPT])
        solvers = {f.solver: f.coef for f in fits if f.solver != REFERENCE}
        pngs[FITS_PNG] = figure_png(plot_partial_regression(
            found.partial_regression, ds.names, t if len(t) == ds.d else None, solvers, target=target,
            total_rows=ds.n))
    return pngs


@task(name="publish", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=retry_on_io_error)
def publish_run(evaluation: Evaluation, fits: list[FitResult], ref: DataRef, root: Path) -> Path:
    """Save summary.json, summary.csv and the PNGs under runs/<run-id>/, then the artifacts.

    The report compares the run with the previous one on the same data and model under `root`, if any.
    """
    summary = evaluation.summary
    catalog = Catalog(root)
    folder = catalog.run(summary.run_id)
    sample_x, sample_y = open_data(ref, memory_budget()).head(MAX_POINTS)
    names, target = summary.dataset.features, summary.dataset.target or "y"
    diagnostics = diagnostic_figures(evaluation, fits)
    pngs = {
        FITS_PNG: diagnostics.pop(FITS_PNG, None) or figure_png(plot_fits(sample_x, sample_y, fits, names, target)),
        LOSSES_PNG: figure_png(plot_losses(fits)),
    }
    if summary.dataset.d > 1 or summary.dataset.source == "file":
        pngs.update(table_figures(summary, fits, sample_x, sample_y))
    pngs.update(diagnostics)
    for name, png in pngs.items():
        write_bytes(catalog.run_file(summary.run_id, name), png)
    rows = saved_summary_rows(summary)
    previous = previous_run(root, summary)  # before summary.json is written: this run is no candidate
    write_csv(catalog.run_file(summary.run_id, SUMMARY_CSV), rows)
    # Last: marks the run complete.
    write_text(catalog.run_file(summary.run_id, SUMMARY), summary.model_dump_json(indent=2) + "\n")
    create_table_artifact(rows, key="linreg-summary", description=f"linreg run {summary.run_id}: one row per solver")
    titles = {**FIGURES, **({FITS_PNG: PARTIAL_TITLE} if summary.dataset.d > 1 else {})}
    create_markdown_artifact(
        render_markdown(summary, {titles[name]: png for name, png in pngs.items()},
                        compare(previous, summary) if previous is not None else None),
        key="linreg-report", description=f"linreg run {summary.run_id}: results and plots",
    )
    get_run_logger().info("run folder: %s", folder)
    return folder
