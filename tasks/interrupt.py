"""A stop request, honoured at safe points: between epochs, chunks and pipeline steps.

On Ctrl-C or SIGTERM the CLI's handler only sets STOP. Raising KeyboardInterrupt
from the handler instead would land at an arbitrary point of Prefect's code,
and once (in CI) it left the run waiting for ever, most likely on a lock the
interrupted code held. Instead:

- each training task hands its fit a progress callback (`interruptible`) that
  raises FitInterrupted once STOP is set, so a fit stops at its next epoch, or
  its next chunk when streamed; dataset generation does the same per chunk;
- the flows check `raise_if_interrupted()` between their steps, so an
  interrupted run evaluates and publishes nothing and ends Failed.

No Prefect here: the CLI imports this before Prefect loads.
"""

import threading
from typing import Callable

STOP = threading.Event()


class RunInterrupted(Exception):
    """The run was interrupted (Ctrl-C or SIGTERM): it stopped at a safe point."""


class FitInterrupted(RunInterrupted):
    """The run was interrupted, so this fit (or generation) stopped before its end."""


def raise_if_interrupted() -> None:
    """Raise RunInterrupted if a stop was requested."""
    if STOP.is_set():
        raise RunInterrupted("the run was interrupted")


def interruptible(progress: Callable[[int], None] | None = None) -> Callable[[int], None]:
    """A progress callback that raises FitInterrupted once STOP is set, else passes rows on to `progress`."""

    def advance(rows: int) -> None:
        if STOP.is_set():
            raise FitInterrupted("the run was interrupted")
        if progress is not None:
            progress(rows)

    return advance
