"""A stop request that fits running in this process's threads honour between epochs.

A thread cannot be interrupted from outside. On Ctrl-C or SIGTERM the CLI's
main thread unwinds, but Prefect's thread pool then waits for the tasks that
are running, and a long fit would keep the run alive to its last epoch. So the
CLI's signal handler sets STOP, and each training task hands its fit a progress
callback (`interruptible`) that raises FitInterrupted once STOP is set: the fit
stops at its next epoch, or its next chunk when streamed.

No Prefect here: the CLI imports this before Prefect loads.
"""

import threading
from typing import Callable

STOP = threading.Event()


class FitInterrupted(Exception):
    """The run was interrupted, so this fit stopped before its last epoch."""


def interruptible(progress: Callable[[int], None] | None = None) -> Callable[[int], None]:
    """A progress callback that raises FitInterrupted once STOP is set, else passes rows on to `progress`."""

    def advance(rows: int) -> None:
        if STOP.is_set():
            raise FitInterrupted("the run was interrupted")
        if progress is not None:
            progress(rows)

    return advance
