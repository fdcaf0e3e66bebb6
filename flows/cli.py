"""`linreg run`: validate options into a RunSpec, run the flow, print the results.

Options are handed to pydantic as typed, so the CLI and a flow parameter are
refused by the same rule with the same message. The CLI lives beside the flows
because the library stays free of Prefect.
"""

import argparse
import importlib
import os
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from pydantic import ValidationError

from flows.local_api import (
    APIUnreachable,
    TemporaryAPI,
    TemporaryAPIError,
    check_api,
    drain_prefect_workers,
    REPO,
    project_server,
    serve_or_wait,
    ui_port,
)
from linreg.devices import DeviceError, planned_device
from linreg.solvers.registry import SOLVERS
from linreg.specs import RunSpec
from tasks.interrupt import STOP, raise_if_interrupted

# pydantic location -> the option a user typed
OPTIONS = {
    ("data", "n"): "--n",
    ("data", "weights"): "--weights",
    ("data", "bias"): "--bias",
    ("data", "noise"): "--noise",
    ("data", "seed"): "--seed",
    ("data", "path"): "--data",
    ("data", "target"): "--target",
    ("data", "features"): "--features",
    ("data", "drop_missing"): "--drop-missing",
    ("data", "holdout"): "--holdout",
    ("scale",): "--scale",
    ("solvers",): "--solvers",
    ("defaults", "epochs"): "--epochs",
    ("defaults", "lr"): "--lr",
    ("defaults", "batch_size"): "--batch-size",
    ("device",): "--device",
    ("output_dir",): "--output-dir",
    ("runner",): "--runner",
    ("dask_address",): "--dask-address",
}


class CliError(Exception):
    """A bad option: printed as one line, exit status 2."""


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


# Modules that add further subcommands. Each has `register(commands)`, which adds its
# parsers to argparse's subparsers object with `set_defaults(handler=f)`, where
# `f(args) -> int` is the exit status. Their top level imports nothing heavy.
SUBCOMMANDS: tuple[str, ...] = ("flows.cli_ui", "flows.cli_sweep", "flows.cli_history")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linreg", description="Linear regression fitted eight ways, on Prefect.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the pipeline flow once, locally")
    data = run.add_argument_group("data")
    data.add_argument("--n", help="rows (default 1000)")
    data.add_argument("--weights", help="true weights, comma-separated, e.g. 2,-1,0.5 (default 2)")
    data.add_argument("--bias", help="true bias (default 1)")
    data.add_argument("--noise", help="noise standard deviation (default 0.1)")
    data.add_argument("--seed", help="random seed, 0..2**32-1 (default 42); with --data: of the holdout split "
                                     "and the solvers' draws")
    own = run.add_argument_group("your own data (instead of generated data)")
    add_file_options(own)
    solve = run.add_argument_group("solvers")
    solve.add_argument("--solvers", help="comma-separated solver names (default: all)")
    solve.add_argument("--epochs", help="epochs for every iterative solver (default: each solver's own)")
    solve.add_argument("--lr", help="learning rate for every iterative solver (default: each solver's own)")
    solve.add_argument("--batch-size", help="minibatch size; above n it is clipped to n (default 50)")
    solve.add_argument("--no-intercept", action="store_true",
                       help="fit y = x·w without a bias, with every solver (R² is then uncentred)")
    solve.add_argument("--scale", help="iterative solvers on standardised data (standard) or as given (none); "
                                       "default auto: standard with --data, none for generated data")
    run.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    run.add_argument("--output-dir", help="data root: datasets/ and runs/ go here (default data)")
    run.add_argument("--runner", help="task runner for training: threads (default), processes or dask")
    run.add_argument("--dask-address", help="tcp://host:port of an existing Dask scheduler (with --runner dask)")
    for module in SUBCOMMANDS:
        importlib.import_module(module).register(commands)
    return parser


GENERATED_OPTIONS = ("n", "weights", "bias", "noise")  # what draws generated data: no meaning with --data


def add_file_options(group) -> None:
    """--data and the options that go with it (`linreg run` and `linreg sweep` alike)."""
    group.add_argument("--data", metavar="PATH",
                       help="fit your own table: a .csv file, a .parquet file or a folder of parquet files")
    group.add_argument("--target", help="with --data: the column to predict")
    group.add_argument("--features", help="with --data: predictor columns, comma-separated, in this order "
                                          "(default: every column but the target)")
    group.add_argument("--drop-missing", action="store_true",
                       help="with --data: drop rows with a missing or infinite value instead of refusing the file")
    group.add_argument("--holdout", metavar="FRACTION",
                       help="with --data: hold out this fraction of rows (seeded) from every fit and score on them")


