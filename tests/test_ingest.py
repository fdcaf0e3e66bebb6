"""A user's own table: CSV and parquet ingest, its reader, and one clear line for every bad input."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from strd import load as load_strd
from strd import read as read_strd
from tables import leftovers, refused, write

from linreg.storage import (
    DEFAULT_MEMORY_BUDGET, DatasetError, TableDataset, TableError, TableSource, ingest_table, open_table, sha256_file,
)
from linreg.storage.ingest import convert, table as ingest

ROOT = Path(__file__).resolve().parents[1]
LONGLEY = ROOT / "data" / "examples" / "longley.csv"
LONGLEY_FEATURES = ["gnp_deflator", "gnp", "unemployed", "armed_forces", "population", "year"]


def rows_csv(path: Path, n: int, seed: int = 0, tail: str = "") -> Path:
    """A CSV of n rows of columns a, b, c, y with distinct floats, plus any `tail` lines."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n, 4))
    lines = ["a,b,c,y", *(",".join(repr(float(v)) for v in row) for row in values)]
    return write(path, "\n".join(lines) + "\n" + tail)






# ---------------------------------------------------------------------------
# The example dataset


def test_longley_example_holds_nists_decimal_strings():
    nist = read_strd("Longley")
    assert nist.columns == ("y", "x1", "x2", "x3", "x4", "x5", "x6")
    lines = LONGLEY.read_text().splitlines()
    assert lines[0] == ",".join([*LONGLEY_FEATURES, "employed"])
    assert [line.split(",") for line in lines[1:]] == [[*row[1:], row[0]] for row in nist.rows]


# ---------------------------------------------------------------------------
# CSV: converted once, streamed, values as pandas reads them


def test_csv_is_converted_to_float64_parquet_with_the_values_pandas_reads(tmp_path):
    table = ingest_table(LONGLEY, "employed", data_root=tmp_path)
    assert table.source == str(LONGLEY) and table.source_sha256 == sha256_file(LONGLEY)
    assert table.converted and Path(table.path).parent == tmp_path / "datasets"
    assert Path(table.path).name.startswith(f"csv-{table.source_sha256}-")
    assert (table.rows, table.rows_dropped, table.target) == (16, 0, "employed")
    assert table.features == tuple(LONGLEY_FEATURES)
    assert table.dtypes == {"gnp_deflator": "double", **{c: "int64" for c in LONGLEY_FEATURES[1:]}, "employed": "int64"}
    written = pq.read_table(table.path)
    assert written.column_names == [*LONGLEY_FEATURES, "employed"]
    assert all(f.type == pa.float64() for f in written.schema)

    x, y = open_table(table).arrays()
    frame = pd.read_csv(LONGLEY)
    assert x.dtype == y.dtype == np.float64 and x.shape == (16, 6)
    assert_array_equal(x, frame[LONGLEY_FEATURES].to_numpy(dtype=np.float64))
    assert_array_equal(y, frame["employed"].to_numpy(dtype=np.float64))


def test_features_keep_the_order_given(tmp_path):
    chosen = ["year", "gnp", "unemployed"]
    table = ingest_table(LONGLEY, "employed", chosen, data_root=tmp_path)
    source = open_table(table)
    assert table.features == tuple(chosen) and source.feature_names == chosen and source.target == "employed"
    assert_array_equal(source.arrays()[0], pd.read_csv(LONGLEY)[chosen].to_numpy(dtype=np.float64))
    assert pq.read_table(table.path).column_names == [*chosen, "employed"]
    assert list(table.dtypes) == [*chosen, "employed"]


