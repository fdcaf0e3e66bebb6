"""A CSV's dialect (--delimiter, --decimal, --na-values) and exact column names (--feature):
FileData's fields and their refusals, the command line that builds them, and the keywords
that reach `ingest_table` wherever a table is read (the CLI's check, the flows' ingest task).

The reader itself (how a dialect is parsed) is tested in test_ingest.py.
"""

from pathlib import Path

import pytest
from pydantic import ValidationError

import linreg.storage
from flows.cli import build_parser, main
from flows.cli.options import attach_dash_values
from flows.cli.run import build_run_spec
from flows.cli.sweep import build_sweep_spec
from linreg.specs import MAX_NA_VALUES, FileData
from linreg.storage import TableError

# Column names a comma-separated list cannot carry: a comma inside, a space at the start.
TABLE = 'y,"income, usd", x1,x2\n1,2,3,1\n2,3,1,4\n3,5,2,2\n4,4,5,3\n5,1,1,5\n6,2,4,1\n'


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "t.csv"
    path.write_text(TABLE)
    return path


def file_data(**fields) -> FileData:
    return FileData(path="t.csv", target="y", **fields)


def refusal(command: str, argv: list[str], out: Path, capsys) -> str:
    """What `linreg <command>` says when it refuses: exit 2, one error line (after the "checking" line of a
    table that got that far), nothing written."""
    status = main([command, *argv, "--output-dir", str(out)])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert status == 2, err
    assert lines[-1].startswith(f"linreg {command}: error: ") and "Traceback" not in err, err
    assert all(line.startswith(f"linreg {command}: checking ") for line in lines[:-1]), err
    assert not out.exists()
    return lines[-1].removeprefix(f"linreg {command}: error: ")


# --- FileData --------------------------------------------------------------------------------------

def test_file_data_reads_a_default_csv_unless_told_otherwise():
    data = file_data()
    assert (data.delimiter, data.decimal, data.na_values) == (None, ".", [])
    assert data.dialect_kwargs() == {}  # today's ingest_table takes no dialect keywords


def test_dialect_kwargs_carry_only_what_differs_from_the_default():
    assert file_data(delimiter=";", decimal=",", na_values=["-", "?"]).dialect_kwargs() == {
        "delimiter": ";", "decimal": ",", "na_values": ("-", "?")}
    assert file_data(delimiter="\t").dialect_kwargs() == {"delimiter": "\t"}
    assert file_data(decimal=",").dialect_kwargs() == {"decimal": ","}  # the delimiter left to be detected
    assert file_data(na_values=["n/a"]).dialect_kwargs() == {"na_values": ("n/a",)}


BAD_FILE_DATA = {
    "unknown delimiter": (dict(delimiter=":"), "delimiter",
                          "must be ',', ';', '\\t' or '|', or null to detect it from the header line; got ':'"),
    "two-character delimiter": (dict(delimiter=",;"), "delimiter", "got ',;'"),
    "unknown decimal": (dict(decimal=";"), "decimal", "must be '.' or ',', got ';'"),
    "comma both ways": (dict(delimiter=",", decimal=","), "decimal",
                        "',' cannot be both the decimal mark and the delimiter; with decimal ',' the delimiter "
                        "must be ';', tab or '|', or left to be detected"),
    "empty token": (dict(na_values=["-", ""]), "na_values", "each token must be non-empty and on one line, got ''"),
    "token with a newline": (dict(na_values=["n\na"]), "na_values", "got 'n\\na'"),
    "token ending in a newline": (dict(na_values=["NA\n"]), "na_values", "on one line"),
    "token with a carriage return": (dict(na_values=["NA\r"]), "na_values", "on one line"),
    "token is the delimiter": (dict(delimiter="|", na_values=["-", "|"]), "na_values",
                               "the token '|' is the delimiter; a token must differ from it"),
    "too many tokens": (dict(na_values=[f"t{i}" for i in range(MAX_NA_VALUES + 1)]), "na_values",
                        f"at most {MAX_NA_VALUES} tokens, got {MAX_NA_VALUES + 1}"),
}


@pytest.mark.parametrize("fields, field, message", BAD_FILE_DATA.values(), ids=BAD_FILE_DATA.keys())
def test_file_data_refuses_a_bad_dialect_naming_the_field_and_what_it_allows(fields, field, message):
    with pytest.raises(ValidationError) as refused:
        file_data(**fields)
    error = refused.value.errors()[0]
    assert error["loc"] == (field,) and message in error["msg"], error


def test_file_data_accepts_every_dialect_it_names():
    for delimiter in (None, ",", ";", "\t", "|"):
        assert file_data(delimiter=delimiter).delimiter == delimiter
    assert file_data(delimiter=";", decimal=",").decimal == ","
    assert file_data(delimiter=";", na_values=[",", "-"]).na_values == [",", "-"]  # "," is no delimiter here
    tokens = [f"t{i}" for i in range(MAX_NA_VALUES)]
    assert file_data(na_values=tokens).na_values == tokens