def data_fields(args: argparse.Namespace, generated: tuple[str, ...] = GENERATED_OPTIONS) -> dict:
    """The `data` parameter from the options: a file's (with --data) or generated data's.

    Raises:
        CliError: a generated-data option beside --data, or a file option without it.
    """
    file_only = {"target": args.target, "features": args.features, "holdout": args.holdout}
    if args.data is None:
        given = [f"--{k}" for k, v in file_only.items() if v is not None] + (["--drop-missing"] if args.drop_missing else [])
        if given:
            raise CliError(f"{given[0]}: only with --data PATH (your own table)")
        data = {k: getattr(args, k) for k in generated if k != "weights" and getattr(args, k) is not None}
        if getattr(args, "weights", None) is not None:
            data["weights"] = _split(args.weights)
        if getattr(args, "seed", None) is not None:
            data["seed"] = args.seed
        return data
    clash = [f"--{k}" for k in generated if getattr(args, k, None) is not None]
    if clash:
        raise CliError(f"--data and {clash[0]} cannot be used together: {', '.join(clash)} describe{'s' if len(clash) == 1 else ''} generated "
                       "data, and --data fits your own table")
    if args.target is None:
        raise CliError("--target: required with --data (the column to predict)")
    data = {"source": "file", "path": str(Path(args.data).absolute()), "target": args.target,
            "drop_missing": args.drop_missing}
    if args.features is not None:
        data["features"] = _split(args.features)
    if args.holdout is not None:
        data["holdout"] = args.holdout
    if getattr(args, "seed", None) is not None:
        data["seed"] = args.seed
    return data


def build_run_spec(args: argparse.Namespace) -> RunSpec:
    """Turn parsed options into a validated RunSpec.

    Raises:
        CliError: naming the option and what it allows.
    """
    fields: dict = {"data": data_fields(args)}
    if args.solvers is not None:
        fields["solvers"] = _split(args.solvers)
    defaults = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size}
    fields["defaults"] = {k: v for k, v in defaults.items() if v is not None}
    if args.no_intercept:
        fields["fit_intercept"] = False
    for key in ("device", "runner", "dask_address", "scale"):
        if getattr(args, key) is not None:
            fields[key] = getattr(args, key)
    # Absolute: a run that reports to a server names a folder its workers (the history
    # deployment's, say) can find whatever folder they run in.
    fields["output_dir"] = Path(args.output_dir or "data").absolute()
    try:
        spec = RunSpec(**fields)
    except ValidationError as exc:
        raise CliError(describe(exc)) from None
    if spec.from_file:
        check_table(spec)
    # The flow's first check, made here before Prefect loads. Only a named CUDA device can be
    # refused; checking "auto" would import torch (1 s) before the temporary API starts.
    if spec.device.startswith("cuda"):
        try:
            planned_device(spec.device, fits_run_here=spec.runner != "dask")
        except DeviceError as exc:
            raise CliError(f"--device: {exc}") from None
    return spec


def check_table(spec: RunSpec) -> None:
    """The table's checks, all of them, before Prefect loads: the file is there and is CSV or
    parquet, the columns named exist and are numeric, no value is missing or infinite, no
    feature is constant, and the holdout leaves enough rows. A CSV is converted here, once
    (`linreg.storage.ingest_table`); the flow's own ingest then finds the conversion and
    reuses it. A parquet is read here and again by the flow (in place, never copied).

    Raises:
        CliError: "--data: <file>: <problem>"; nothing is written.
    """
    from linreg.storage import TableError, ingest_table, table_ref  # deferred: pyarrow only for --data

    data = spec.data
    print(f"linreg run: checking {data.path}", file=sys.stderr, flush=True)
    try:
        table = ingest_table(data.path, data.target, data.features, spec.output_dir, data.drop_missing)
        table_ref(table, data.seed, data.holdout, spec.fit_intercept)
    except TableError as exc:
        raise CliError(f"--data: {exc}") from None
    if table.rows_dropped:
        print(f"linreg run: --drop-missing dropped {table.rows_dropped} of {table.rows + table.rows_dropped} rows "
              "for a missing or infinite value", file=sys.stderr, flush=True)


