"""`linreg sweep`: build a SweepSpec from comma-separated options, run the linreg-sweep flow, print the crossover.

Registered through `flows.cli.SUBCOMMANDS`. Its top level imports nothing
heavy: Prefect loads only after the options are valid and the temporary API
has started.
"""

import argparse
import math
import signal
import sys

from pydantic import ValidationError

from flows import cli
from flows.local_api import APIUnreachable, TemporaryAPIError
from linreg.sweep import SweepSpec
from tasks.interrupt import STOP

# SweepSpec field -> the option a user typed
OPTIONS = {"n": "--n", "d": "--d", "seeds": "--seeds", "solvers": "--solvers", "devices": "--device",
           "lr": "--lr", "epochs": "--epochs", "batch_size": "--batch-size", "noise": "--noise", "bias": "--bias",
           "runner": "--runner", "dask_address": "--dask-address", "output_dir": "--output-dir",
           "data": "--data", "scales": "--scale"}
INTEGER_LISTS = ("n", "d", "seeds", "epochs")
SWEEP_GENERATED = ("n", "d", "seeds", "noise", "bias")  # what --data cannot be given with
LISTS = (*INTEGER_LISTS, "lr", "solvers", "devices", "scales")


def register(commands) -> None:
    """Add `sweep` to the CLI's subparsers."""
    sweep = commands.add_parser("sweep", help="fit a grid of sizes, solvers, devices and hyperparameters")
    grid = sweep.add_argument_group("grid (comma-separated values; each list is one axis)")
    grid.add_argument("--n", help="rows, e.g. 1e3,1e5,1e7 (default 1000)")
    grid.add_argument("--d", help="features, e.g. 1,10 (default 1)")
    grid.add_argument("--seeds", help="data seeds, e.g. 1,2,3: repeats give the spread (default 42)")
    grid.add_argument("--solvers", help="solver names (default: all)")
    grid.add_argument("--device", dest="devices", help="cpu, cuda or cuda:N, e.g. cpu,cuda (default cpu)")
    grid.add_argument("--lr", help="learning rates (default: each solver's own)")
    grid.add_argument("--epochs", help="epochs (default: each solver's own)")
    sweep.add_argument("--batch-size", help="minibatch size (default 50)")
    sweep.add_argument("--noise", help="noise standard deviation (default 0.1)")
    sweep.add_argument("--bias", help="true bias (default 1)")
    sweep.add_argument("--runner", help="threads (default), processes or dask")
    sweep.add_argument("--dask-address", help="tcp://host:port of a Dask scheduler (with --runner dask)")
    sweep.add_argument("--output-dir", help="data root: datasets/ and sweeps/<sweep-id>/ go here (default data)")
    sweep.add_argument("--scale", dest="scales", help="an axis: iterative cells on standardised data (standard) or "
                       "as given (none), e.g. none,standard; default auto: standard with --data, none without")
    own = sweep.add_argument_group("your own data (instead of generated data: leave out --n, --d, --seeds, "
                                   "--noise and --bias)")
    cli.add_file_options(own)
    own.add_argument("--seed", help="with --data: seed of the holdout split and the solvers' draws (default 42)")
    sweep.set_defaults(handler=main)


def _number(text: str, integer: bool):
    """'1e3' -> 1000 for integer axes (refused when not whole); floats as typed, for pydantic to judge."""
    if not integer:
        return text
    try:
        value = float(text)
    except ValueError:
        return text  # pydantic names it
    return int(value) if math.isfinite(value) and value == int(value) else text


def build_sweep_spec(args: argparse.Namespace) -> SweepSpec:
    """Validated SweepSpec from parsed options.

    Raises:
        cli.CliError: naming the option and what it allows.
    """
    fields = {}
    data = cli.data_fields(args, generated=SWEEP_GENERATED)
    if args.data is not None:
        fields["data"] = data
    for key in OPTIONS:
        value = getattr(args, key, None)
        if value is None or key == "data":
            continue
        if key in LISTS:
            value = [_number(part, key in INTEGER_LISTS) for part in cli._split(value)]
        fields[key] = value
    try:
        return SweepSpec(**fields)
    except ValidationError as exc:
        raise cli.CliError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    if loc[:1] == ["data"] and len(loc) > 1:  # a file option: as `linreg run` names it
        return cli.describe(exc)
    # Errors of the whole model (no location) carry the field in their type.
    option = OPTIONS.get(loc[0] if loc else error["type"], "--n, --d, --seeds, --lr, --epochs")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] not in ("range", "finite", "solvers", "device", "output_dir", "dask_address", "grid") \
            and not error["type"].startswith(tuple(OPTIONS)):
        message += f", got {error['input']!r}"
    return f"{option}: {message}"


def _run_sweep(spec: SweepSpec):
    """The sweep flow, on the API `linreg run` would use (flows.cli.run_on_prefect); returns (state, UI page)."""

    def warm_imports():
        import flows.sweep_flow  # noqa: F401  (imported while the API starts)

        if any(name.startswith("torch") for name in spec.solvers):
            import torch._dynamo  # noqa: F401  (what optim.SGD imports on first use)

    def call():
        from flows.sweep_flow import sweep_flow

        return sweep_flow(spec, return_state=True)

    return cli.run_on_prefect("sweep", warm_imports, call)


def main(args: argparse.Namespace) -> int:
    """`linreg sweep`: 0 when the sweep completed, 1 when a cell failed, 2 for a bad option, 130 when interrupted."""
    try:
        spec = build_sweep_spec(args)  # a device this machine lacks gives skipped cells, not an error
    except cli.CliError as exc:
        print(f"linreg sweep: error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, cli._interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, cli._interrupt)
    try:
        state, page = _run_sweep(spec)
        if STOP.is_set():
            raise KeyboardInterrupt(cli._signal_name)
    except (TemporaryAPIError, APIUnreachable) as exc:
        print(f"linreg sweep: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"linreg sweep: interrupted ({str(exc) or 'SIGINT'}); no partial files were kept", file=sys.stderr)
        return 130
    frame = state.result(raise_on_failure=False)
    if isinstance(frame, BaseException):
        print(f"linreg sweep: failed: {state.message or frame}", file=sys.stderr)
        return 1
    from linreg.sweep import crossover_table, frame_rows, markdown_table

    print()
    print(markdown_table(frame_rows(crossover_table(frame))))
    print(f"{state.type.value.lower()}: {state.message}")
    if page:
        print(f"in the UI:  {page}")
    return 0 if state.is_completed() else 1
