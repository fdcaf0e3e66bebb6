"""Ctrl-C and SIGTERM: one handler object per command, no module state.

A command that runs a flow (`linreg run`, `linreg sweep`) unwinds on a signal: the
first one during the flow only sets `tasks.interrupt.STOP`, so the run stops at its
next safe point, records its state and stops the temporary API. Before the flow
starts, or on a second signal, KeyboardInterrupt is raised at once. Should unwinding
wedge, the process exits 130 `grace` seconds after the first signal.

`linreg ui` only needs SIGTERM to stop it as Ctrl-C does (`stop_at_once`).
"""

import os
import signal
import sys
import threading
from contextlib import contextmanager

from tasks.interrupt import STOP

# Seconds an interrupted run gets to unwind: record its state, stop the temporary API.
GRACE_SECONDS = 30.0


class Interrupts:
    """The signal handlers of one command, and what they have seen.

    Args:
        command: the subcommand, as its messages name it (`run`, `sweep`, `ui`).
        grace: seconds from the first signal to the forced exit.
    """

    def __init__(self, command: str, grace: float = GRACE_SECONDS):
        self.command = command
        self.grace = grace
        self.signal_name = "SIGINT"  # the last signal received, for the "interrupted (...)" line
        self.flow_started = False
        self._deadline: threading.Timer | None = None

    def install_for_flow(self) -> "Interrupts":
        """SIGTERM and Ctrl-C unwind a run; SIGINT is left alone when the process was started with it ignored."""
        # SIGTERM unwinds like Ctrl-C: every pending write finishes or removes its temporary file,
        # running fits stop at their next epoch, and the temporary API is stopped.
        signal.signal(signal.SIGTERM, self.on_signal)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when started with SIGINT ignored
            signal.signal(signal.SIGINT, self.on_signal)
        return self

    def install_for_server(self) -> "Interrupts":
        """SIGTERM stops a server command as Ctrl-C does (KeyboardInterrupt, handled by the command)."""
        signal.signal(signal.SIGTERM, self.stop_at_once)
        return self

    def on_signal(self, signum, frame) -> None:
        """First signal during the flow: ask it to stop at its next safe point (tasks.interrupt).
        Before the flow starts, or on a second signal: raise KeyboardInterrupt at once."""
        first = not STOP.is_set()
        STOP.set()
        if self._deadline is None:
            self._deadline = threading.Timer(self.grace, self._exit_now)
            self._deadline.daemon = True
            self._deadline.start()
        self.signal_name = signal.Signals(signum).name
        if not (first and self.flow_started):
            raise KeyboardInterrupt(self.signal_name)

    @staticmethod
    def stop_at_once(signum, frame) -> None:
        """Raise KeyboardInterrupt, as Ctrl-C does: a server has no safe point to wait for."""
        raise KeyboardInterrupt

    @contextmanager
    def flow_running(self):
        """While the flow runs, a first signal asks it to stop instead of raising."""
        self.flow_started = True
        try:
            yield
        finally:
            self.flow_started = False

    def raise_if_stopped(self) -> None:
        """After the flow: raise KeyboardInterrupt naming the signal, if one stopped it at a safe point."""
        if STOP.is_set():
            raise KeyboardInterrupt(self.signal_name)

    def _exit_now(self) -> None:
        """The last resort after a signal, should unwinding wedge (a second signal raises
        KeyboardInterrupt into arbitrary Prefect code, which once left a run waiting for
        ever). Files are written atomically, and the temporary API dies with this process
        (PR_SET_PDEATHSIG), so exiting is safe."""
        print(f"linreg {self.command}: still stopping {self.grace:g} s after the signal; exiting now", file=sys.stderr, flush=True)
        os._exit(130)


def interrupted(command: str, exc: KeyboardInterrupt) -> int:
    """Print that `command` was interrupted (by the signal `exc` names); return exit status 130."""
    print(f"linreg {command}: interrupted ({str(exc) or 'SIGINT'}); no partial files were kept", file=sys.stderr)
    return 130
