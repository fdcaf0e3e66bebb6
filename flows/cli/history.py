"""`linreg history`: every finished run under a data root, a column per solver.

No Prefect: it reads `runs/*/summary.json` through `linreg.results`. Top level stays
light, because `linreg run` imports every subcommand to build its parser: pandas and
matplotlib are imported inside the handler.
"""

import sys

from flows.cli.options import OptionError, data_root, integer_option, refuse, split_list, warnings_to_stderr
from linreg.validation import MAX_D, MAX_N, MAX_SEED


def register(commands) -> None:
    """Add `history` to `linreg`'s subcommands."""
    history = commands.add_parser(
        "history", help="every run under a data root, runs on the same data together, a column per solver",
        description="Print one line per finished run under DIR/runs (runs on the same data, by sha256, together; "
                    "oldest first within each), with each solver's seconds "
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
    history.set_defaults(handler=main)


def main(args) -> int:
    """`linreg history`: print the table, write history.csv and history.png under the data root."""
    try:
        root = data_root(args)
        filters = {
            "n": integer_option(args, "n", 1, MAX_N), "d": integer_option(args, "d", 1, MAX_D),
            "seed": integer_option(args, "seed", 0, MAX_SEED), "last": integer_option(args, "last", 1, 10**9),
        }
        solvers = split_list(args.solvers)
        if solvers is not None and not solvers:
            raise OptionError("--solvers: must name at least one solver")
    except OptionError as exc:
        return refuse("history", exc)
    warnings_to_stderr()
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
            return refuse("history", OptionError(f"--solvers: unknown solver(s): {', '.join(unknown)}; "
                                                 f"known: {', '.join(SOLVERS)}"))
    catalog = Catalog(root)
    if frame.empty:
        print(f"linreg history: no finished run under {catalog.runs} matches", file=sys.stderr)
        return 1
    print(history_text(history_table(frame)))
    write_history(root, frame)
    print(f"\n{frame['run_id'].nunique()} runs; wrote {catalog.history_csv} and {catalog.history_png}")
    return 0