def describe(exc: ValidationError) -> str:
    """One line for the first error: the option, then what is wrong."""
    error = exc.errors()[0]
    loc = tuple(str(part) for part in error["loc"])
    if loc[:1] == ("data",) and loc[1:2] in (("generated",), ("file",)):
        loc = loc[:1] + loc[2:]  # the union's branch: not an option
    option = next((opt for key, opt in OPTIONS.items() if loc[: len(key)] == key), ".".join(loc))
    message = error["msg"]
    if error["type"] not in ("range", "finite", "solvers", "device", "output_dir", "dask_address", "features"):
        message += f", got {error['input']!r}"
    return f"{option}: {message}"


# Seconds an interrupted run gets to unwind: record its state, stop the temporary API.
GRACE_SECONDS = 30.0


_deadline: threading.Timer | None = None
_flow_started = False
_signal_name = "SIGINT"


def _interrupt(signum, frame):
    """First signal during the flow: ask it to stop at its next safe point (tasks.interrupt).
    Before the flow starts, or on a second signal: raise KeyboardInterrupt at once."""
    global _deadline, _signal_name
    first = not STOP.is_set()
    STOP.set()
    if _deadline is None:
        _deadline = threading.Timer(GRACE_SECONDS, _exit_now)
        _deadline.daemon = True
        _deadline.start()
    _signal_name = signal.Signals(signum).name
    if not (first and _flow_started):
        raise KeyboardInterrupt(_signal_name)


def _exit_now() -> None:
    """The last resort after a signal, should unwinding wedge (a second signal raises
    KeyboardInterrupt into arbitrary Prefect code, which once left a run waiting for
    ever). Files are written atomically, and the temporary API dies with this process
    (PR_SET_PDEATHSIG), so exiting is safe."""
    print(f"linreg run: still stopping {GRACE_SECONDS:g} s after the signal; exiting now", file=sys.stderr, flush=True)
    os._exit(130)



def _run_settings(api_url: str | None):
    """Prefect settings for a run started from the terminal.

    Flow-run heartbeats let a server notice runs whose process died unseen; a
    run started here is watched by the user's terminal (and on the temporary
    API, dies with it), so they only cost time: about 1 s per flow run, to join
    the heartbeat thread. Deployment runs started by a worker keep them.

    Args:
        api_url: the temporary API's address, when this process started one.
            It is also exported to the environment, so that worker processes
            (`--runner processes`, a Dask LocalCluster) report to this API
            instead of each starting a temporary API of their own.
    """
    # Deferred here and below: bad options fail fast, and the temporary API starts, before Prefect loads.
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    updates = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url
        updates[PREFECT_API_URL] = api_url
    return temporary_settings(updates)


def _warm_imports(spec: RunSpec) -> None:
    """Import what the run will need while the temporary API starts in its own process.

    Deferred to here so that bad options fail fast, before Prefect loads.
    torch._dynamo is what `optim.SGD` imports on first use (about 1 s): paid
    here, it does not stall the training threads.
    """
    import flows.linreg_flow  # noqa: F401

    if any(SOLVERS[name].uses_torch for name in spec.solvers):
        import torch._dynamo  # noqa: F401

        for name in spec.solvers:
            SOLVERS[name].fit  # noqa: B018  (imports the solver's module)


def _prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()