def test_a_csv_is_converted_once_and_reused_by_content(tmp_path):
    root = tmp_path / "root"
    first = ingest_table(LONGLEY, "employed", data_root=root)
    before = os.stat(first.path)
    copy = write(tmp_path / "elsewhere.csv", LONGLEY.read_text())  # the same bytes under another name
    again, moved = ingest_table(LONGLEY, "employed", data_root=root), ingest_table(copy, "employed", data_root=root)
    after = os.stat(first.path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten
    assert again == first
    assert moved.path == first.path and moved.source == str(copy)
    assert leftovers(root) == [Path(first.path).name]


def test_the_same_file_seen_again_is_only_hashed(tmp_path, monkeypatch):
    root = tmp_path / "root"
    first = ingest_table(LONGLEY, "employed", data_root=root)

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed again")

    monkeypatch.setattr(ingest, "csv_batches", no_parse)
    assert ingest_table(LONGLEY, "employed", data_root=root) == first


@pytest.mark.parametrize("block_bytes", [128, 1000, 1 << 20])
def test_blocks_read_every_row_once_and_hash_every_byte(tmp_path, block_bytes):
    # A last line without its newline, and lines of most of a 128-byte block.
    path = rows_csv(tmp_path / "t.csv", 500, tail="1.25,2.5,3.75," + "0" * 100 + "5")
    table = ingest_table(path, "y", data_root=tmp_path / "root", block_bytes=block_bytes)
    x, y = open_table(table).arrays()
    expected = pd.read_csv(path)
    assert table.rows == len(expected) == 501 and table.source_sha256 == sha256_file(path)
    assert_array_equal(x, expected[["a", "b", "c"]].to_numpy()) and assert_array_equal(y, expected["y"].to_numpy())


def test_a_csv_with_carriage_returns_only_is_streamed(tmp_path):
    # No newline to cut pieces at: pyarrow's streaming reader reads it, lines ended by CR alone.
    path = tmp_path / "mac.csv"
    path.write_bytes(b"a,y\r1,2\r2,3.5\r4,4\r")
    table = ingest_table(path, "y", data_root=tmp_path / "root", block_bytes=64)
    x, y = open_table(table).arrays()
    assert x[:, 0].tolist() == [1.0, 2.0, 4.0] and y.tolist() == [2.0, 3.5, 4.0]
    assert table.source_sha256 == sha256_file(path)


def test_another_column_choice_gets_its_own_conversion(tmp_path):
    a = ingest_table(LONGLEY, "employed", data_root=tmp_path)
    b = ingest_table(LONGLEY, "employed", ["gnp", "year"], data_root=tmp_path)
    c = ingest_table(LONGLEY, "employed", data_root=tmp_path, drop_missing=True)
    assert len({a.path, b.path, c.path}) == 3 and a.source_sha256 == b.source_sha256 == c.source_sha256


def test_a_changed_csv_is_converted_again(tmp_path):
    path = write(tmp_path / "t.csv", "a,y\n1,2\n2,3\n4,4\n")
    first = ingest_table(path, "y", data_root=tmp_path / "root")
    write(path, "a,y\n1,2\n2,3\n4,5\n")
    second = ingest_table(path, "y", data_root=tmp_path / "root")
    assert second.source_sha256 != first.source_sha256 and second.path != first.path
    assert open_table(second).arrays()[1][-1] == 5.0


def test_a_damaged_conversion_is_written_again(tmp_path, caplog):
    table = ingest_table(LONGLEY, "employed", data_root=tmp_path)
    Path(table.path).write_bytes(Path(table.path).read_bytes()[:-30])
    again = ingest_table(LONGLEY, "employed", data_root=tmp_path)
    assert "rewriting damaged converted table" in caplog.text
    assert again == table and open_table(again).arrays()[1][0] == 60323.0


def test_integer_typed_first_block_with_decimals_later_is_read_and_typed_double(tmp_path):
    # pyarrow infers types from the first block only; the conversion must not fail on row 500's decimal.
    lines = ["a,y", *(f"{i},{2 * i}" for i in range(499)), "1.5,7"]
    path = write(tmp_path / "t.csv", "\n".join(lines) + "\n")
    table = ingest_table(path, "y", data_root=tmp_path / "root", block_bytes=256)
    assert table.dtypes == {"a": "double", "y": "int64"}
    assert open_table(table).arrays()[0][-1, 0] == 1.5


def test_a_csv_is_written_in_bounded_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "ROW_GROUP_BYTES", 40 * 4 * 8)  # 40 rows of 3 float64 features and y
    path = rows_csv(tmp_path / "t.csv", 150)
    table = ingest_table(path, "y", data_root=tmp_path / "root", block_bytes=512)
    meta = pq.ParquetFile(table.path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [40, 40, 40, 30]
    assert_array_equal(open_table(table).arrays()[0], pd.read_csv(path)[["a", "b", "c"]].to_numpy())


# ---------------------------------------------------------------------------
# Parquet: read in place


def test_a_numeric_parquet_is_read_in_place_with_its_dtypes(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({
        "k": pa.array([1, 2, 3, 5], pa.int32()), "w": pa.array([0.5, 1.5, -2.0, 4.0], pa.float32()),
        "y": pa.array([1.0, 2.0, 3.0, 4.5]), "label": ["a", "b", "c", "d"],
    }), path)
    root = tmp_path / "root"
    table = ingest_table(path, "y", ["w", "k"], data_root=root)
    assert table.path == table.source == str(path) and not table.converted
    assert table.source_sha256 == sha256_file(path)
    assert table.dtypes == {"w": "float", "k": "int32", "y": "double"}
    assert not (root / "datasets").exists()  # nothing copied
    x, y = open_table(table).arrays()
    frame = pd.read_parquet(path)
    assert_array_equal(x, frame[["w", "k"]].to_numpy(dtype=np.float64))
    assert_array_equal(y, frame["y"].to_numpy())


def test_a_parquet_folder_is_one_dataset_in_file_name_order(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"a": [3.0, 4.0], "y": [30.0, 41.0]}), folder / "part-1.parquet")
    pq.write_table(pa.table({"a": [1.0, 2.0, 2.5], "y": [10.0, 20.0, 26.0]}), folder / "part-0.parquet")
    write(folder / "_SUCCESS", "")
    pq.write_table(pa.table({"a": [9.0], "y": [9.0]}), folder / ".part-2.parquet.tmp.parquet")  # hidden: left out
    table = ingest_table(folder, "y", data_root=tmp_path / "root")
    assert (table.path, table.converted, table.rows) == (str(folder), False, 5)
    x, y = open_table(table).arrays()
    assert_array_equal(x[:, 0], [1.0, 2.0, 2.5, 3.0, 4.0]) and assert_array_equal(y, [10, 20, 26, 30, 41])
    pq.write_table(pa.table({"a": [3.0, 4.0], "y": [30.0, 42.0]}), folder / "part-1.parquet")
    assert ingest_table(folder, "y", data_root=tmp_path / "root").source_sha256 != table.source_sha256


