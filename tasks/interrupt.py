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

Time limits (`RunSpec.timeouts`) use the same safe points: a fit past its limit,
or past the run's, raises FitTimedOut at its next epoch or chunk and ends
`failed`, naming the limit; a run past its limit raises RunTimedOut at the next
step. Prefect's own `timeout_seconds` cannot do this for us: in a worker thread
it can only interrupt Python code, as here, and it logs a warning for every task.
Deadlines are wall-clock times (`time.time()`), so they hold in worker processes
and on Dask workers too.

No Prefect here: the CLI imports this before Prefect loads.
"""

import threading
import time
from typing import Callable

STOP = threading.Event()


class RunInterrupted(Exception):
    """The run was interrupted (Ctrl-C or SIGTERM): it stopped at a safe point."""


class FitInterrupted(RunInterrupted):
    """The run was interrupted, so this fit (or generation) stopped before its end."""


class RunTimedOut(Exception):
    """The run went past `timeouts.run_seconds`: it stopped at a safe point."""


class FitTimedOut(Exception):
    """A fit went past its time limit, so it stopped before its end."""


def run_deadline(run_seconds: float) -> float:
    """The wall-clock time by which a run that starts now must end."""
    return time.time() + run_seconds


def raise_if_interrupted(deadline: float | None = None) -> None:
    """Raise RunInterrupted if a stop was requested, RunTimedOut if `deadline` has passed."""
    if STOP.is_set():
        raise RunInterrupted("the run was interrupted")
    if deadline is not None and time.time() > deadline:
        raise RunTimedOut("the run went past its time limit (timeouts.run_seconds)")


def interruptible(
    progress: Callable[[int], None] | None = None, fit_seconds: float | None = None, run_deadline: float | None = None
) -> Callable[[int], None]:
    """A progress callback for one fit or one generation, started now.

    It raises FitInterrupted once STOP is set, and FitTimedOut once `fit_seconds`
    have passed or the run's deadline has; otherwise it passes rows on to `progress`.
    """
    limits = []
    if fit_seconds is not None:
        limits.append((time.time() + fit_seconds, f"the fit went past its time limit of {fit_seconds:g} s (timeouts.fit_seconds)"))
    if run_deadline is not None:
        limits.append((run_deadline, "the run went past its time limit (timeouts.run_seconds)"))

    def advance(rows: int) -> None:
        if STOP.is_set():
            raise FitInterrupted("the run was interrupted")
        if limits:
            now = time.time()
            for deadline, message in limits:
                if now > deadline:
                    raise FitTimedOut(message)
        if progress is not None:
            progress(rows)

    return advance
