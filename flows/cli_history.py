"""`linreg history` and `linreg compare`: the runs under a data root, side by side.

Neither needs Prefect: both read `runs/*/summary.json` through `linreg.results`.
This module's top level stays light, because `linreg run` imports it to build its
parser: pandas and matplotlib are imported inside the handlers.
"""

import argparse
import logging
import math
import sys
from pathlib import Path

from linreg.validation import MAX_D, MAX_N, MAX_SEED

COMPARE_RULES = """\
Compares run B (the newer) with run A, solver by solver: the change of the fitted
parameters, of the error against the truth, of the MSE, and of the seconds.

A solver regressed when, from A to B:
  - its status got worse (ok -> diverged -> failed);
  - its error grew by more than --tolerance (absolute). On the same data the error
    is the largest absolute error of bias and weights against the truth; on
    different data, where sampling noise alone moves that error, it is the
    distance to the closed form fitted on the same data;
  - its fit got slower: B's seconds exceed A's times --slowdown AND exceed them by
    more than --min-seconds. Fits of a few milliseconds vary by more than 1.5x
    between two runs of the same spec (thread scheduling, other work on the
    machine): that is noise, and the absolute floor keeps it from being flagged.
    Seconds are compared only at the same n, d and epochs, between two ok fits.

Runs on different data say so: parameters are compared only when the true
parameters are the same, MSE only on the same data, seconds only at the same n and d.

RUN_A and RUN_B are run ids (folders under DIR/runs), run folders, or `latest` and
`previous` (the run before the latest).

Exit status: 0 no regression, 1 a regression, 2 a bad option or a run not found."""


class OptionError(Exception):
    """A bad option: printed as one line naming it, exit status 2."""


def register(commands) -> None:
    """Add `history` and `compare` to `linreg`'s subcommands."""
    history = commands.add_parser(
        "history", help="every run under a data root, oldest first, a column per solver",
        description="Print one line per finished run under DIR/runs, oldest first, with each solver's seconds "
                    "and error against the truth; write DIR/history.csv (a row per run and solver) and "
                    "DIR/history.png. Damaged or unfinished run folders are skipped with a warning naming them. "
                    "Exit status: 0, 1 when no run matches, 2 for a bad option.",
    )
    history.add_argument("--output-dir", default="data", help="data root holding runs/ (default data)")
    history.add_argument("--solvers", help="comma-separated solver names (default: all)")
    history.add_argument("--last", help="only the last N runs (after the filters below)")
    history.add_argument("--n", help="only runs with this many rows")
    history.add_argument("--d", help="only runs with this many features")
    history.add_argument("--seed", help="only runs with this seed")
    history.set_defaults(handler=run_history)

    compare = commands.add_parser(
        "compare", help="compare two runs solver by solver; exit 1 on a regression",
        description=COMPARE_RULES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("run_a", metavar="RUN_A", help="the earlier run: id, folder, latest or previous")
    compare.add_argument("run_b", metavar="RUN_B", help="the later run: id, folder, latest or previous")
    compare.add_argument("--output-dir", default="data", help="data root holding runs/ (default data)")
    compare.add_argument("--tolerance", help="largest allowed growth of a solver's error, >= 0 (default 0.001)")
    compare.add_argument("--slowdown", help="factor of seconds that counts as slower, >= 1 (default 1.5)")
    compare.add_argument("--min-seconds", help="seconds a slowdown must also add, >= 0 (default 0.05)")
    compare.set_defaults(handler=run_compare)


def _integer(args, name: str, lo: int, hi: int) -> int | None:
    text = getattr(args, name)
    if text is None:
        return None
    option = f"--{name.replace('_', '-')}"
    try:
        value = int(text)
    except ValueError:
        raise OptionError(f"{option}: must be an integer in [{lo}, {hi}], got {text!r}") from None
    if not lo <= value <= hi:
        raise OptionError(f"{option}: must be in [{lo}, {hi}], got {value}")
    return value


def _number(args, name: str, lo: float, default: float) -> float:
    text = getattr(args, name)
    if text is None:
        return default
    option = f"--{name.replace('_', '-')}"
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"{option}: must be a number in [{lo}, inf), got {text!r}") from None
    if not (math.isfinite(value) and value >= lo):
        raise OptionError(f"{option}: must be in [{lo}, inf), got {text}")
    return value


