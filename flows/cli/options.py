"""What every subcommand shares: option parsing helpers, the one error type, and how it is reported.

A bad option is an `OptionError` whose message names the option; `refuse` prints it
as one line and gives exit status 2. Options that become a pydantic spec are handed
to pydantic as typed, so the CLI and a flow parameter are refused by the same rule
with the same message (`describe`, `describe_sweep`).

Top level stays light (pydantic and the library's limits only): `linreg run` imports
every subcommand to build its parser before Prefect loads.
"""

import argparse
import logging
import math
import re
import sys
from pathlib import Path

from pydantic import ValidationError

from linreg.specs import DECIMALS, DELIMITERS, MAX_NA_VALUES, quoted_choices


class OptionError(Exception):
    """A bad option: printed as one line naming it, exit status 2."""


def refuse(command: str, exc: Exception) -> int:
    """Print `linreg <command>: error: <exc>` on stderr; return exit status 2."""
    print(f"linreg {command}: error: {exc}", file=sys.stderr)
    return 2


def warnings_to_stderr() -> None:
    """Warnings (such as a skipped run folder) go to stderr, one line each."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# --- Values --------------------------------------------------------------------------------

def split_list(text: str | None) -> list[str] | None:
    """'a, b,,c' -> ['a', 'b', 'c']; None stays None."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def whole_number(text: str):
    """'1e3' -> 1000; anything else (not a number, not whole) as typed, for pydantic to name."""
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if math.isfinite(value) and value == int(value) else text


def integer_option(args, name: str, lo: int, hi: int) -> int | None:
    """Option `name` as an integer in [lo, hi], or None when not given.

    Raises:
        OptionError: not an integer, or out of range.
    """
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


def number_option(args, name: str, lo: float, default: float) -> float:
    """Option `name` as a finite number >= lo, or `default` when not given.

    Raises:
        OptionError: not a number, not finite, or below `lo`.
    """
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


def data_root(args) -> Path:
    """--output-dir as an existing folder (history and compare read it).

    Raises:
        OptionError: no such folder.
    """
    root = Path(args.output_dir)
    if not root.is_dir():
        raise OptionError(f"--output-dir: no folder {str(root)!r}")
    return root


# --- Your own data: the same options for `linreg run` and `linreg sweep` ------------------

GENERATED_OPTIONS = ("n", "weights", "bias", "noise")  # what draws generated data: no meaning with --data

# --delimiter as typed -> FileData.delimiter: each allowed value, and a tab by name or as \t.
CLI_DELIMITERS = {**{d: d for d in DELIMITERS}, "tab": "\t", "\\t": "\t"}
DELIMITER_CHOICES = quoted_choices(DELIMITERS, {"\t": "'tab'"})


def add_file_options(group) -> None:
    """--data and the options that go with it (`linreg run` and `linreg sweep` alike)."""
    group.add_argument("--data", metavar="PATH",
                       help="fit your own table: a .csv or .tsv file (or .gz, .bz2, .zst), a .parquet file or a "
                            "folder of parquet files")
    group.add_argument("--target", help="with --data: the column to predict")
    group.add_argument("--features", metavar="A,B",
                       help="with --data: predictor columns, comma-separated, in this order "
                            "(default: every column but the target); for a name with a comma or a space "
                            "at either end, use --feature")
    group.add_argument("--feature", action="append", metavar="NAME",
                       help="with --data: one predictor column, named exactly (commas and spaces kept); "
                            "repeat it for more, in order; not with --features")
    group.add_argument("--delimiter", metavar="CHAR",
                       help=f"with --data: a CSV's field separator, {DELIMITER_CHOICES} (tab may also be "
                            "written \\t); default: detected from the header line")
    group.add_argument("--decimal", metavar="CHAR",
                       help=f"with --data: a CSV's decimal mark, {quoted_choices(DECIMALS)} (default '.'); "
                            "',' needs a delimiter other than ','")
    group.add_argument("--na-values", metavar="A,B",
                       help="with --data: more tokens read as missing in a CSV, comma-separated, e.g. -,? "
                            "(spaces around each dropped; besides '', NA, NaN, null and the like); at most "
                            f"{MAX_NA_VALUES}")
    group.add_argument("--drop-missing", action="store_true",
                       help="with --data: drop rows with a missing or infinite value instead of refusing the file")
    group.add_argument("--holdout", metavar="FRACTION",
                       help="with --data: hold out this fraction of rows (seeded) from every fit and score on them")


