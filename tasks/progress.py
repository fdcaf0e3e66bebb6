"""Progress of long loops: a Prefect progress artifact, and a rich bar on a terminal."""

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from linreg.data import CHUNK_ROWS

MIN_INTERVAL = 0.5  # seconds between artifact updates: each is an API call


@contextmanager
def rows_progress(total: int, description: str, key: str) -> Iterator[Callable[[int], None] | None]:
    """Yield a callback taking rows done, or None when the work fits in one chunk.

    The callback costs a clock read per call, and an API call at most every
    MIN_INTERVAL seconds, so it does not slow the loop it reports on.
    """
    if total <= CHUNK_ROWS:
        yield None
        return
    artifact = create_progress_artifact(0.0, key=key, description=description)
    bar = None
    if sys.stderr.isatty():
        bar = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       console=Console(stderr=True), transient=True)
        bar.start()
        bar_task = bar.add_task(description, total=total)
    done, last = 0, 0.0

    def advance(rows: int) -> None:
        nonlocal done, last
        done += rows
        if bar:
            bar.update(bar_task, completed=done)
        now = time.monotonic()
        if now - last >= MIN_INTERVAL or done >= total:
            update_progress_artifact(artifact, 100.0 * done / total)
            last = now

    try:
        yield advance
    finally:
        if bar:
            bar.stop()
