"""Publish the run history: history.csv and history.png under the data root, and two artifacts."""

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from linreg.history import write_history
from linreg.report import HISTORY_ARTIFACT_COLUMNS, frame_rows, history_markdown
from linreg.results import history_table, load_history
from tasks.dataset import retry_on_io_error


@task(name="publish-history", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1,
      retry_condition_fn=retry_on_io_error)
def publish_history(root: Path, filters: dict):
    """Load every finished run under `root` (skipping bad folders with a warning) and publish the history.

    Returns:
        The history DataFrame (a row per run and solver), empty when no run matches.
    """
    frame = load_history(root, **filters)
    png = write_history(root, frame) if not frame.empty else None
    runs = frame["run_id"].nunique()
    create_table_artifact(frame_rows(frame, HISTORY_ARTIFACT_COLUMNS), key="linreg-history",
                          description=f"linreg history under {root}: {runs} runs, one row per run and solver")
    create_markdown_artifact(history_markdown(history_table(frame), png, Path(root)), key="linreg-history-report",
                             description=f"linreg history under {root}: seconds and errors across {runs} runs")
    get_run_logger().info("history of %d runs under %s", runs, root)
    return frame