def test_file_data_quotes_the_column_names_it_refuses():
    with pytest.raises(ValidationError) as refused:
        file_data(features=["income, usd", " x1", "x2", " x1", "income, usd"])
    assert refused.value.errors()[0]["msg"] == "column(s) named twice: 'income, usd', ' x1'"
    with pytest.raises(ValidationError, match="the target 'y' is among the features"):
        file_data(features=["x2", "y"])
    assert file_data(features=["x1", " x1"]).features == ["x1", " x1"]  # a leading space makes another name


# --- the command line: refusals --------------------------------------------------------------------

BAD_OPTIONS = {
    "unknown delimiter": (["--delimiter", ":"],
                          "--delimiter: must be ',', ';', 'tab' or '|' (default: detected from the header line), "
                          "got ':'"),
    "delimiter spelled out": (["--delimiter", "semicolon"], "--delimiter: must be ',', ';', 'tab' or '|'"),
    "unknown decimal": (["--decimal", ";"], "--decimal: must be '.' or ',', got ';'"),
    "comma both ways": (["--delimiter", ",", "--decimal", ","],
                        "--decimal: ',' cannot be both the decimal mark and the delimiter; with decimal ',' the "
                        "delimiter must be ';', tab or '|', or left to be detected"),
    "empty na token": (["--na-values", "-,,?"], "--na-values: each token must be non-empty and on one line, got ''"),
    "no na token": (["--na-values", ""], "--na-values: each token must be non-empty"),
    "na token is the delimiter": (["--delimiter", ";", "--na-values", "-,;"],
                                  "--na-values: the token ';' is the delimiter; a token must differ from it"),
    "too many na tokens": (["--na-values", ",".join(f"t{i}" for i in range(MAX_NA_VALUES + 1))],
                           f"--na-values: at most {MAX_NA_VALUES} tokens, got {MAX_NA_VALUES + 1}"),
    "features and feature": (["--features", "x2", "--feature", " x1"],
                             "--features and --feature cannot be used together: --features A,B splits at commas, "
                             "--feature NAME names one column exactly (repeat it for more)"),
    "feature named twice": (["--feature", "income, usd", "--feature", "x2", "--feature", "income, usd"],
                            "--feature: column(s) named twice: 'income, usd'"),
    "feature is the target": (["--feature", "x2", "--feature", "y"],
                              "--feature: the target 'y' is among the features; list only predictors"),
    "features named twice": (["--features", "x2,x2"], "--features: column(s) named twice: 'x2'"),
}


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("argv, message", BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys())
def test_a_bad_dialect_or_feature_option_is_one_line_naming_it_exit_2(table, tmp_path, capsys, command, argv,
                                                                      message):
    said = refusal(command, ["--data", str(table), "--target", "y", *argv], tmp_path / "out", capsys)
    assert said.startswith(message), said


FILE_ONLY = {
    "--delimiter": ["--delimiter", "tab"],
    "--decimal": ["--decimal", ","],
    "--na-values": ["--na-values", "-,?"],
    "--feature": ["--feature", "x1"],
}


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("option, argv", FILE_ONLY.items(), ids=FILE_ONLY.keys())
def test_the_dialect_and_feature_options_are_only_for_a_table(tmp_path, capsys, command, option, argv):
    said = refusal(command, argv, tmp_path / "out", capsys)
    assert said == f"{option}: only with --data PATH (your own table)"


# --- the command line: what it builds --------------------------------------------------------------

def built(command: str, *argv: str):
    """The spec `linreg <command> argv` builds (its table checked by today's reader, with no dialect)."""
    args = build_parser().parse_args(attach_dash_values([command, *argv]))
    return (build_run_spec if command == "run" else build_sweep_spec)(args)


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_feature_names_one_column_exactly_and_keeps_the_order(table, tmp_path, command):
    spec = built(command, "--data", str(table), "--target", "y", "--feature", "x2", "--feature", "income, usd",
                 "--feature", " x1", "--output-dir", str(tmp_path / "out"))
    assert spec.data.features == ["x2", "income, usd", " x1"]


# Semicolons between fields, decimal commas, and '-' and '?' for a missing value.
EUROPEAN = "y;a;b\n1,5;2;-\n2,5;3,25;1\n3;5;2\n4;4;5\n5;1;1\n6;2;?\n7;3;3\n"


def test_the_dialect_options_let_the_check_read_the_table(tmp_path, capsys):
    path = tmp_path / "eu.csv"
    path.write_text(EUROPEAN)
    out = tmp_path / "out"
    base = ["--data", str(path), "--target", "y", "--delimiter", ";", "--decimal", ",", "--drop-missing"]
    spec = built("run", *base, "--na-values", "-,?", "--output-dir", str(out))
    assert (spec.data.delimiter, spec.data.decimal, spec.data.na_values) == (";", ",", ["-", "?"])
    assert "--drop-missing dropped 2 of 7 rows" in capsys.readouterr().err
    # Without the tokens, '-' is no number: the same table is refused, naming the column.
    said = refusal("run", [*base], tmp_path / "refused", capsys)
    assert said.startswith(f"--data: {path}") and "'b'" in said, said