def test_parquet_drop_missing_writes_a_cleaned_copy_and_leaves_the_source(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, None, 3.0, 4.0, 7.0], "y": [1.0, 2.0, float("nan"), 4.0, 6.0]}), path)
    before = sha256_file(path)
    table = ingest_table(path, "y", data_root=tmp_path / "root", drop_missing=True)
    assert (table.rows, table.rows_dropped, table.converted) == (3, 2, True)
    assert Path(table.path).name.startswith(f"parquet-{before}-") and sha256_file(path) == before
    x, y = open_table(table).arrays()
    assert_array_equal(x[:, 0], [1.0, 4.0, 7.0]) and assert_array_equal(y, [1.0, 4.0, 6.0])


def test_csv_drop_missing_says_how_many_and_keeps_the_rest(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,3\n,4,5\n3,inf,7\n4,5,\n5,7,1\n6,1,2\nNA,1,1\n")
    table = ingest_table(path, "y", data_root=tmp_path / "root", drop_missing=True)
    assert (table.rows, table.rows_dropped) == (3, 4)
    x, y = open_table(table).arrays()
    assert_array_equal(x, [[1, 2], [5, 7], [6, 1]]) and assert_array_equal(y, [3, 1, 2])


# ---------------------------------------------------------------------------
# The reader: in memory within the budget, else streamed by row group


@pytest.fixture
def grouped(tmp_path, monkeypatch):
    """A converted CSV of 150 rows in row groups of 40: (its table, the in-memory arrays)."""
    monkeypatch.setattr(convert, "ROW_GROUP_BYTES", 40 * 4 * 8)
    table = ingest_table(rows_csv(tmp_path / "t.csv", 150, seed=4), "y", data_root=tmp_path / "root")
    return table, open_table(table).arrays()


def test_over_the_budget_the_same_chunks_stream(grouped):
    table, (x, y) = grouped
    held, streamed = open_table(table), open_table(table, memory_budget=1000)
    assert isinstance(streamed, TableSource) and streamed.arrays() is None
    assert (streamed.n, streamed.d, streamed.seed, streamed.row_groups) == (150, 3, 0, 4)
    for (hx, hy), (sx, sy) in zip(held.iter_chunks(33), streamed.iter_chunks(33), strict=True):
        assert_array_equal(hx, sx) and assert_array_equal(hy, sy)
        assert sx.dtype == sy.dtype == np.float64 and sx.shape[1] == 3 and len(sx) <= 33
    assert_array_equal(np.concatenate([c[0] for c in streamed.iter_chunks(33)]), x)
    assert_array_equal(streamed.head(50)[0], x[:50]) and assert_array_equal(streamed.head(50)[1], y[:50])


def test_row_groups_are_visited_in_any_order(grouped):
    table, (x, y) = grouped
    streamed = open_table(table, memory_budget=1000, seed=7)
    groups = list(streamed.iter_row_groups([3, 0, 2, 1]))
    assert [len(gy) for _, gy in groups] == [30, 40, 40, 40] and streamed.seed == 7
    assert_array_equal(groups[0][0], x[120:]) and assert_array_equal(groups[1][1], y[:40])


def test_a_folder_streams_across_its_files(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"a": np.arange(10.0) + 10 * i, "y": np.arange(10.0) * i}), folder / f"p{i}.parquet",
                       row_group_size=4)
    source = open_table(ingest_table(folder, "y", data_root=tmp_path / "root"), memory_budget=100)
    assert source.arrays() is None and source.row_groups == 9
    assert_array_equal(np.concatenate([c[0][:, 0] for c in source.iter_chunks(7)]), np.arange(30.0))
    assert_array_equal(source.head(12)[0][:, 0], np.arange(12.0))
    assert_array_equal(next(source.iter_row_groups([8]))[0][:, 0], [28.0, 29.0])