def _data_root(args) -> Path:
    root = Path(args.output_dir)
    if not root.is_dir():
        raise OptionError(f"--output-dir: no folder {str(root)!r}")
    return root


def _warnings_to_stderr() -> None:
    """Skipped run folders are reported on stderr, one line each."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _fail(command: str, exc: Exception) -> int:
    print(f"linreg {command}: error: {exc}", file=sys.stderr)
    return 2


def run_history(args) -> int:
    """`linreg history`: print the table, write history.csv and history.png under the data root."""
    try:
        root = _data_root(args)
        filters = {
            "n": _integer(args, "n", 1, MAX_N), "d": _integer(args, "d", 1, MAX_D),
            "seed": _integer(args, "seed", 0, MAX_SEED), "last": _integer(args, "last", 1, 10**9),
        }
        solvers = None if args.solvers is None else [s.strip() for s in args.solvers.split(",") if s.strip()]
        if solvers is not None and not solvers:
            raise OptionError("--solvers: must name at least one solver")
    except OptionError as exc:
        return _fail("history", exc)
    _warnings_to_stderr()
    # Deferred for start-up time: pandas and matplotlib, which `linreg run` (importing this parser) never needs.
    from linreg.history import write_history
    from linreg.report import history_text
    from linreg.results import history_table, load_history
    from linreg.solvers.registry import SOLVERS
    from linreg.storage import Catalog

    frame = load_history(root, solvers=solvers, **filters)
    if solvers is not None:
        unknown = [s for s in solvers if s not in SOLVERS and s not in set(frame["solver"])]
        if unknown:
            return _fail("history", OptionError(f"--solvers: unknown solver(s): {', '.join(unknown)}; "
                                                f"known: {', '.join(SOLVERS)}"))
    catalog = Catalog(root)
    if frame.empty:
        print(f"linreg history: no finished run under {catalog.runs} matches", file=sys.stderr)
        return 1
    print(history_text(history_table(frame)))
    write_history(root, frame)
    print(f"\n{frame['run_id'].nunique()} runs; wrote {catalog.history_csv} and {catalog.history_png}")
    return 0


def run_compare(args) -> int:
    """`linreg compare RUN_A RUN_B`: print the change per solver; exit 1 on a regression."""
    try:
        root = _data_root(args)
        limits = {"tolerance": _number(args, "tolerance", 0.0, 1e-3), "slowdown": _number(args, "slowdown", 1.0, 1.5),
                  "min_seconds": _number(args, "min_seconds", 0.0, 0.05)}
    except OptionError as exc:
        return _fail("compare", exc)
    _warnings_to_stderr()
    # Deferred for start-up time: pandas, which `linreg run` (importing this parser) never needs.
    from linreg.report import comparison_text
    from linreg.results import RunNotFound, Thresholds, compare, load_run, resolve_run

    runs = []
    for name, reference in (("RUN_A", args.run_a), ("RUN_B", args.run_b)):
        try:
            folder = resolve_run(root, reference)
            runs.append(load_run(folder))
        except RunNotFound as exc:
            return _fail("compare", OptionError(f"{name}: {exc}"))
        except ValueError as exc:  # a damaged summary.json: pydantic names the field
            first = str(exc).splitlines()
            return _fail("compare", OptionError(f"{name}: damaged summary.json in {folder}: {' '.join(first[:3])}"))
    comparison = compare(*runs, Thresholds(**limits))
    print(comparison_text(comparison))
    return 1 if comparison.regressions else 0
