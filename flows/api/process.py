"""The local Prefect API processes a command starts, owned so that they always stop.

With no `PREFECT_API_URL`, Prefect starts a temporary API server the first
time a flow needs one (`prefect.server.api.server.SubprocessASGIServer`). That
class leaks: when start-up outlasts `PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`
(20 s by default, and a fresh database took 20 s here) it marks itself stopped
but leaves its process running, and the next call starts a second one; only
the second is stopped at exit. The orphan kept its database open and, in the
bench, held a pipe that a parent waited on for ever.

So the CLI runs the same server itself, under one owner that always stops it
(`TemporaryAPI`; `UIServer` is the full server with its UI, for `linreg ui`).
This relies on three behaviours of Prefect 3.9 (pinned in pyproject.toml):

- the temporary API is `uvicorn --factory prefect.server.api.server:create_app`
  with `PREFECT__SERVER_EPHEMERAL=1` and the UI off, exactly the command that
  `SubprocessASGIServer._run_uvicorn_command` runs;
- `GET /api/health` answers 200 once the app is up (migrations included);
- a process whose `PREFECT_API_URL` is set never starts a temporary API itself.

The server runs in its own process group, so a Ctrl-C in the terminal reaches
only the CLI, which finishes its run's bookkeeping before stopping the server;
and it is told to die with the CLI (`PR_SET_PDEATHSIG`), so even a SIGKILL of
the CLI leaves nothing behind on Linux.
"""

import ctypes
import ctypes.util
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from linreg.ports import free_port, says_port_taken

# Long enough for a first start on a fresh database on a loaded 2-core machine.
DEFAULT_STARTUP_TIMEOUT = 120.0
STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
_PR_SET_PDEATHSIG = 1
UVICORN_STARTUP_FAILED = 3  # uvicorn's exit status when the app's lifespan start-up fails
MAX_RESTARTS = 5


class TemporaryAPIError(RuntimeError):
    """The temporary API did not start; the message says why and where its log is."""


def startup_timeout() -> float:
    """Seconds to wait for the API: the Prefect setting when the user set it, else 120."""
    value = os.environ.get(STARTUP_TIMEOUT_ENV)
    return float(value) if value else DEFAULT_STARTUP_TIMEOUT


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux); runs in the child between fork and exec."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class TemporaryAPI:
    """A Prefect API server on a free loopback port, owned by this object.

    `start()` returns at once; `wait_until_healthy()` blocks until it answers,
    so the caller can import what it needs meanwhile. `stop()` (or leaving the
    `with` block) ends the whole process group: on success, failure, Ctrl-C
    and SIGTERM alike (the CLI turns SIGTERM into KeyboardInterrupt).

    Args:
        log_path: where the server's output goes (a file, never a pipe that a
            parent could wait on).
        timeout: seconds `wait_until_healthy` allows; see `startup_timeout`.
        env: variables the server gets beside this process's own (None removes one).
    """

    def __init__(self, log_path: Path, timeout: float | None = None, env: dict[str, str | None] | None = None):
        self.log_path = Path(log_path)
        self.timeout = startup_timeout() if timeout is None else timeout
        self.extra_env = dict(env or {})
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log_offset = 0  # where this start's output begins in the (appended) log

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> "TemporaryAPI":
        """Launch the server process (non-blocking) on a free port."""
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        prefect_dir = Path(importlib.util.find_spec("prefect").origin).parent
        env = self._env({"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"})
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect_dir.parent), "--factory",
                 "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
                 "--log-level", "error", "--lifespan", "on"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        return self

    def _env(self, own: dict[str, str]) -> dict[str, str]:
        """This process's environment without PREFECT_API_URL, plus the server's own variables and `env`."""
        env = {**os.environ, **own}
        env.pop("PREFECT_API_URL", None)
        for name, value in self.extra_env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def wait_until_healthy(self) -> str:
        """Block until the API answers; return its URL.

        Raises:
            TemporaryAPIError: the server exited or did not answer within the
                timeout. The server is stopped first, so nothing is left running.
        """
        deadline = time.monotonic() + self.timeout
        restarts = 0
        while True:
            if self._start_failed_transiently() and restarts < MAX_RESTARTS:
                # What SubprocessASGIServer does too: uvicorn exits 3 when the app's start-up
                # fails, as when two servers start on one database at once and race to
                # register Prefect's block types (UNIQUE constraint failed); a second
                # start finds them registered. A port taken between choosing and binding
                # it (exit 1, "address already in use") gets a new port the same way.
                restarts += 1
                self.stop()
                self.start()
                continue
            if self.process.poll() is not None:
                self.stop()
                raise TemporaryAPIError(
                    f"the temporary Prefect API exited with status {self.process.returncode} "
                    f"before answering; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self.api_url
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TemporaryAPIError(
                    f"the temporary Prefect API did not answer within {self.timeout:g} s (see {self.log_path}); "
                    f"set {STARTUP_TIMEOUT_ENV} to wait longer, or point PREFECT_API_URL at a running server"
                )
            time.sleep(0.1)

    def _start_failed_transiently(self) -> bool:
        code = self.process.poll()
        if code is None:
            return False
        return code == UVICORN_STARTUP_FAILED or (self.retries_taken_port and says_port_taken(self._this_start_log()))

    retries_taken_port = True  # its port is any free one: a taken port means "choose another"

    def _this_start_log(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the server's process group, then SIGKILL whatever is left after `grace` seconds."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # anything the server itself started
        except ProcessLookupError:
            pass
        self.process.wait()

    def __enter__(self) -> "TemporaryAPI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def drain_prefect_workers() -> None:
    """Send the logs and events this process still has queued to its API: call it before that API stops.

    Prefect drains them at interpreter exit, by which time a temporary API is gone.
    """
    # Deferred: this module is imported before Prefect, so that the API can start first.
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


class UIServer(TemporaryAPI):
    """`prefect server start` with its UI, over one PREFECT_HOME's database, on a loopback port.

    The same ownership as TemporaryAPI (own process group, dies with its owner,
    stopped whole), but the full server: the UI, and its background services.
    `linreg ui` gives the user's port, where a taken one is reported, not swapped;
    with `port=None` (the bench's "already running server") any free port, retried when taken.
    """

    def __init__(self, log_path: Path, port: int | None, timeout: float | None = None,
                 env: dict[str, str | None] | None = None):
        super().__init__(log_path, timeout, env)
        self.fixed_port = port
        self.retries_taken_port = port is None

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "UIServer":
        self.port = free_port() if self.fixed_port is None else self.fixed_port
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = self._env({"PREFECT_UI_API_URL": self.api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("prefect")), "server", "start",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        return self
