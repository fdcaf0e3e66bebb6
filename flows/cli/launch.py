"""Run a flow from the terminal on the Prefect API that flows.api.choose picks (`linreg run`, `linreg sweep`).

Top level stays light: Prefect is imported inside the functions, after the options
are valid and the temporary API has started.
"""

import os
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from flows.api.choose import check_api, prefect_home, project_server, serve_or_wait, ui_command, ui_port
from flows.api.process import TemporaryAPI, drain_prefect_workers
from flows.cli.environment import export_prefect_environment
from flows.cli.signals import Interrupts
from tasks.interrupt import raise_if_interrupted


def run_on_prefect(command: str, interrupts: Interrupts, warm_imports, call_flow):
    """Run a flow on the right Prefect API; return its final state and the UI address that shows it (or None).

    Where the run reports, first match wins:
    1. `PREFECT_API_URL`, when the user set it (it must answer within 10 s);
    2. the project's own server (`make server`), when it runs;
    3. `linreg ui` (`make ui`), when it serves this PREFECT_HOME's database;
    4. a temporary API on this PREFECT_HOME, started here and stopped at the end,
       while this process holds the home's lock (flows.api.lock.HomeLock), so
       that two processes never write one SQLite file at once. `linreg ui` shows
       the run afterwards.

    The temporary API is launched first thing, before Prefect is even imported
    (1 s), so that its start-up (about 5 s) overlaps `warm_imports()`. A URL set
    in a Prefect profile is only known once Prefect is imported: then the launch
    is undone.

    Args:
        command: the subcommand, for messages ("run", "sweep").
        interrupts: the command's signal handlers, told while the flow runs.
        warm_imports: imports the flow needs, done while the API starts.
        call_flow: runs the flow with `return_state=True`, in a thread of its own.

    Raises:
        APIUnreachable: the configured API does not answer.
        TemporaryAPIError: the temporary API did not start (it is stopped).
    """
    def report_to(url: str, why: str) -> None:
        export_prefect_environment(url)  # read by Prefect when it is imported, below
        print(f"linreg {command}: reporting to {why} at {url}", file=sys.stderr, flush=True)

    def waiting(lock_path: Path) -> None:
        print(f"linreg {command}: {lock_path.parent} is in use by another linreg run or a starting `linreg ui` "
              "(one process writes its database at a time); waiting", file=sys.stderr, flush=True)

    with ExitStack() as stack:
        api, ui = None, None
        if os.environ.get("PREFECT_API_URL"):
            check_api(os.environ["PREFECT_API_URL"])
        elif url := project_server():
            report_to(url, "the project's Prefect server (make server)")
        else:
            lock, url = serve_or_wait(prefect_home(), on_wait=waiting)
            if url:
                report_to(url, "the Prefect UI server (make ui)")
            else:
                stack.callback(lock.release)
                api = stack.enter_context(TemporaryAPI(prefect_home() / "temporary-api.log"))
                ui = f"http://127.0.0.1:{ui_port()}"
        # Deferred here and below: bad options fail fast, and the temporary API starts, before Prefect loads.
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        if api is not None and (settings.api.url or not settings.server.ephemeral.enabled):
            api.stop()
            api, ui = None, None
        warm_imports()
        url = api.wait_until_healthy() if api is not None else None
        raise_if_interrupted()  # a signal that came while the API started
        try:
            state = _in_flow_thread(interrupts, lambda: _with_settings(url, call_flow))
        finally:
            if api is not None:
                drain_prefect_workers()  # before the API stops
        base = ui or (settings.ui_url if settings.api.url else None)
        page = f"{base.rstrip('/')}/runs/flow-run/{state.state_details.flow_run_id}" if base else None
        if ui and page:
            page += f"  (open it with: {ui_command()})"
        return state, page


def _run_settings(api_url: str | None):
    """Prefect settings for a run started from the terminal.

    Flow-run heartbeats let a server notice runs whose process died unseen; a
    run started here is watched by the user's terminal (and on the temporary
    API, dies with it), so they only cost time: about 1 s per flow run, to join
    the heartbeat thread. Deployment runs started by a worker keep them.

    Args:
        api_url: the temporary API's address, when this process started one.
            It is also exported to the environment (for worker processes).
    """
    # Deferred: bad options fail fast, and the temporary API starts, before Prefect loads.
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    updates = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    if api_url:
        export_prefect_environment(api_url)
        updates[PREFECT_API_URL] = api_url
    return temporary_settings(updates)


def _with_settings(url: str | None, call):
    with _run_settings(url):
        return call()


def _in_flow_thread(interrupts: Interrupts, call):
    """Run `call` in a thread of its own while the main thread only waits, and return its result.

    In the main thread, Prefect's flow engine installs a SIGTERM handler that
    raises TerminationSignal wherever the flow happens to be; raised into its
    own code, such an exception once left a run waiting for ever. Off the main
    thread Prefect installs none, so signals reach `interrupts`, which asks the
    run to stop at its next safe point (tasks.interrupt).
    """
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the main thread, re-raised there
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="linreg-flow", daemon=True)
    with interrupts.flow_running():
        thread.start()
        while thread.is_alive():
            thread.join(0.1)  # short waits: the main thread handles signals between them
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
