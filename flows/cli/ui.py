"""`linreg ui` (`make ui`): the Prefect UI over every run that `linreg run` made on this PREFECT_HOME.

`linreg run` keeps its runs in PREFECT_HOME's SQLite database (`.prefect/` under
`make run`), written by a temporary API that stops with the run. This command
serves that database with Prefect's full server and UI until Ctrl-C. While it
serves, `linreg run` reports to it (flows.api.choose.ui_server), so runs appear
live, and the two never write the database at once (flows.api.lock.HomeLock).
"""

import argparse
import json
import os
import sys
import threading
from contextlib import ExitStack

from flows.api.choose import UI_RECORD, prefect_home, project_server, ui_port
from flows.api.lock import HomeLock
from flows.api.process import TemporaryAPIError, UIServer
from flows.cli.options import OptionError, integer_option, refuse
from flows.cli.signals import Interrupts
from linreg.ports import port_open


def register(commands) -> None:
    """Add `ui` to `linreg`'s subcommands."""
    ui = commands.add_parser("ui", help="serve the Prefect UI over the runs made with `linreg run` (Ctrl-C stops it)")
    ui.add_argument("--port", default=None,
                    help="loopback port for the UI and its API (default $LINREG_UI_PORT, else 4300)")
    ui.set_defaults(handler=main)


def check_port(port: int | None) -> int:
    """--port, or the default one ($LINREG_UI_PORT, else 4300); free and in range.

    Raises:
        OptionError: out of range, or already in use.
    """
    port = ui_port() if port is None else port
    if not 1 <= port <= 65535:
        raise OptionError(f"--port: must be in [1, 65535], got {port}")
    if port_open(port):
        raise OptionError(f"--port: 127.0.0.1:{port} is already in use; choose another with --port")
    return port


def main(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; always stop the server and remove its record."""
    try:
        port = check_port(integer_option(args, "port", 1, 65535))
    except OptionError as exc:
        return refuse("ui", exc)
    if os.environ.get("PREFECT_API_URL"):
        print(f"linreg ui: note: PREFECT_API_URL is set ({os.environ['PREFECT_API_URL']}): `linreg run` reports "
              "there, not here", file=sys.stderr)
    elif server := project_server():
        print(f"linreg ui: note: the project's server (make server) runs at {server.removesuffix('/api')}: "
              "new runs report there; this UI shows the runs made without it", file=sys.stderr)
    Interrupts("ui").install_for_server()
    home = prefect_home()
    try:
        lock = HomeLock(home)
        if not lock.acquire(blocking=False):
            print(f"linreg ui: a linreg run is using {home}; starting when it ends", file=sys.stderr, flush=True)
            lock.acquire()
        with ExitStack() as stack:
            stack.callback(lock.release)
            with UIServer(home / "ui-server.log", port) as server:
                return _serve(server, home)
    except KeyboardInterrupt:
        print("linreg ui: stopped", file=sys.stderr)
        return 0


def _serve(server: UIServer, home) -> int:
    """Wait for the server to answer, record it for `linreg run`, then wait until it exits or a signal comes."""
    try:
        server.wait_until_healthy()
    except TemporaryAPIError as exc:
        print(f"linreg ui: {str(exc).replace('temporary Prefect API', 'Prefect server')}", file=sys.stderr)
        return 1
    record = home / UI_RECORD
    record.write_text(json.dumps({"pid": server.process.pid, "api_url": server.api_url}))
    try:
        print(f"Prefect UI over the runs in {home}: {server.ui_url}", flush=True)
        print(f"(`linreg run` reports here while it runs; Ctrl-C stops it; log {server.log_path})", flush=True)
        stopped = threading.Event()
        while server.process.poll() is None and not stopped.wait(0.5):
            pass
        print(f"linreg ui: the server exited with status {server.process.returncode}; see {server.log_path}",
              file=sys.stderr)
        return 1
    finally:
        record.unlink(missing_ok=True)