def test_a_table_changed_after_ingest_is_refused(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 4.0]}), path)
    table = ingest_table(path, "y", data_root=tmp_path / "root")
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 5.0]}), path)
    with pytest.raises(TableError, match=r"t\.parquet: sha256 differs from the one ingested .*ingest it again"):
        open_table(table)


def test_a_table_reference_is_small_and_round_trips(tmp_path):
    table = ingest_table(LONGLEY, "employed", data_root=tmp_path)
    assert TableDataset.model_validate_json(table.model_dump_json()) == table
    assert hash(table) == hash(TableDataset.model_validate_json(table.model_dump_json()))


# ---------------------------------------------------------------------------
# Every bad input: one line naming the file and the column, row or count


def test_a_missing_file(tmp_path):
    assert refused(tmp_path / "nope.csv") == f"{tmp_path / 'nope.csv'}: no such file or folder"


def test_an_empty_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    write(folder / "notes.txt", "no parquet here")
    assert refused(folder) == f"{folder}: empty folder: no .parquet/.parq/.pq files in it"


def test_an_unknown_target(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,3\n")
    assert refused(path, "z") == f"{path}: unknown target column 'z'; the columns are: 'a', 'b', 'y'"


def test_unknown_features(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,3\n")
    assert refused(path, "y", ["a", "q", "r"]) == (
        f"{path}: unknown feature columns 'q', 'r'; the columns are: 'a', 'b', 'y'"
    )


def test_a_text_column(tmp_path):
    path = write(tmp_path / "t.csv", "a,name,b,y\n1,ann,2,3\n2,bob,3,5\n3,cy,5,1\n")
    assert refused(path) == (
        f"{path}: column 'name' is not numeric (string: 'ann' at data row 1); "
        "choose numeric features with --feature NAME (e.g. --feature a --feature b)"
    )


def test_a_text_target(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,low\n2,3,high\n3,5,low\n")
    assert refused(path) == (
        f"{path}: the target 'y' is not numeric (string: 'low' at data row 1); "
        "choose a numeric column with --target (numeric columns: 'a', 'b')"
    )


def test_a_text_value_after_the_first_block_leaves_no_partial_parquet(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "ROW_GROUP_BYTES", 20 * 4 * 8)  # row groups were written before the bad row
    path = rows_csv(tmp_path / "t.csv", 300, tail="0.5,0.25,n/a?,1.0\n")
    assert refused(path, block_bytes=1024) == (
        f"{path}: column 'c' is not numeric (text: 'n/a?' at data row 301); "
        "choose numeric features with --feature NAME (e.g. --feature a --feature b)"
    )


def test_a_text_column_in_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "note": ["x", "y", "z"], "y": [1.0, 2.0, 4.0]}), path)
    assert refused(path) == (
        f"{path}: column 'note' is not numeric (string); choose numeric features with --feature NAME "
        "(e.g. --feature a)"
    )


