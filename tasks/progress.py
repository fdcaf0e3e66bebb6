"""Progress of long loops: a Prefect progress artifact, and a rich bar on a terminal."""

import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from linreg.data import CHUNK_ROWS

MIN_INTERVAL = 0.5  # seconds between artifact updates: each is an API call

# rich allows one live display at a time, and under the threads runner several
# training tasks stream at once: they share one Progress, one line per task.
_lock = threading.Lock()
_shared: dict = {"bar": None, "users": 0}


@contextmanager
def _terminal_line(total: int, description: str) -> Iterator[tuple[Progress, TaskID] | None]:
    """A line of the shared terminal bar, or None when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    with _lock:
        if _shared["bar"] is None:
            _shared["bar"] = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )
            _shared["bar"].start()
        _shared["users"] += 1
        bar = _shared["bar"]
        line = bar.add_task(description, total=total)
    try:
        yield bar, line
    finally:
        with _lock:
            bar.remove_task(line)
            _shared["users"] -= 1
            if _shared["users"] == 0:
                bar.stop()
                _shared["bar"] = None


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
    done, last = 0, 0.0
    with _terminal_line(total, description) as terminal:

        def advance(rows: int) -> None:
            nonlocal done, last
            done += rows
            if terminal:
                terminal[0].update(terminal[1], completed=done)
            now = time.monotonic()
            if now - last >= MIN_INTERVAL or done >= total:
                update_progress_artifact(artifact, 100.0 * done / total)
                last = now

        yield advance
