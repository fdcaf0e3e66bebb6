"""The `linreg` command line: one module per subcommand, over one option layer.

- `run`, `sweep`: a flow on Prefect (`launch` picks the API, `signals` handles Ctrl-C
  and SIGTERM); `ui`: the Prefect UI over local runs; `history`, `compare`: the runs
  under a data root, without Prefect;
- `options`: the parsing helpers, the one error type (`OptionError`, exit status 2) and
  pydantic's errors named by option; `environment`: every variable set for Prefect.

The CLI lives beside the flows because the library stays free of Prefect. Top level
stays light: Prefect is imported only after the options are valid.
"""

import argparse
import sys

from flows.cli import compare, history, run, sweep, ui
from flows.cli.environment import export_prefect_environment
from flows.cli.options import attach_dash_values

# Each module has `register(commands)`, which adds its parser to argparse's subparsers
# with `set_defaults(handler=f)`, where `f(args) -> int` is the exit status.
SUBCOMMANDS = (run, ui, sweep, history, compare)


def build_parser() -> argparse.ArgumentParser:
    """`linreg`'s parser, with every subcommand."""
    parser = argparse.ArgumentParser(prog="linreg", description="Linear regression fitted eight ways, on Prefect.")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`linreg`'s entry point: the subcommand's exit status."""
    export_prefect_environment()  # before Prefect is first imported, by any subcommand
    args = build_parser().parse_args(attach_dash_values(sys.argv[1:] if argv is None else argv))
    return args.handler(args)
