"""Every table a user has, read as pandas reads it: RFC 4180 quoting at any block boundary,
CSV dialects and compression, parquet folders whose files store a column differently,
booleans, and the names a header can hold."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_array_equal
from tables import refused, write

from linreg.storage import TableError, ingest_table, open_data, open_table, sha256_file, table_ref


def read(path, target="y", features=None, **kwargs):
    table = ingest_table(path, target, features, data_root=Path(path).parent / "root", **kwargs)
    x, y = open_table(table).arrays()
    return table, x, y


# ---------------------------------------------------------------------------
# RFC 4180: a quoted value may hold the delimiter, a quote and a line end, wherever a block ends


def notes_csv(path: Path, n: int, seed: int = 0) -> Path:
    """x,note,y with every third note quoted over two lines (and holding commas and quotes)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    lines = ["x,note,y"]
    for i in range(n):
        note = f'"line one, ""quoted""\nline two {i}"' if i % 3 == 0 else f"plain {i}"
        lines.append(f"{float(x[i])!r},{note},{float(2 * x[i] + 1)!r}")
    return write(path, "\n".join(lines) + "\n")


@pytest.mark.parametrize("block_bytes", [100, 131, 256, 4096])
def test_a_quoted_newline_at_any_block_boundary_reads_every_row_as_pandas_does(tmp_path, block_bytes):
    path = notes_csv(tmp_path / "t.csv", 300)
    table, x, y = read(path, features=["x"], block_bytes=block_bytes)
    expected = pd.read_csv(path)
    assert table.rows == len(expected) == 300 and table.source_sha256 == sha256_file(path)
    assert_array_equal(x[:, 0], expected["x"].to_numpy()) and assert_array_equal(y, expected["y"].to_numpy())


@pytest.mark.parametrize("block_bytes", [16, 24, 32, 64, 1 << 20])
def test_a_quoted_last_column_never_invents_a_row(tmp_path, block_bytes):
    # Its second line holds as many commas as the other columns: a reader that cuts blocks at any
    # line end parses both halves as rows (9 rows here, where there are 8).
    rows = ["a,y,note", '1,2,"first\n5,6,fake"', *(f"{i},{2 * i},plain" for i in range(2, 9))]
    path = write(tmp_path / "t.csv", "\n".join(rows) + "\n")
    table, x, y = read(path, features=["a"], block_bytes=block_bytes)
    assert table.rows == len(pd.read_csv(path)) == 8
    assert_array_equal(x[:, 0], [1, *range(2, 9)]) and assert_array_equal(y, [2, *range(4, 18, 2)])


def test_an_unclosed_quote_is_refused_naming_the_rows_before_it(tmp_path):
    path = write(tmp_path / "t.csv", "a,y\n1,2\n3,4\n5,\"6\n7,8\n" + "9,10\n" * 200)
    message = refused(path, block_bytes=256)
    assert message.startswith(f"{path}: not a readable CSV file after data row ")
    assert "an unclosed quote, or a record longer than the reader's block of 256 bytes" in message
    # Within one block, the rest of the file is one (text) value: its start is shown, with the likely cause.
    assert refused(path, block_bytes=1 << 20) == (
        f"{path}: the target 'y' is not numeric (string: '6\\n7,8\\n9,10\\n9,10\\n9,10\\n9,10\\n9,10\\n9,10\\n9,10...' at data "
        "row 3; a value over several lines: an unclosed quote?); choose a numeric column with --target "
        "(numeric columns: 'a')"
    )


# ---------------------------------------------------------------------------
# Dialects


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_the_delimiter_is_detected_from_the_header(tmp_path, delimiter):
    path = write(tmp_path / "t.csv", delimiter.join(["x1", "x2", "y"]) + "\n" +
                 "".join(delimiter.join(map(str, (i, i * i % 7, 3 * i))) + "\n" for i in range(10)))
    table, x, y = read(path)
    assert table.features == ("x1", "x2") and table.delimiter == delimiter
    assert_array_equal(x, [[i, i * i % 7] for i in range(10)]) and assert_array_equal(y, [3 * i for i in range(10)])


def test_a_tsv_and_a_forced_delimiter(tmp_path):
    tsv = write(tmp_path / "t.tsv", "a b\tc\ty\n1\t2\t3\n2\t5\t4\n3\t1\t8\n")  # 'a b' holds a space
    table, x, _ = read(tsv)
    assert table.features == ("a b", "c") and table.delimiter == "\t"
    # A header that splits both ways (a tie goes to the comma): the delimiter given decides.
    odd = write(tmp_path / "odd.csv", "a;b,y\n1;2,3\n2;3,5\n4;1,6\n")
    assert "column 'a;b' is not numeric (string: '1;2' at data row 1)" in refused(odd, root=tmp_path / "r1")
    table, x, y = read(odd, target="b,y", delimiter=";", decimal=",")
    assert table.features == ("a",) and table.delimiter == ";"
    assert_array_equal(x[:, 0], [1, 2, 4]) and assert_array_equal(y, [2.3, 3.5, 1.6])
    assert refused(odd, delimiter=":", root=tmp_path / "r2") == f"{odd}: delimiter ':' is not one of ',', ';', '\\t', '|'"


