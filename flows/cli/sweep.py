"""`linreg sweep`: build a SweepSpec from comma-separated options, run the linreg-sweep flow, print the crossover.

Its top level imports nothing heavy: Prefect loads only after the options are valid
and the temporary API has started.
"""

import argparse
import sys

from pydantic import ValidationError

from flows.api.choose import APIUnreachable
from flows.api.process import TemporaryAPIError
from flows.cli.launch import run_on_prefect
from flows.cli.options import (
    SWEEP_OPTIONS,
    OptionError,
    add_file_options,
    check_table,
    data_fields,
    describe_sweep,
    refuse,
    run_options,
    split_list,
    whole_number,
)
from flows.cli.signals import Interrupts, interrupted
from linreg.solvers import SOLVERS
from linreg.sweep import GENERATED_AXES, SweepSpec

INTEGER_LISTS = ("n", "d", "seeds", "epochs")
LISTS = (*INTEGER_LISTS, "lr", "solvers", "devices", "scales")


def register(commands) -> None:
    """Add `sweep` to `linreg`'s subcommands."""
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
    sweep.add_argument("--no-intercept", action="store_true",
                       help="fit y = x·w without a bias, in every cell (the closed form included)")
    sweep.add_argument("--scale", dest="scales", help="an axis: iterative cells on standardised data (standard) or "
                       "as given (none), e.g. none,standard; default auto: standard with --data, none without")
    own = sweep.add_argument_group("your own data (instead of generated data: leave out --n, --d, --seeds, "
                                   "--noise and --bias)")
    add_file_options(own)
    own.add_argument("--seed", help="with --data: seed of the holdout split and the solvers' draws (default 42)")
    sweep.set_defaults(handler=main)


def build_sweep_spec(args: argparse.Namespace) -> SweepSpec:
    """Validated SweepSpec from parsed options; '1e3' is 1000 on the integer axes.

    Raises:
        OptionError: naming the option and what it allows.
    """
    fields = {}
    if args.data is None and args.seed is not None:
        raise OptionError("--seed: only with --data PATH (your own table); generated data's seeds are an axis: --seeds")
    data = data_fields(args, generated=GENERATED_AXES)  # what --data cannot be given with
    if args.data is not None:
        fields["data"] = data
    if args.no_intercept:
        fields["fit_intercept"] = False
    for key in SWEEP_OPTIONS:
        value = getattr(args, key, None)
        if value is None or key == "data":
            continue
        if key in LISTS:
            value = [whole_number(part) if key in INTEGER_LISTS else part for part in split_list(value)]
        fields[key] = value
    try:
        spec = SweepSpec(**fields)
    except ValidationError as exc:
        raise OptionError(describe_sweep(exc, run_options(args))) from None
    if spec.data is not None:
        check_table("sweep", spec.data, spec.output_dir, spec.fit_intercept)
    return spec


def main(args: argparse.Namespace) -> int:
    """`linreg sweep`: 0 when the sweep completed, 1 when a cell failed, 2 for a bad option, 130 when interrupted."""
    try:
        spec = build_sweep_spec(args)  # a device this machine lacks gives skipped cells, not an error
    except OptionError as exc:
        return refuse("sweep", exc)
    interrupts = Interrupts("sweep").install_for_flow()
    try:
        state, page = run_on_prefect("sweep", interrupts, lambda: _warm_imports(spec), lambda: _call_flow(spec))
        interrupts.raise_if_stopped()
    except (TemporaryAPIError, APIUnreachable) as exc:
        print(f"linreg sweep: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        return interrupted("sweep", exc)
    frame = state.result(raise_on_failure=False)
    if isinstance(frame, BaseException):
        print(f"linreg sweep: failed: {state.message or frame}", file=sys.stderr)
        return 1
    from linreg.report import frame_rows, sweep_table  # deferred: start-up time (scipy)
    from linreg.sweep import crossover_table

    print()
    print(sweep_table(frame_rows(crossover_table(frame))))
    print(f"{state.type.value.lower()}: {state.message}")
    if page:
        print(f"in the UI:  {page}")
    return 0 if state.is_completed() else 1


def _warm_imports(spec: SweepSpec) -> None:
    """Deferred imports, made while the temporary API starts: bad options fail fast, before Prefect loads."""
    import flows.sweep_flow  # noqa: F401

    if any(SOLVERS[name].uses_torch for name in spec.solvers):
        import torch._dynamo  # noqa: F401  (what optim.SGD imports on first use)


def _call_flow(spec: SweepSpec):
    from flows.sweep_flow import sweep_flow  # deferred: Prefect loads after the options are valid

    return sweep_flow(spec, return_state=True)