def run_on_prefect(command: str, warm_imports, call_flow):
    """Run a flow on the right Prefect API; return its final state and the UI address that shows it (or None).

    Where the run reports, first match wins:
    1. `PREFECT_API_URL`, when the user set it (it must answer within 10 s);
    2. the project's own server (`make server`), when it runs;
    3. `linreg ui` (`make ui`), when it serves this PREFECT_HOME's database;
    4. a temporary API on this PREFECT_HOME, started here and stopped at the end,
       while this process holds the home's lock (flows.local_api.HomeLock), so
       that two processes never write one SQLite file at once. `linreg ui` shows
       the run afterwards.

    The temporary API is launched first thing, before Prefect is even imported
    (1 s), so that its start-up (about 5 s) overlaps `warm_imports()`. A URL set
    in a Prefect profile is only known once Prefect is imported: then the launch
    is undone.

    Args:
        command: the subcommand, for messages ("run", "sweep").
        warm_imports: imports the flow needs, done while the API starts.
        call_flow: runs the flow with `return_state=True`, in a thread of its own.

    Raises:
        APIUnreachable: the configured API does not answer.
        TemporaryAPIError: the temporary API did not start (it is stopped).
    """
    def report_to(url: str, why: str) -> None:
        os.environ["PREFECT_API_URL"] = url  # read by Prefect when it is imported, below
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
            lock, url = serve_or_wait(_prefect_home(), on_wait=waiting)
            if url:
                report_to(url, "the Prefect UI server (make ui)")
            else:
                stack.callback(lock.release)
                api = stack.enter_context(TemporaryAPI(_prefect_home() / "temporary-api.log"))
                ui = f"http://127.0.0.1:{ui_port()}"
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        if api is not None and (settings.api.url or not settings.server.ephemeral.enabled):
            api.stop()
            api, ui = None, None
        warm_imports()
        url = api.wait_until_healthy() if api is not None else None
        raise_if_interrupted()  # a signal that came while the API started
        try:
            state = _in_flow_thread(lambda: _with_settings(url, call_flow))
        finally:
            if api is not None:
                drain_prefect_workers()  # before the API stops
        base = ui or (settings.ui_url if settings.api.url else None)
        page = f"{base.rstrip('/')}/runs/flow-run/{state.state_details.flow_run_id}" if base else None
        if ui and page:
            page += f"  (open it with: {_ui_command()})"
        return state, page


def _ui_command() -> str:
    """What serves this PREFECT_HOME's runs: `make ui` for the project's `.prefect/`, else `linreg ui`."""
    return "make ui" if _prefect_home().resolve() == (REPO / ".prefect").resolve() else "linreg ui"


def _run_flow(spec: RunSpec):
    """`linreg run`'s flow, on the API `run_on_prefect` chooses; returns (state, UI page or None)."""

    def call():
        from flows.linreg_flow import linreg_flow

        return linreg_flow(spec, return_state=True)

    return run_on_prefect("run", lambda: _warm_imports(spec), call)


def _with_settings(url: str | None, call):
    with _run_settings(url):
        return call()


def _in_flow_thread(call):
    """Run `call` in a thread of its own while the main thread only waits, and return its result.

    In the main thread, Prefect's flow engine installs a SIGTERM handler that
    raises TerminationSignal wherever the flow happens to be; raised into its
    own code, such an exception once left a run waiting for ever. Off the main
    thread Prefect installs none, so signals reach `_interrupt`, which asks the
    run to stop at its next safe point (tasks.interrupt).
    """
    global _flow_started
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the main thread, re-raised there
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="linreg-flow", daemon=True)
    _flow_started = True
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.1)  # short waits: the main thread handles signals between them
    finally:
        _flow_started = False
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def run(spec: RunSpec) -> int:
    # SIGTERM unwinds like Ctrl-C: every pending write finishes or removes its temporary file,
    # running fits stop at their next epoch, and the temporary API is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when started with SIGINT ignored
        signal.signal(signal.SIGINT, _interrupt)
    try:
        state, page = _run_flow(spec)
    except (TemporaryAPIError, APIUnreachable) as exc:
        print(f"linreg run: {exc}", file=sys.stderr)
        return 1
    if STOP.is_set():
        raise KeyboardInterrupt(_signal_name)  # the flow stopped at a safe point, and says so
    from linreg.report import console_table  # deferred: start-up time (pyarrow, scipy)
    from linreg.storage import run_dir

    summary = state.result(raise_on_failure=False)
    if isinstance(summary, BaseException):
        print(f"linreg: run failed: {state.message or summary}", file=sys.stderr)
        if page:
            print(f"in the UI:  {page}", file=sys.stderr)
        return 1
    print()
    print(console_table(summary))
    print()
    print(f"{state.type.value.lower()}: {state.message}")
    print(f"run folder: {run_dir(spec.output_dir, summary.run_id).resolve()}")
    if page:
        print(f"in the UI:  {page}")
    return 0 if state.is_completed() else 1


def main(argv: list[str] | None = None) -> int:
    # Read by Prefect when it is first imported, which happens below: the library's
    # warnings reach the UI, and those logged outside a flow stay on the console.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "linreg")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is not None:
        return args.handler(args)
    try:
        spec = build_run_spec(args)
    except CliError as exc:
        print(f"linreg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    try:
        return run(spec)
    except KeyboardInterrupt as exc:
        print(f"linreg {args.command}: interrupted ({str(exc) or 'SIGINT'}); no partial files were kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