def test_a_decimal_comma_with_semicolons(tmp_path):
    path = write(tmp_path / "t.csv", "x;y\n1,5;2,25\n-3,0;4,5\n2,75;1,125\n")
    table, x, y = read(path, decimal=",")
    assert table.decimal == "," and table.delimiter == ";"
    assert_array_equal(x[:, 0], [1.5, -3.0, 2.75]) and assert_array_equal(y, [2.25, 4.5, 1.125])
    assert refused(path, decimal=",", delimiter=",", root=tmp_path / "r1") == f"{path}: decimal ',' is also the delimiter: choose another delimiter"
    # Read with a decimal point, '1,5' is text: the message names the column and the value.
    assert "column 'x' is not numeric (string: '1,5' at data row 1; a decimal comma? read with --decimal ,)" in (
        refused(path, root=tmp_path / "r2"))


def test_extra_missing_tokens_are_missing_and_can_be_dropped(tmp_path):
    path = write(tmp_path / "t.csv", "a,y\n1,2\n-,4\n3,6\n4,?\n5,10\n")
    assert "column 'a' is not numeric (string: '-' at data row 2; a mark for a missing value? read with " \
           "--na-values - (and --drop-missing))" in refused(path)
    assert refused(path, na_values=("-", "?")) == (
        f"{path}: missing or infinite values in 2 columns: 'a': 1 missing, first at data row 2; 'y': 1 missing, "
        "first at data row 4 (data rows count from 1 after the header); drop those rows with --drop-missing"
    )
    table, x, y = read(path, drop_missing=True, na_values=("-", "?"))
    assert (table.rows, table.rows_dropped, table.na_values) == (3, 2, ("-", "?"))
    assert_array_equal(x[:, 0], [1, 3, 5]) and assert_array_equal(y, [2, 6, 10])


def test_true_false_columns_are_one_and_zero_in_csv_and_parquet(tmp_path):
    path = write(tmp_path / "t.csv", "flag,a,y\ntrue,1,2\nFalse,2,3\nTRUE,3,5\nfalse,5,4\n")
    table, x, _ = read(path)
    assert table.dtypes["flag"] == "bool"
    assert_array_equal(x[:, 0], [1, 0, 1, 0])
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.table({"flag": [True, False, True, False], "a": [1, 2, 3, 5], "y": [2.0, 3, 5, 4]}), parquet)
    table, x, _ = read(parquet)
    assert table.dtypes["flag"] == "bool"
    assert_array_equal(x, [[1, 1], [0, 2], [1, 3], [0, 5]])
    late = write(tmp_path / "late.csv", "flag,y\n" + "true,1\nfalse,2\n" * 100 + "maybe,3\n")
    assert refused(late, block_bytes=128, root=tmp_path / "r1") == (
        f"{late}: column 'flag' is true/false in its first rows, then not: 'maybe' at data row 201"
    )


@pytest.mark.parametrize("suffix,codec", [(".csv.gz", "gzip"), (".csv.bz2", "bz2"), (".csv.zst", "zstd"),
                                          (".tsv.gz", "gzip")])
def test_compressed_files_are_read_and_hashed_as_stored(tmp_path, suffix, codec):
    delimiter = "\t" if suffix.startswith(".tsv") else ","
    text = delimiter.join(["a", "y"]) + "\n" + "".join(f"{i}{delimiter}{2 * i + 1}\n" for i in range(1000))
    path = tmp_path / f"t{suffix}"
    with pa.CompressedOutputStream(str(path), codec) as out:
        out.write(text.encode())
    table, x, y = read(path, block_bytes=1024)
    assert table.rows == 1000 and table.source_sha256 == sha256_file(path)  # the stored, compressed bytes
    assert_array_equal(x[:, 0], np.arange(1000)) and assert_array_equal(y, 2 * np.arange(1000) + 1)


def test_a_damaged_compressed_file_is_refused(tmp_path):
    path = write(tmp_path / "t.csv.gz", "a,y\n1,2\n")  # not gzip at all
    assert refused(path).startswith(f"{path}: cannot read it as gzip (")


# ---------------------------------------------------------------------------
# Parquet: one schema over a folder's files; missing values dropped from a file read in place


@pytest.mark.parametrize("first,second", [(pa.int32(), pa.int64()), (pa.int64(), pa.float64()),
                                          (pa.float32(), pa.decimal128(10, 2))])
