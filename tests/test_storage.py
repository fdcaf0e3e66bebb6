"""Parquet persistence: layout, atomic writes, and every way a file is refused."""

import json
import os
from datetime import datetime, timedelta, timezone
from uuid import UUID

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_array_equal

from linreg.data import iter_dataset_chunks, make_dataset
from linreg.specs import DataSpec
from linreg.storage import (
    Catalog,
    DatasetError,
    DatasetRef,
    ParquetSource,
    atomic_path,
    dataset_path,
    ensure_dataset,
    open_dataset,
    read_dataset,
    run_dir,
    sha256_file,
    spec_digest,
    write_dataset,
    write_dataset_chunks,
)
from linreg.storage.catalog import RUN_FILES, is_sweep_id, new_run_id, new_sweep_id, run_started, run_time

SPEC = DataSpec(n=64, weights=[2.0, -1.0], seed=3)


@pytest.fixture
def written(tmp_path):
    data = make_dataset(SPEC)
    return data, write_dataset(data, tmp_path / "d.parquet")


def test_round_trip_is_exact_and_layout_is_documented(written):
    data, ref = written
    table = pq.read_table(ref.path)
    assert table.column_names == ["x0", "x1", "y"]
    assert all(f.type == pa.float64() for f in table.schema)
    meta = {k.decode(): json.loads(v) for k, v in table.schema.metadata.items() if k.startswith(b"linreg.")}
    assert meta == {
        "linreg.format_version": 1, "linreg.n": 64, "linreg.d": 2, "linreg.weights": [2.0, -1.0],
        "linreg.bias": 1.0, "linreg.noise": 0.1, "linreg.seed": 3,
    }
    back = read_dataset(ref)
    assert_array_equal(back.x, data.x)
    assert_array_equal(back.y, data.y)
    assert back.spec == SPEC
    assert ref.sha256 == sha256_file(ref.path)


def test_float_columns_are_written_without_dictionary_or_compression(written):
    column = pq.ParquetFile(written[1].path).metadata.row_group(0).column(0)
    assert column.compression == "UNCOMPRESSED"
    assert "PLAIN_DICTIONARY" not in column.encodings and "RLE_DICTIONARY" not in column.encodings


def test_sha256_mismatch_is_refused_naming_the_file(written):
    _, ref = written
    bad = ref.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(DatasetError, match=r"d\.parquet: sha256 .* does not match"):
        read_dataset(bad)


