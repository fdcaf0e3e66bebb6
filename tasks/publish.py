"""Write the run's files and publish its Prefect artifacts."""

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from linreg.evaluate import RunSummary
from linreg.plots import MAX_POINTS, figure_png, plot_fits, plot_losses
from linreg.report import render_markdown, summary_rows
from linreg.results import compare, previous_run
from linreg.solvers import FitResult
from linreg.storage import DatasetRef, open_dataset, run_dir, write_bytes, write_csv, write_text
from tasks.dataset import memory_budget, retry_on_io_error

FIGURES = {"fits.png": "Data and fitted lines", "losses.png": "Loss curves"}


@task(name="publish", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=retry_on_io_error)
def publish_run(summary: RunSummary, fits: list[FitResult], ref: DatasetRef, root: Path) -> Path:
    """Save summary.json, summary.csv and the PNGs under runs/<run-id>/, then the artifacts.

    The report compares the run with the previous one on the same data under `root`, if any.
    """
    folder = run_dir(root, summary.run_id)
    sample_x, sample_y = open_dataset(ref, memory_budget()).head(MAX_POINTS)
    pngs = {
        "fits.png": figure_png(plot_fits(sample_x, sample_y, fits)),
        "losses.png": figure_png(plot_losses(fits)),
    }
    for name, png in pngs.items():
        write_bytes(folder / name, png)
    rows = summary_rows(summary)
    previous = previous_run(root, summary)  # before summary.json is written: this run is no candidate
    write_csv(folder / "summary.csv", rows)
    write_text(folder / "summary.json", summary.model_dump_json(indent=2) + "\n")  # last: marks the run complete
    create_table_artifact(rows, key="linreg-summary", description=f"linreg run {summary.run_id}: one row per solver")
    create_markdown_artifact(
        render_markdown(summary, {FIGURES[name]: png for name, png in pngs.items()},
                        compare(previous, summary) if previous is not None else None),
        key="linreg-report", description=f"linreg run {summary.run_id}: results and plots",
    )
    get_run_logger().info("run folder: %s", folder)
    return folder
