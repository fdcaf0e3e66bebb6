"""One writer per SQLite database: the lock on a PREFECT_HOME."""

import fcntl
import os
from pathlib import Path

LOCK_FILE = ".linreg-api.lock"  # in PREFECT_HOME: held by whichever process serves its database


class HomeLock:
    """An exclusive lock on a PREFECT_HOME, held by the one process that serves its SQLite database.

    A `linreg run` with a temporary API holds it for the run; `linreg ui` holds
    it while it serves. A second `linreg run` on the same home finds the UI's
    server and reports to it, or, when another run holds the lock, waits for it:
    two servers never write one SQLite file at once. The lock is the kernel's
    (flock), so it goes with its process, however that process ends.
    """

    def __init__(self, home: Path):
        self.path = Path(home) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with `blocking=False`, return False at once when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:  # a signal during a blocking wait
            os.close(fd)
            raise
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None

    def __enter__(self) -> "HomeLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
