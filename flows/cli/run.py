"""`linreg run`: validate options into a RunSpec, run the flow, print the results.

Options are handed to pydantic as typed, so the CLI and a flow parameter are
refused by the same rule with the same message.
"""

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from flows.api.choose import APIUnreachable
from flows.api.process import TemporaryAPIError
from flows.cli.launch import run_on_prefect
from flows.cli.options import (
    OptionError, add_file_options, check_table, data_fields, describe, refuse, run_options, split_list,
)
from flows.cli.signals import Interrupts, interrupted
from linreg.devices import DeviceError, planned_device
from linreg.solvers.registry import SOLVERS
from linreg.specs import RunSpec


def register(commands) -> None:
    """Add `run` to `linreg`'s subcommands."""
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
    solve.add_argument("--cov", help="the reference's standard errors: nonrobust (default), or "
                                     "heteroscedasticity-robust HC0, HC1, HC2 or HC3 (statsmodels' cov_type)")
    run.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    run.add_argument("--output-dir", help="data root: datasets/ and runs/ go here (default data)")
    run.add_argument("--runner", help="task runner for training: threads (default), processes or dask")
    run.add_argument("--dask-address", help="tcp://host:port of an existing Dask scheduler (with --runner dask)")
    run.set_defaults(handler=main)


def build_run_spec(args: argparse.Namespace) -> RunSpec:
    """Turn parsed options into a validated RunSpec.

    Raises:
        OptionError: naming the option and what it allows.
    """
    fields: dict = {"data": data_fields(args)}
    if args.solvers is not None:
        fields["solvers"] = split_list(args.solvers)
    defaults = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size}
    fields["defaults"] = {k: v for k, v in defaults.items() if v is not None}
    if args.no_intercept:
        fields["fit_intercept"] = False
    for key in ("device", "runner", "dask_address", "scale", "cov"):
        if getattr(args, key) is not None:
            fields[key] = getattr(args, key)
    # Absolute: a run that reports to a server names a folder its workers (the history
    # deployment's, say) can find whatever folder they run in.
    fields["output_dir"] = Path(args.output_dir or "data").absolute()
    try:
        spec = RunSpec(**fields)
    except ValidationError as exc:
        raise OptionError(describe(exc, run_options(args))) from None
    if spec.from_file:
        check_table("run", spec.data, spec.output_dir, spec.fit_intercept)
    # The flow's first check, made here before Prefect loads. Only a named CUDA device can be
    # refused, whatever the data's size; checking "auto" would import torch (1 s) before the
    # temporary API starts.
    if spec.device.startswith("cuda"):
        try:
            planned_device(spec.device, fits_run_here=spec.runner != "dask", elements=0)
        except DeviceError as exc:
            raise OptionError(f"--device: {exc}") from None
    return spec


def main(args: argparse.Namespace) -> int:
    """`linreg run`: 0 when the flow completed, 1 when it failed, 2 for a bad option, 130 when interrupted."""
    try:
        spec = build_run_spec(args)
    except OptionError as exc:
        return refuse("run", exc)
    try:
        return _run(spec)
    except KeyboardInterrupt as exc:
        return interrupted("run", exc)


def _run(spec: RunSpec) -> int:
    interrupts = Interrupts("run").install_for_flow()
    try:
        state, page = run_on_prefect("run", interrupts, lambda: _warm_imports(spec), lambda: _call_flow(spec))
    except (TemporaryAPIError, APIUnreachable) as exc:
        print(f"linreg run: {exc}", file=sys.stderr)
        return 1
    interrupts.raise_if_stopped()  # the flow stopped at a safe point, and says so
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


def _call_flow(spec: RunSpec):
    from flows.linreg_flow import linreg_flow  # deferred: Prefect loads after the options are valid

    return linreg_flow(spec, return_state=True)