def test_missing_and_infinite_values_are_counted_per_column(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,3\n,4,5\n3,inf,7\n4,5,\n5,-inf,1\nNaN,1,2\n")
    assert refused(path) == (
        f"{path}: missing or infinite values in 3 columns: 'a': 2 missing, first at data row 2; "
        "'b': 2 infinite, first at data row 3; 'y': 1 missing, first at data row 4 "
        "(data rows count from 1 after the header); drop those rows with --drop-missing"
    )


def test_a_bad_value_in_the_last_row_leaves_no_partial_parquet(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "ROW_GROUP_BYTES", 20 * 4 * 8)
    path = rows_csv(tmp_path / "t.csv", 400, tail="0.5,,1.0,2.0\n")
    assert refused(path, block_bytes=1024) == (
        f"{path}: missing or infinite values in 1 column: 'b': 1 missing, first at data row 401 "
        "(data rows count from 1 after the header); drop those rows with --drop-missing"
    )


def test_a_conversion_that_fails_midway_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "ROW_GROUP_BYTES", 20 * 4 * 8)
    real, calls = pq.ParquetWriter.write_table, []

    def failing(self, table, *args, **kwargs):
        calls.append(table.num_rows)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", failing)
    root = tmp_path / "root"
    with pytest.raises(OSError, match="No space left on device"):
        ingest_table(rows_csv(tmp_path / "t.csv", 400), "y", data_root=root, block_bytes=1024)
    assert len(calls) == 3 and leftovers(root) == []


def test_missing_values_in_parquet_name_the_file_of_a_folder(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"a": [1.0, 2.0], "y": [1.0, 2.0]}), folder / "p0.parquet")
    pq.write_table(pa.table({"a": [1.0, None, float("nan")], "y": [1.0, 2.0, 3.0]}), folder / "p1.parquet")
    assert refused(folder) == (
        f"{folder}: missing or infinite values in 1 column: 'a': 2 missing, first at data row 2 of p1.parquet "
        "(data rows count from 1 in each file); drop those rows with --drop-missing"
    )


