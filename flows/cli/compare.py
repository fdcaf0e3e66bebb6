"""`linreg compare`: two runs under a data root, solver by solver; exit 1 on a regression
(never between runs with different models: they get no verdict).

No Prefect: it reads `runs/*/summary.json` through `linreg.results`. Top level stays
light, because `linreg run` imports every subcommand to build its parser: pandas is
imported inside the handler.
"""

import argparse

from flows.cli.options import OptionError, data_root, number_option, refuse, warnings_to_stderr

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

Runs with different models say so and how (e.g. `different model: fit_intercept
true -> false`): the intercept, the scaling the iterative solvers saw (none or
standard) and, for a user's table, the target, the features (names and order) and
the holdout (fraction and seed). Their rows are shown side by side with no
regression verdict: a change of model, not of code, moved them. Exit 0.

RUN_A and RUN_B are run ids (folders under DIR/runs), run folders, or `latest` and
`previous` (the run before the latest).

Exit status: 0 no regression (or different models), 1 a regression, 2 a bad option
or a run not found."""


def register(commands) -> None:
    """Add `compare` to `linreg`'s subcommands."""
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
    compare.set_defaults(handler=main)


def main(args) -> int:
    """`linreg compare RUN_A RUN_B`: print the change per solver; exit 1 on a regression."""
    try:
        root = data_root(args)
        limits = {"tolerance": number_option(args, "tolerance", 0.0, 1e-3),
                  "slowdown": number_option(args, "slowdown", 1.0, 1.5),
                  "min_seconds": number_option(args, "min_seconds", 0.0, 0.05)}
    except OptionError as exc:
        return refuse("compare", exc)
    warnings_to_stderr()
    # Deferred for start-up time: pandas, which `linreg run` (importing this parser) never needs.
    from linreg.report import comparison_text
    from linreg.results import RunNotFound, Thresholds, compare, load_run, resolve_run

    runs = []
    for name, reference in (("RUN_A", args.run_a), ("RUN_B", args.run_b)):
        try:
            folder = resolve_run(root, reference)
            runs.append(load_run(folder))
        except RunNotFound as exc:
            return refuse("compare", OptionError(f"{name}: {exc}"))
        except ValueError as exc:  # a damaged summary.json: pydantic names the field
            first = str(exc).splitlines()
            return refuse("compare", OptionError(f"{name}: damaged summary.json in {folder}: {' '.join(first[:3])}"))
    comparison = compare(*runs, Thresholds(**limits))
    print(comparison_text(comparison))
    return 1 if comparison.regressions else 0
