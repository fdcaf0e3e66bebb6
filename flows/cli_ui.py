"""`linreg ui` (`make ui`): the Prefect UI over every run that `linreg run` made on this PREFECT_HOME.

`linreg run` keeps its runs in PREFECT_HOME's SQLite database (`.prefect/` under
`make run`), written by a temporary API that stops with the run. This command
serves that database with Prefect's full server and UI until Ctrl-C. While it
serves, `linreg run` reports to it (flows.local_api.ui_server), so runs appear
live, and the two never write the database at once (flows.local_api.HomeLock).
"""

import argparse
import json
import os
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from flows.local_api import (
    UI_RECORD,
    HomeLock,
    TemporaryAPIError,
    UIServer,
    port_in_use,
    project_server,
    ui_port,
)


def register(commands) -> None:
    ui = commands.add_parser("ui", help="serve the Prefect UI over the runs made with `linreg run` (Ctrl-C stops it)")
    ui.add_argument("--port", type=int, default=None,
                    help="loopback port for the UI and its API (default $LINREG_UI_PORT, else 4300)")
    ui.set_defaults(handler=serve_ui)


def _home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()


def _stop_on(signum, frame):
    raise KeyboardInterrupt


def serve_ui(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; always stop the server and remove its record."""
    if args.port is None:
        args.port = ui_port()
    if not 1 <= args.port <= 65535:
        print(f"linreg ui: error: --port: must be in [1, 65535], got {args.port}", file=sys.stderr)
        return 2
    if port_in_use(args.port):
        print(f"linreg ui: error: --port: 127.0.0.1:{args.port} is already in use; choose another with --port",
              file=sys.stderr)
        return 2
    if os.environ.get("PREFECT_API_URL"):
        print(f"linreg ui: note: PREFECT_API_URL is set ({os.environ['PREFECT_API_URL']}): `linreg run` reports "
              "there, not here", file=sys.stderr)
    elif server := project_server():
        print(f"linreg ui: note: the project's server (make server) runs at {server.removesuffix('/api')}: "
              "new runs report there; this UI shows the runs made without it", file=sys.stderr)
    signal.signal(signal.SIGTERM, _stop_on)
    home = _home()
    record = home / UI_RECORD
    try:
        lock = HomeLock(home)
        if not lock.acquire(blocking=False):
            print(f"linreg ui: a linreg run is using {home}; starting when it ends", file=sys.stderr, flush=True)
            lock.acquire()
        with ExitStack() as stack:
            stack.callback(lock.release)
            with UIServer(home / "ui-server.log", args.port) as server:
                try:
                    server.wait_until_healthy()
                except TemporaryAPIError as exc:
                    print(f"linreg ui: {str(exc).replace('temporary Prefect API', 'Prefect server')}", file=sys.stderr)
                    return 1
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
    except KeyboardInterrupt:
        print("linreg ui: stopped", file=sys.stderr)
        return 0
