"""Which Prefect API a command uses: the user's, `make server`'s, `linreg ui`'s, or a temporary one.

`linreg run`, `linreg sweep` and `linreg ui` all ask here. `project_server` and
`ui_server` find an API already serving this project; `serve_or_wait` gives a run
either `linreg ui`'s API or the home's lock, under which it starts a temporary API
of its own (flows.api.process).
"""

import base64
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from flows.api.lock import HomeLock

REPO = Path(__file__).resolve().parents[2]
UI_PORT = 4300  # `make ui` (`linreg ui`); `make server` keeps Prefect's 4200
UI_PORT_ENV = "LINREG_UI_PORT"
SERVER_RUN_DIR_ENV = "LINREG_SERVER_RUN_DIR"  # where `make server` records its PIDs; tests point it elsewhere
UI_RECORD = "ui-server.json"  # in PREFECT_HOME, while `linreg ui` serves that home's database


class APIUnreachable(RuntimeError):
    """The Prefect API a run was pointed at does not answer; the message names the URL."""


def ui_port() -> int:
    """The port `linreg ui` serves on by default, and the one `linreg run` names: $LINREG_UI_PORT or 4300."""
    return int(os.environ.get(UI_PORT_ENV) or UI_PORT)


def prefect_home() -> Path:
    """The PREFECT_HOME this process uses: $PREFECT_HOME, else Prefect's default ~/.prefect."""
    return Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()


def ui_command() -> str:
    """What serves this PREFECT_HOME's runs: `make ui` for the project's `.prefect/`, else `linreg ui`."""
    return "make ui" if prefect_home().resolve() == (REPO / ".prefect").resolve() else "linreg ui"


def basic_auth_headers(auth: str | None) -> dict[str, str]:
    """The HTTP header that sends `auth` ("user:password") as basic auth; none without it."""
    if not auth:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def api_problem(url: str, timeout: float = 2.0) -> str | None:
    """None when `url`'s /health answers 200, else what went wrong, in a few words."""
    headers = basic_auth_headers(os.environ.get("PREFECT_API_AUTH_STRING"))
    request = urllib.request.Request(f"{url.rstrip('/')}/health", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return "401 Unauthorized: set PREFECT_API_AUTH_STRING to the server's credentials"
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return getattr(reason, "strerror", None) or str(reason) or type(exc).__name__


def check_api(url: str, timeout: float = 10.0) -> None:
    """Return once `url` answers; raise APIUnreachable after `timeout` seconds of trying.

    A refused login (401) is final at once: retrying cannot fix credentials.
    """
    deadline = time.monotonic() + timeout
    while True:
        problem = api_problem(url, timeout=min(2.0, timeout))
        if problem is None:
            return
        if problem.startswith("401") or time.monotonic() > deadline:
            raise APIUnreachable(f"no Prefect API answers at {url} ({problem})")
        time.sleep(0.5)


def _alive(pid: int, *words: bytes) -> bool:
    """Whether process `pid` runs and its command line holds every one of `words`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return all(word in cmdline for word in words)


def project_server() -> str | None:
    """The API of the project's own server (`make server`), if it runs and answers."""
    run_dir = Path(os.environ.get(SERVER_RUN_DIR_ENV) or REPO / ".prefect-server" / "run")
    try:
        pid = int((run_dir / "server.pid").read_text())
        port = int((run_dir / "server.port").read_text())
    except (OSError, ValueError):
        return None
    url = f"http://127.0.0.1:{port}/api"
    return url if _alive(pid, b"prefect", b"server") and api_problem(url) is None else None


def ui_server(home: Path) -> str | None:
    """The API of `linreg ui` serving `home`'s database, if it runs and answers."""
    try:
        record = json.loads((Path(home) / UI_RECORD).read_text())
        pid, url = int(record["pid"]), str(record["api_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if _alive(pid, b"prefect", b"server") and api_problem(url) is None else None


def serve_or_wait(home: Path, on_wait) -> tuple[HomeLock | None, str | None]:
    """For a run on `home`: the home's lock, to serve its database with a temporary API, or
    the URL of `linreg ui` once it serves that home. Waits (calling `on_wait` once) while
    another process holds the lock and no UI server answers, e.g. while another run goes on
    or a `linreg ui` is still starting."""
    lock, told = HomeLock(home), False
    while True:
        if lock.acquire(blocking=False):
            return lock, None
        if url := ui_server(home):
            return None, url
        if not told:
            on_wait(lock.path)
            told = True
        time.sleep(0.5)