# Options whose value may start with '-' (`--na-values -,?`, `--feature -x2`), which argparse
# would read as an option and refuse ("expected one argument"): `attach_dash_values` joins them.
DASH_VALUE_OPTIONS = ("--na-values", "--feature")
LOOKS_LIKE_AN_OPTION = re.compile(r"--?[A-Za-z]")  # -h, --data: left for argparse (write --feature=-x then)


def attach_dash_values(argv: list[str]) -> list[str]:
    """argv with `--na-values -,?` written `--na-values=-,?`, so argparse takes '-,?' as the value.

    Only after an option of DASH_VALUE_OPTIONS, and only a value that does not look like an option.
    """
    joined, i = [], 0
    while i < len(argv):
        if argv[i] in DASH_VALUE_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and not LOOKS_LIKE_AN_OPTION.match(argv[i + 1]):
            joined.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            joined.append(argv[i])
            i += 1
    return joined


def delimiter_option(text: str) -> str:
    """--delimiter as FileData's value: ',', ';', '\\t' or '|'; 'tab' and a typed \\t are a tab.

    Raises:
        OptionError: any other value.
    """
    if text not in CLI_DELIMITERS:
        raise OptionError(f"--delimiter: must be {DELIMITER_CHOICES} (default: detected from the header line), "
                          f"got {text!r}")
    return CLI_DELIMITERS[text]


def feature_names(args: argparse.Namespace) -> list[str] | None:
    """The predictors: --features split at commas (spaces dropped), or each --feature as typed; None: neither.

    Raises:
        OptionError: both were given.
    """
    if args.features is not None and args.feature is not None:
        raise OptionError("--features and --feature cannot be used together: --features A,B splits at commas, "
                          "--feature NAME names one column exactly (repeat it for more)")
    return args.feature if args.feature is not None else split_list(args.features)


def data_fields(args: argparse.Namespace, generated: tuple[str, ...] = GENERATED_OPTIONS) -> dict:
    """The `data` parameter from the options: a file's (with --data) or generated data's.

    Raises:
        OptionError: a generated-data option beside --data, or a file option without it.
    """
    file_only = {"target": args.target, "features": args.features, "feature": args.feature,
                 "delimiter": args.delimiter, "decimal": args.decimal, "na-values": args.na_values,
                 "holdout": args.holdout}
    if args.data is None:
        given = [f"--{k}" for k, v in file_only.items() if v is not None] + (["--drop-missing"] if args.drop_missing else [])
        if given:
            raise OptionError(f"{given[0]}: only with --data PATH (your own table)")
        data = {k: getattr(args, k) for k in generated if k != "weights" and getattr(args, k) is not None}
        if getattr(args, "weights", None) is not None:
            data["weights"] = split_list(args.weights)
        if getattr(args, "seed", None) is not None:
            data["seed"] = args.seed
        return data
    clash = [f"--{k}" for k in generated if getattr(args, k, None) is not None]
    if clash:
        raise OptionError(f"--data and {clash[0]} cannot be used together: {', '.join(clash)} "
                          f"describe{'s' if len(clash) == 1 else ''} generated data, and --data fits your own table")
    if args.target is None:
        raise OptionError("--target: required with --data (the column to predict)")
    data = {"source": "file", "path": str(Path(args.data).absolute()), "target": args.target,
            "drop_missing": args.drop_missing}
    features = feature_names(args)
    if features is not None:
        data["features"] = features
    if args.delimiter is not None:
        data["delimiter"] = delimiter_option(args.delimiter)
    if args.decimal is not None:
        data["decimal"] = args.decimal
    if args.na_values is not None:  # every token, an empty one too: FileData refuses it, naming --na-values
        data["na_values"] = [token.strip() for token in args.na_values.split(",")]
    if args.holdout is not None:
        data["holdout"] = args.holdout
    if getattr(args, "seed", None) is not None:
        data["seed"] = args.seed
    return data