def test_a_folder_whose_files_store_a_column_differently_fits(tmp_path, first, second):
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"a": pa.array([1, 2, 3], first), "y": [1.0, 2.0, 4.0]}), folder / "p0.parquet")
    pq.write_table(pa.table({"a": pa.array([4, 5, 7], second), "y": pa.array([5, 6, 9], pa.int64())}),
                   folder / "p1.parquet")
    table, x, y = read(folder)
    assert table.rows == 6 and table.dtypes["a"] == str(pa.unify_schemas(
        [pa.schema([("a", first)]), pa.schema([("a", second)])], promote_options="permissive").field("a").type)
    assert_array_equal(x[:, 0], [1, 2, 3, 4, 5, 7]) and assert_array_equal(y, [1, 2, 4, 5, 6, 9])
    ref = table_ref(table, seed=0)
    assert [len(c[1]) for c in open_data(ref, memory_budget=1).iter_chunks(2)] == [2, 1, 2, 1]


def test_a_parquet_file_with_missing_values_and_drop_missing_fits_the_rest(tmp_path):
    path = tmp_path / "t.parquet"
    a = [float(i) for i in range(60)]
    a[7] = None
    y = [2.0 * i + 1 for i in range(60)]
    y[30] = None
    pq.write_table(pa.table({"a": a, "y": y}), path)
    assert "missing or infinite values in 2 columns" in refused(path)
    root = tmp_path / "root"
    table = ingest_table(path, "y", data_root=root, drop_missing=True)
    assert (table.rows, table.rows_dropped, table.converted) == (58, 2, True)
    seen = []  # what a run's holdout check sees: the table as it will be read
    again = ingest_table(path, "y", data_root=root, drop_missing=True, accept=seen.append)  # the flow's, after the CLI's
    assert again == table == seen[0] and len(list((root / "datasets").iterdir())) == 1
    fresh = []
    assert ingest_table(path, "y", data_root=tmp_path / "fresh", drop_missing=True, accept=fresh.append) == fresh[0]
    assert fresh[0].converted and Path(fresh[0].path).parent == tmp_path / "fresh" / "datasets"
    source = open_data(table_ref(again, seed=0), part="all")
    x, y_read = source.arrays()
    keep = [i for i in range(60) if i not in (7, 30)]
    assert_array_equal(x[:, 0], keep) and assert_array_equal(y_read, [2.0 * i + 1 for i in keep])


# ---------------------------------------------------------------------------
# Names: quoted, any of them choosable, an empty or repeated header cell refused by position


def test_a_column_name_with_a_comma_or_spaces_can_be_chosen_and_is_quoted(tmp_path):
    path = write(tmp_path / "t.csv", '"income, usd", x2 ,y\n1,2,3\n2,3,5\n4,1,6\n')
    table, x, _ = read(path, features=["income, usd", " x2 "])
    assert table.features == ("income, usd", " x2 ")
    assert_array_equal(x, [[1, 2], [2, 3], [4, 1]])
    assert refused(path, features=["income"], root=tmp_path / "r1") == (
        f"{path}: unknown feature column 'income'; the columns are: 'income, usd', ' x2 ', 'y'"
    )


def test_an_empty_or_repeated_header_cell_is_refused_naming_its_position(tmp_path):
    pandas_index = write(tmp_path / "t.csv", ",a,y\n0,1,2\n1,2,3\n2,4,7\n")
    assert refused(pandas_index) == (
        f"{pandas_index}: column 1 has an empty name in the header; name it in the file, "
        "or choose the features by name (--feature NAME)"
    )
    assert read(pandas_index, features=["a"])[0].features == ("a",)
    twice = write(tmp_path / "u.csv", "a,b,a,y\n1,2,3,4\n2,3,5,5\n4,1,6,7\n")
    assert refused(twice, root=tmp_path / "r1") == (
        f"{twice}: duplicate column name 'a' (columns 1 and 3); rename one, or choose the features by name "
        "(--feature NAME)"
    )


def test_csv_reading_options_on_parquet_are_refused(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 4.0]}), path)
    assert refused(path, delimiter=";", na_values=("-",)) == (
        f"{path}: delimiter, na_values: only for a CSV file; this is parquet data"
    )


def test_a_refused_holdout_on_a_cleaned_parquet_leaves_nothing(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, None, 3.0, 4.0, 6.0], "y": [1.0, 2.0, 4.0, 3.0, 7.0]}), path)

    def refuse(table):
        raise TableError(table.source, "--holdout 0.9 leaves 0 of 4 rows")

    assert refused(path, drop_missing=True, accept=refuse) == f"{path}: --holdout 0.9 leaves 0 of 4 rows"
    assert not (tmp_path / "root").exists()
