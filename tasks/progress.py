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

class TerminalBar:
    """One rich progress display for a process, shared by every task that streams in it.

    rich allows one live display per console, and under the threads runner
    several training tasks stream at once: each gets a line of the same
    display, which starts with the first line and stops with the last.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._lines = 0

    @contextmanager
    def line(self, total: int, description: str) -> Iterator[tuple[Progress, TaskID] | None]:
        """A line of the display, or None when stderr is not a terminal."""
        if not sys.stderr.isatty():
            yield None
            return
        with self._lock:
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True,
                )
                self._progress.start()
            self._lines += 1
            progress = self._progress
            line = progress.add_task(description, total=total)
        try:
            yield progress, line
        finally:
            with self._lock:
                progress.remove_task(line)
                self._lines -= 1
                if self._lines == 0:
                    progress.stop()
                    self._progress = None


# Owned by the process (one terminal per process): tasks running in it share it.
TERMINAL = TerminalBar()


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
    with TERMINAL.line(total, description) as terminal:

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