def check_table(command: str, data, output_dir: Path, fit_intercept: bool = True) -> None:
    """A table's checks, all of them, before Prefect loads (`linreg run` and `linreg sweep` alike):
    the file is there and is CSV or parquet, the columns named exist and are numeric, no value is
    missing or infinite, no feature is constant, and the holdout leaves enough rows. A CSV is
    converted here, once (`linreg.storage.ingest_table`); the flow's own ingest then finds the
    conversion and reuses it. A parquet is read here and again by the flow (in place, never copied).

    Args:
        data: the spec's `FileData`.

    Raises:
        OptionError: "--data: <file>: <problem>"; nothing is written.
    """
    from linreg.storage import TableError, ingest_table, table_ref  # deferred: pyarrow only for --data

    print(f"linreg {command}: checking {data.path}", file=sys.stderr, flush=True)
    try:
        # The holdout is checked inside the ingest, before a conversion is published: a refused
        # command leaves nothing, and a conversion another run made or uses is never touched.
        table = ingest_table(data.path, data.target, data.features, output_dir, data.drop_missing,
                             **data.dialect_kwargs(),
                             accept=lambda table: table_ref(table, data.seed, data.holdout, fit_intercept))
    except TableError as exc:
        raise OptionError(f"--data: {exc}") from None
    if table.rows_dropped:
        print(f"linreg {command}: --drop-missing dropped {table.rows_dropped} of {table.rows + table.rows_dropped} "
              "rows for a missing or infinite value", file=sys.stderr, flush=True)


# --- pydantic's errors, as the option a user typed ------------------------------------------

# RunSpec location -> option
RUN_OPTIONS = {
    ("data", "n"): "--n",
    ("data", "weights"): "--weights",
    ("data", "bias"): "--bias",
    ("data", "noise"): "--noise",
    ("data", "seed"): "--seed",
    ("data", "path"): "--data",
    ("data", "target"): "--target",
    ("data", "features"): "--features",
    ("data", "delimiter"): "--delimiter",
    ("data", "decimal"): "--decimal",
    ("data", "na_values"): "--na-values",
    ("data", "drop_missing"): "--drop-missing",
    ("data", "holdout"): "--holdout",
    ("scale",): "--scale",
    ("cov",): "--cov",
    ("solvers",): "--solvers",
    ("defaults", "epochs"): "--epochs",
    ("defaults", "lr"): "--lr",
    ("defaults", "batch_size"): "--batch-size",
    ("device",): "--device",
    ("output_dir",): "--output-dir",
    ("runner",): "--runner",
    ("dask_address",): "--dask-address",
}

# SweepSpec field -> option
SWEEP_OPTIONS = {"n": "--n", "d": "--d", "seeds": "--seeds", "solvers": "--solvers", "devices": "--device",
                 "lr": "--lr", "epochs": "--epochs", "batch_size": "--batch-size", "noise": "--noise",
                 "bias": "--bias", "runner": "--runner", "dask_address": "--dask-address",
                 "output_dir": "--output-dir", "data": "--data", "scales": "--scale", "fit_intercept": "--no-intercept"}


# Errors whose message already says what was given (or needs no "got").
SAYS_WHAT_WAS_GIVEN = ("range", "finite", "solvers", "device", "output_dir", "dask_address", "features",
                       "delimiter", "decimal", "na_values")


def run_options(args: argparse.Namespace) -> dict:
    """RUN_OPTIONS as this command line named them: FileData.features is --feature when that was given."""
    if getattr(args, "feature", None) is None:
        return RUN_OPTIONS
    return {**RUN_OPTIONS, ("data", "features"): "--feature"}


def describe(exc: ValidationError, options: dict = RUN_OPTIONS) -> str:
    """A RunSpec's first error in one line: the option (`options` maps a location to it), then what is wrong."""
    error = exc.errors()[0]
    loc = tuple(str(part) for part in error["loc"])
    if loc[:1] == ("data",) and loc[1:2] in (("generated",), ("file",)):
        loc = loc[:1] + loc[2:]  # the union's branch: not an option
    option = next((opt for key, opt in options.items() if loc[: len(key)] == key), ".".join(loc))
    message = error["msg"]
    if error["type"] not in SAYS_WHAT_WAS_GIVEN:
        message += f", got {error['input']!r}"
    return f"{option}: {message}"


def describe_sweep(exc: ValidationError, options: dict = RUN_OPTIONS) -> str:
    """A SweepSpec's first error in one line: the option, then what is wrong (a file option named from `options`)."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    if loc[:1] == ["data"] and len(loc) > 1:  # a file option: as `linreg run` names it
        return describe(exc, options)
    # Errors of the whole model (no location) carry the field in their type.
    option = SWEEP_OPTIONS.get(loc[0] if loc else error["type"], "--n, --d, --seeds, --lr, --epochs")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] not in ("range", "finite", "solvers", "device", "output_dir", "dask_address", "grid") \
            and not error["type"].startswith(tuple(SWEEP_OPTIONS)):
        message += f", got {error['input']!r}"
    return f"{option}: {message}"