def test_truncated_file_is_refused(written):
    _, ref = written
    payload = open(ref.path, "rb").read()
    open(ref.path, "wb").write(payload[: len(payload) // 2])
    with pytest.raises(DatasetError, match="not a readable parquet file"):
        read_dataset(ref.model_copy(update={"sha256": sha256_file(ref.path)}))


def _rewrite(path, table) -> DatasetRef:
    pq.write_table(table, path)
    return DatasetRef(path=str(path), sha256=sha256_file(path), spec=SPEC)


def test_wrong_schema_is_refused(written):
    _, ref = written
    table = pq.read_table(ref.path)
    renamed = table.rename_columns(["a", "b", "y"]).replace_schema_metadata(table.schema.metadata)
    with pytest.raises(DatasetError, match=r"columns \['a', 'b', 'y'\], expected \['x0', 'x1', 'y'\]"):
        read_dataset(_rewrite(ref.path, renamed))


def test_missing_metadata_is_refused(written):
    _, ref = written
    with pytest.raises(DatasetError, match="missing or unreadable linreg metadata"):
        read_dataset(_rewrite(ref.path, pq.read_table(ref.path).replace_schema_metadata({})))


def test_nan_in_data_is_refused(written):
    _, ref = written
    table = pq.read_table(ref.path)
    y = table.column("y").to_numpy().copy()
    y[5] = np.nan
    poisoned = table.set_column(2, "y", pa.array(y)).replace_schema_metadata(table.schema.metadata)
    with pytest.raises(DatasetError, match="contains NaN or infinite values"):
        read_dataset(_rewrite(ref.path, poisoned))


def test_missing_file_is_refused(tmp_path):
    ref = DatasetRef(path=str(tmp_path / "nope.parquet"), sha256="0" * 64, spec=SPEC)
    with pytest.raises(DatasetError, match="nope.parquet: not found on .*shared storage"):
        read_dataset(ref)


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new, half written")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_ensure_dataset_reuses_a_valid_file(tmp_path):
    ref, reused = ensure_dataset(SPEC, tmp_path)
    assert not reused and ref.path == str(dataset_path(tmp_path.resolve(), SPEC))
    stat = os.stat(ref.path)
    again, reused = ensure_dataset(SPEC, tmp_path)
    assert reused and again == ref
    assert (os.stat(ref.path).st_ino, os.stat(ref.path).st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_ensure_dataset_regenerates_a_damaged_cache_file(tmp_path, caplog):
    ref, _ = ensure_dataset(SPEC, tmp_path)
    open(ref.path, "wb").write(b"garbage")
    fixed, reused = ensure_dataset(SPEC, tmp_path)
    assert not reused and fixed.sha256 == ref.sha256
    assert "regenerating damaged cached dataset" in caplog.text


def test_different_specs_get_different_files(tmp_path):
    assert dataset_path(tmp_path, SPEC) != dataset_path(tmp_path, SPEC.model_copy(update={"seed": 4}))


def test_a_file_over_the_memory_budget_is_streamed_with_the_same_values(written):
    data, ref = written
    source = open_dataset(ref, memory_budget=100)
    assert isinstance(source, ParquetSource) and (source.n, source.d) == (64, 2)
    chunks = list(source.iter_chunks(rows=10))
    assert [len(y) for _, y in chunks] == [10] * 6 + [4]
    assert_array_equal(np.concatenate([x for x, _ in chunks]), data.x)
    assert_array_equal(np.concatenate([y for _, y in chunks]), data.y)
    in_memory = open_dataset(ref, memory_budget=10**9)
    assert_array_equal(in_memory.x, data.x)


def test_streamed_reads_check_the_digest_and_the_values(written):
    _, ref = written
    with pytest.raises(DatasetError, match="does not match the reference"):
        open_dataset(ref.model_copy(update={"sha256": "1" * 64}), memory_budget=100)
    table = pq.read_table(ref.path)
    y = table.column("y").to_numpy().copy()
    y[-1] = np.inf
    poisoned = _rewrite(ref.path, table.set_column(2, "y", pa.array(y)).replace_schema_metadata(table.schema.metadata))
    source = open_dataset(poisoned, memory_budget=100)
    with pytest.raises(DatasetError, match="contains NaN or infinite values"):
        list(source.iter_chunks(rows=16))


def test_chunked_writes_make_one_row_group_per_chunk_and_hash_while_writing(tmp_path):
    spec = DataSpec(n=1000, seed=1)
    ref = write_dataset_chunks(spec, iter_dataset_chunks(spec, rows=300), tmp_path / "c.parquet")
    assert pq.ParquetFile(ref.path).metadata.num_row_groups == 4
    assert ref.sha256 == sha256_file(ref.path)
    assert_array_equal(read_dataset(ref).y, make_dataset(spec).y)


@pytest.mark.parametrize("row", [0, 40, SPEC.n - 1], ids=["first-row-group", "middle-row-group", "last-row"])
def test_cache_reuse_over_the_budget_checks_every_value(tmp_path, caplog, row):
    budget = 100  # bytes: the 64-row file's x and y (1.5 kB) are checked one row group at a time
    ref, _ = ensure_dataset(SPEC, tmp_path, memory_budget=budget)
    again, reused = ensure_dataset(SPEC, tmp_path, memory_budget=budget)
    assert reused and again == ref
    # The same file, cut into four row groups, with one NaN planted: digest and layout still
    # check out, so only reading every value, chunk by chunk, can find it.
    table = pq.read_table(ref.path)
    y = table.column("y").to_numpy().copy()
    y[row] = np.nan
    poisoned = table.set_column(2, "y", pa.array(y)).replace_schema_metadata(table.schema.metadata)
    pq.write_table(poisoned, ref.path, row_group_size=16)
    assert pq.ParquetFile(ref.path).metadata.num_row_groups == 4
    fixed, reused = ensure_dataset(SPEC, tmp_path, memory_budget=budget)
    assert not reused, "a cached file with a NaN in it was reused"
    assert "regenerating damaged cached dataset" in caplog.text and "contains NaN or infinite values" in caplog.text
    assert fixed == ref  # regenerated: the same bytes as the first write
    assert_array_equal(read_dataset(fixed).y, make_dataset(SPEC).y)


def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    """ENOSPC surfaces at fsync on many file systems: the error names the real path, no temporary file remains."""
    import errno

    import linreg.storage.atomic as atomic
    from linreg.storage import write_bytes

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    target = tmp_path / "runs" / "r1" / "fits.png"
    with pytest.raises(OSError) as raised:
        write_bytes(target, b"\x89PNG" * 1000)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert str(target) in str(raised.value)
    assert list(target.parent.iterdir()) == []


# --- The data root's catalog ----------------------------------------------------------------------

def test_the_catalog_names_every_path_under_the_data_root_and_creates_none(tmp_path):
    catalog = Catalog(tmp_path)
    assert catalog.dataset(SPEC) == tmp_path / "datasets" / f"linreg-{spec_digest(SPEC)}.parquet"
    assert dataset_path(tmp_path, SPEC) == catalog.dataset(SPEC)
    assert catalog.conversion("csv", "ab12", "cd34") == tmp_path / "datasets" / "csv-ab12-cd34.parquet"
    assert catalog.run("r1") == run_dir(tmp_path, "r1") == tmp_path / "runs" / "r1"
    assert catalog.summary("r1") == tmp_path / "runs" / "r1" / "summary.json"
    assert [catalog.run_file("r1", name).name for name in RUN_FILES] == [
        "summary.csv", "fits.png", "losses.png", "predicted.png", "residuals.png", "coefficients.png",
        "diagnostics.png", "summary.json"]
    assert catalog.sweep("s1") == tmp_path / "sweeps" / "s1"  # beside runs/, not in it
    assert catalog.sweep_file("s1", "sweep.parquet") == tmp_path / "sweeps" / "s1" / "sweep.parquet"
    assert (catalog.history_csv, catalog.history_png) == (tmp_path / "history.csv", tmp_path / "history.png")
    assert list(tmp_path.iterdir()) == []


def test_the_catalog_finds_a_flow_runs_folders_and_a_choices_conversions(tmp_path):
    catalog = Catalog(tmp_path)
    flow_run_id = UUID("7f65b0aa-1234-5678-9abc-def012345678")
    mine = catalog.run(new_run_id(flow_run_id, datetime(2026, 12, 1, tzinfo=timezone.utc)))
    other = catalog.run(new_run_id(UUID(int=1), datetime(2026, 12, 1, tzinfo=timezone.utc)))
    for folder in (mine, other):
        folder.mkdir(parents=True)
    assert catalog.runs_of(flow_run_id) == [mine] and catalog.runs_of(str(flow_run_id)) == [mine]
    catalog.datasets.mkdir()
    wanted = [catalog.conversion("csv", "a" * 64, "cd34"), catalog.conversion("csv", "b" * 64, "cd34")]
    for path in [*wanted, catalog.conversion("csv", "c" * 64, "ef56"), catalog.conversion("parquet", "d" * 64, "cd34")]:
        path.touch()
    assert catalog.conversions("csv", "cd34") == wanted


def test_a_file_name_the_catalog_does_not_know_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'notes.txt' is not one of summary.csv, fits.png"):
        Catalog(tmp_path).run_file("r1", "notes.txt")
    with pytest.raises(ValueError, match="is not one of sweep.csv"):
        Catalog(tmp_path).sweep_file("s1", "summary.json")


def test_run_and_sweep_ids_round_trip_their_utc_start_time():
    flow_run_id = UUID("7f65b0aa-1234-5678-9abc-def012345678")
    now = datetime(2026, 12, 1, 10, 15, 30, 999_999, tzinfo=timezone.utc)
    run_id, sweep_id = new_run_id(flow_run_id, now), new_sweep_id(flow_run_id, now)
    # The ids the flows have always written: f"{now:%Y%m%dT%H%M%SZ}-{str(flow_run.id)[:8]}", and "-sweep-" for a sweep.
    assert (run_id, sweep_id) == ("20261201T101530Z-7f65b0aa", "20261201T101530Z-sweep-7f65b0aa")
    assert run_time(run_id) == run_time(sweep_id) == now.replace(microsecond=0)
    assert run_started(run_id) == "20261201T101530Z"
    assert new_run_id(flow_run_id, now.astimezone(timezone(timedelta(hours=-5)))) == run_id  # always UTC
    assert (is_sweep_id(run_id), is_sweep_id(sweep_id)) == (False, True)
    assert run_time("my-run") is None and run_started("my-run") is None
    assert run_time(new_run_id("0123456789")) is not None


def test_run_folders_are_oldest_first_without_sweeps_or_hidden_folders(tmp_path):
    catalog = Catalog(tmp_path)
    assert catalog.run_folders() == []  # no runs/ yet
    names = ["20261201T100000Z-bbbbbbbb", "20261130T235959Z-cccccccc", "20261201T100000Z-aaaaaaaa",
             "20261201T000000Z-sweep-dddddddd", ".partial", "mine"]
    for name in names:
        (catalog.runs / name).mkdir(parents=True)
    (catalog.runs / "stray.txt").write_text("not a folder")
    for name, written_ns in (("20261201T100000Z-bbbbbbbb", 1_000), ("20261201T100000Z-aaaaaaaa", 2_000)):
        catalog.summary(name).write_text("{}")
        os.utime(catalog.summary(name), ns=(written_ns, written_ns))
    # No start time sorts first; within a second, the summary written first; a sweep kept in runs/ is no run.
    assert [f.name for f in catalog.run_folders()] == [
        "mine", "20261130T235959Z-cccccccc", "20261201T100000Z-bbbbbbbb", "20261201T100000Z-aaaaaaaa"]