def test_folder_files_with_other_columns(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"a": [1.0, 2.0], "y": [1.0, 2.0]}), folder / "p0.parquet")
    pq.write_table(pa.table({"a": [1.0, 3.0], "b": [1.0, 2.0], "y": [1.0, 2.0]}), folder / "p1.parquet")
    assert refused(folder) == (
        f"{folder / 'p1.parquet'}: columns differ from {folder / 'p0.parquet'}'s: it adds 'b'; every file of a "
        "folder needs the same columns (or choose the features by name)"
    )
    assert ingest_table(folder, "y", ["a"], data_root=tmp_path / "root").rows == 4
    missing = tmp_path / "lacking"
    missing.mkdir()
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": [1.0, 5.0], "y": [1.0, 2.0]}), missing / "p0.parquet")
    pq.write_table(pa.table({"a": [1.0, 3.0], "y": [1.0, 2.0]}), missing / "p1.parquet")
    assert refused(missing, features=["a", "b"]) == (
        f"{missing / 'p1.parquet'}: columns differ from {missing / 'p0.parquet'}'s: it lacks 'b'; every file of a "
        "folder needs the same columns (or choose the features by name)"
    )


def test_duplicate_column_names(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,a,y\n1,2,3,4\n2,3,4,5\n3,5,1,0\n")
    assert refused(path) == (
        f"{path}: duplicate column name 'a' (columns 1 and 3); rename one, or choose the features by name (--feature NAME)"
    )
    assert ingest_table(path, "y", ["b"], data_root=tmp_path / "ok").features == ("b",)  # unambiguous without it


@pytest.mark.parametrize("name", ["intercept", "bias", "solver"])
def test_a_feature_named_as_a_reports_own_column(tmp_path, name):
    path = write(tmp_path / "t.csv", f"a,{name},y\n1,2,3\n2,5,4\n3,1,0\n")
    assert refused(path) == (
        f"{path}: feature column {name!r} has a name the reports give a column of their own "
        "('intercept', 'bias', 'solver'); rename it in the file, or leave it out of the features"
    )
    assert ingest_table(path, "y", ["a"], data_root=tmp_path / "ok").features == ("a",)
    assert list((tmp_path).glob("**/*.parquet")) == [next((tmp_path / "ok").glob("**/*.parquet"))]


def test_the_target_among_the_features(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,3\n")
    assert refused(path, "y", ["a", "y"]) == (
        f"{path}: the target 'y' is also listed among the features; leave it out"
    )


def test_a_feature_listed_twice(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,3\n")
    assert refused(path, "y", ["a", "b", "a"]) == f"{path}: features list 'a' more than once"


def test_an_empty_feature_list(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,3\n")
    assert refused(path, "y", []) == f"{path}: features is empty; name at least one of: 'a', 'b', 'y'"


def test_no_feature_left(tmp_path):
    path = write(tmp_path / "t.csv", "y\n1\n2\n")
    assert refused(path) == f"{path}: no feature columns: the only column is the target 'y'"


def test_fewer_rows_than_features_plus_one(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,3\n2,4,5\n")
    assert refused(path) == f"{path}: 2 data rows, for 2 features: a fit needs at least 3 (features + 1)"


def test_fewer_rows_after_dropping(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,3\n2,4,5\n3,,1\n")
    assert refused(path, drop_missing=True) == (
        f"{path}: 2 data rows left after dropping 1 with missing or infinite values, for 2 features: "
        "a fit needs at least 3 (features + 1)"
    )
    one = write(tmp_path / "u.csv", "a,y\n1,2\n,3\n")
    assert refused(one, drop_missing=True) == (
        f"{one}: 1 data row left after dropping 1 with missing or infinite values, for 1 feature: "
        "a fit needs at least 2 (features + 1)"
    )


def test_a_header_without_rows(tmp_path):
    path = write(tmp_path / "t.csv", "a,y\n")
    assert refused(path) == f"{path}: 0 data rows, for 1 feature: a fit needs at least 2 (features + 1)"


def test_a_constant_feature(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,c,y\n1,2,0.5,3\n2,2,0.5,5\n3,2,0.5,7\n4,2,0.5,1\n")
    assert refused(path) == (
        f"{path}: features 'b' (every row is 2), 'c' (every row is 0.5) are constant: no information beside "
        "the intercept; leave it out with --features"
    )
    one = write(tmp_path / "u.csv", "a,b,y\n1,2,3\n2,2,5\n3,2,7\n")
    assert refused(one) == (
        f"{one}: feature 'b' (every row is 2) is constant: no information beside the intercept; "
        "leave it out with --features"
    )


def test_not_a_csv_or_parquet_file(tmp_path):
    path = write(tmp_path / "notes.txt", "a,y\n1,2\n")
    assert refused(path) == (
        f"{path}: not a CSV or parquet file (suffix '.txt'); expected a .csv or .tsv file (or one compressed: "
        ".gz, .bz2, .zst), a .parquet file or a folder of .parquet files"
    )


def test_a_truncated_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 4.0]}), path)
    path.write_bytes(path.read_bytes()[:-20])
    assert refused(path) == (
        f"{path}: not a readable parquet file (Parquet magic bytes not found in footer. Either the file is "
        "corrupted or this is not a parquet file.)"
    )


def test_binary_garbage_named_csv(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(bytes(range(256)) * 8)
    assert refused(path) == f"{path}: not a text CSV file (a NUL byte at offset 0); is it a binary file named .csv?"


def test_a_csv_that_is_not_utf8(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("caf\u00e9,y\n1,2\n2,3\n3,5\n".encode("latin-1"))
    assert refused(path) == f"{path}: not a UTF-8 text CSV file (byte 0xe9 at offset 3); save it as UTF-8"


def test_an_empty_csv(tmp_path):
    path = write(tmp_path / "t.csv", "")
    assert refused(path) == f"{path}: empty file: no header row"


def test_a_ragged_csv(tmp_path):
    path = write(tmp_path / "t.csv", "a,y\n1,2\n3,4,5\n")
    assert refused(path) == (
        f"{path}: not a readable CSV file: line 3 has 3 fields where the header has 2 ('3,4,5'); "
        "read with delimiter comma"
    )
    later = write(tmp_path / "u.csv", "a,y\n" + "1,2\n" * 400 + "3,4,5\n")
    assert refused(later, block_bytes=256) == (
        f"{later}: not a readable CSV file: line 402 has 3 fields where the header has 2 ('3,4,5'); "
        "read with delimiter comma"
    )


def test_table_errors_are_dataset_errors_and_value_errors():
    assert issubclass(TableError, DatasetError) and issubclass(TableError, ValueError)


def test_a_damaged_page_of_a_conversion_is_caught_by_its_checksum(tmp_path):
    table = ingest_table(LONGLEY, "employed", data_root=tmp_path)
    payload = bytearray(Path(table.path).read_bytes())
    payload[len(payload) // 4] ^= 0xFF  # inside the first column's data page, not the footer
    Path(table.path).write_bytes(bytes(payload))
    with pytest.raises(TableError, match=r"\.parquet: not a readable parquet file \(.*(CRC|checksum)"):
        open_table(table).arrays()


def test_a_conversion_recording_another_table_is_refused(tmp_path):
    table = ingest_table(LONGLEY, "employed", data_root=tmp_path)
    other = ingest_table(LONGLEY, "employed", ["gnp", "year"], data_root=tmp_path)
    Path(other.path).replace(table.path)
    with pytest.raises(TableError, match=r"\.parquet: records another table than the one given: ingest the table again"):
        open_table(table)


@pytest.mark.parametrize("budget", [DEFAULT_MEMORY_BUDGET, 100], ids=["in memory", "streamed"])
def test_the_closed_form_reads_the_example_to_nists_certified_values(tmp_path, budget):
    # The reader is a DataSource: the reference fit takes it as it takes generated data.
    from linreg.solvers import SOLVERS

    source = open_table(ingest_table(LONGLEY, "employed", data_root=tmp_path), memory_budget=budget)
    assert (source.arrays() is None) == (budget == 100)
    info = SOLVERS["closed_form"]
    fit = info.fit(source, info.defaults)
    nist = load_strd("Longley")
    assert fit.status == "ok"
    # 7 of the >= 9 digits the reference promises on StRD (docs/accuracy.md): room for any BLAS.
    assert_allclose(fit.coef, nist.coef, rtol=1e-7)
    assert_allclose(fit.intercept, nist.intercept_value, rtol=1e-7)