def test_features_still_splits_at_commas_and_drops_spaces():
    from flows.cli.options import data_fields

    args = build_parser().parse_args(["run", "--data", "t.csv", "--target", "y", "--features", " x2 , income, usd"])
    assert FileData(**data_fields(args)).features == ["x2", "income", "usd"]  # why --feature exists


@pytest.mark.parametrize("typed, delimiter", [(",", ","), (";", ";"), ("|", "|"), ("tab", "\t"), ("\\t", "\t"),
                                              ("\t", "\t")])
def test_delimiter_spellings(typed, delimiter):
    from flows.cli.options import data_fields

    args = build_parser().parse_args(["run", "--data", "t.csv", "--target", "y", "--delimiter", typed])
    assert FileData(**data_fields(args)).delimiter == delimiter


def test_na_values_are_split_at_commas_and_reach_file_data_in_order():
    from flows.cli.options import data_fields

    args = build_parser().parse_args(attach_dash_values(
        ["run", "--data", "t.csv", "--target", "y", "--decimal", ",", "--delimiter", ";", "--na-values", "-, ?,n/a"]))
    data = FileData(**data_fields(args))
    assert (data.delimiter, data.decimal, data.na_values) == (";", ",", ["-", "?", "n/a"])


@pytest.mark.parametrize("argv, joined", [
    (["run", "--na-values", "-,?"], ["run", "--na-values=-,?"]),
    (["run", "--na-values", "-"], ["run", "--na-values=-"]),
    (["run", "--na-values", "--", "--data", "x"], ["run", "--na-values=--", "--data", "x"]),
    (["run", "--feature", "-1"], ["run", "--feature=-1"]),
    (["run", "--na-values", "--data", "x"], ["run", "--na-values", "--data", "x"]),  # a forgotten value stays one
    (["run", "--feature", "-x"], ["run", "--feature", "-x"]),  # looks like an option: write --feature=-x
    (["run", "--weights", "-1,2"], ["run", "--weights", "-1,2"]),  # only the options that need it
    (["run", "--na-values"], ["run", "--na-values"]),
])
def test_a_value_that_starts_with_a_dash_is_attached_to_its_option(argv, joined):
    assert attach_dash_values(argv) == joined


def test_na_values_starting_with_a_dash_reach_the_spec_through_main(table, tmp_path, monkeypatch, capsys):
    seen = recorder(monkeypatch, linreg.storage)
    assert main(["run", "--data", str(table), "--target", "y", "--na-values", "-,?",
                 "--output-dir", str(tmp_path / "out")]) == 2
    assert seen[0]["na_values"] == ("-", "?")
    assert f"--data: {table}: recorded" in capsys.readouterr().err


# --- every call of ingest_table gets the dialect ---------------------------------------------------

def recorder(monkeypatch, module) -> list[dict]:
    """Replace `module.ingest_table` by one that records its keywords and refuses the table."""
    seen = []

    def ingest_table(path, target, features=None, data_root=Path("data"), drop_missing=False, **kwargs):
        seen.append({"features": features, **kwargs})
        raise TableError(path, "recorded")

    monkeypatch.setattr(module, "ingest_table", ingest_table)
    return seen


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_the_cli_check_passes_the_dialect_to_ingest_table(table, tmp_path, monkeypatch, capsys, command):
    seen = recorder(monkeypatch, linreg.storage)
    said = refusal(command, ["--data", str(table), "--target", "y", "--delimiter", "tab", "--decimal", ",",
                             "--na-values", "n/a,?", "--feature", "income, usd"], tmp_path / "out", capsys)
    assert said == f"--data: {table}: recorded"
    (kwargs,) = seen
    assert kwargs.pop("accept") is not None  # the holdout's check, as before
    assert kwargs == {"features": ["income, usd"], "delimiter": "\t", "decimal": ",", "na_values": ("n/a", "?")}


def test_the_cli_check_passes_no_dialect_keyword_by_default(table, tmp_path, monkeypatch, capsys):
    seen = recorder(monkeypatch, linreg.storage)
    refusal("run", ["--data", str(table), "--target", "y"], tmp_path / "out", capsys)
    assert set(seen[0]) == {"features", "accept"}


def test_the_flows_ingest_task_passes_the_dialect_to_ingest_table(tmp_path, monkeypatch):
    """`prepare_table` is the ingest of both flows (linreg_flow and sweep_flow)."""
    import flows.linreg_flow
    import flows.sweep_flow
    import tasks.dataset

    assert flows.linreg_flow.prepare_table is tasks.dataset.prepare_table is flows.sweep_flow.prepare_table
    seen = recorder(monkeypatch, tasks.dataset)
    data = file_data(delimiter="|", decimal=",", na_values=["-"], features=[" x1"])
    with pytest.raises(TableError, match="recorded"):
        tasks.dataset.prepare_table.fn(data, tmp_path)
    seen[0].pop("accept")
    assert seen == [{"features": [" x1"], "delimiter": "|", "decimal": ",", "na_values": ("-",)}]
