"""`ingest_table`: a user's CSV or parquet table checked, and converted once where it must be.

- A CSV (or .tsv, either compressed) is read once by pyarrow's streaming CSV reader,
  its stored bytes hashed as the reader consumes them, and written as float64 parquet
  to `<data_root>/datasets/csv-<sha256>-<choice>.parquet`, named by the file's sha256
  and a digest of the column choice and dialect; the same file with the same choice is
  converted once. The conversion records the file's name, size and modification time:
  the same file seen again is only hashed.
- A parquet file, or a folder of them, whose chosen columns are numeric or boolean is
  read where it is. Only when `drop_missing` has rows to drop is a cleaned copy written
  (`parquet-<sha256>-<choice>.parquet`).

Every refusal is one `TableError` line, "PATH: problem", raised before anything is
written or, for values only a full read can show, from inside a write under a
temporary name that then leaves nothing behind.
"""

import logging
from pathlib import Path
from typing import Callable

import pyarrow as pa

from linreg.storage.atomic import pending_file
from linreg.storage.catalog import Catalog
from linreg.storage.ingest.checks import ValueChecks
from linreg.storage.ingest.convert import (
    Choice, converted_before, converted_path, reusable, reuse, row_group_rows, write_converted,
)
from linreg.storage.ingest.csv_reader import CSV_BLOCK_BYTES, Dialect, csv_batches, csv_columns, dialect_for, read_types
from linreg.storage.ingest.model import TableDataset, TableError
from linreg.storage.ingest.parquet_reader import parquet_batches, parquet_columns
from linreg.storage.ingest.sources import Location, data_sha256, file_sha256, hashing_reader, identity, locate

log = logging.getLogger("linreg.storage")

Accept = Callable[[TableDataset], object]
CSV_ROWS = "data rows count from 1 after the header"


def ingest_table(
    path: Path | str, target: str, features: list[str] | None = None, data_root: Path | str = Path("data"),
    drop_missing: bool = False, *, delimiter: str | None = None, decimal: str = ".", na_values=(),
    block_bytes: int = CSV_BLOCK_BYTES, accept: Accept | None = None,
) -> TableDataset:
    """Check a user's CSV or parquet table and return a reference to a parquet of its chosen columns.

    Args:
        path: a .csv or .tsv file (or one compressed: .gz, .bz2, .zst), a .parquet file, or a
            folder of .parquet files (one dataset); a local path or a URL pyarrow's filesystems open.
        target: the column to predict.
        features: the predictor columns, in the order wanted; None: every column but the target, in file order.
        data_root: where conversions go (`datasets/` under it).
        drop_missing: drop rows with a missing or infinite value in a chosen column, rather than refuse them.
        delimiter: a CSV's delimiter, one of , ; tab | (None: the one that splits the header into the
            most columns; a .tsv's tab on a tie).
        decimal: a CSV's decimal point, "." or ",".
        na_values: tokens read as missing besides pyarrow's own ("", "NA", "NaN", "null", ...).
        block_bytes: bytes per block of the CSV reader (memory grows with it).
        accept: a further check of the finished table (a run's holdout, say), raising `TableError`
            to refuse it; called before any conversion is published, so a refusal leaves nothing.

    Returns:
        The checked table: source, digests, columns, source dtypes, rows and rows dropped.

    Raises:
        TableError: one line naming the file and the column, row or count at fault; nothing is left written.
    """
    location = locate(path)
    data_root = Path(data_root).resolve()  # absolute: workers may run elsewhere
    accept = accept or (lambda table: None)
    if location.kind == "csv":
        dialect = dialect_for(location, Dialect(delimiter, decimal, tuple(na_values)))
        return _ingest_csv(location, target, features, data_root, drop_missing, dialect, block_bytes, accept)
    given = [name for name, value, default in (("delimiter", delimiter, None), ("decimal", decimal, "."),
                                               ("na_values", tuple(na_values), ())) if value != default]
    if given:  # parquet stores types and nulls: a CSV's reading options would be silently ignored
        raise TableError(location.name, f"{', '.join(given)}: only for a CSV file; this is {location.kind} data")
    return _ingest_parquet(location, target, features, data_root, drop_missing, accept)


def _ingest_csv(location: Location, target: str, features: list[str] | None, data_root: Path, drop_missing: bool,
                dialect: Dialect, block_bytes: int, accept: Accept) -> TableDataset:
    names, features, types = csv_columns(location, dialect, block_bytes, target, features)
    columns = [*features, target]
    choice = Choice(target, tuple(features), drop_missing, dialect.delimiter, dialect.decimal, dialect.na_values)
    source = identity(location)
    if converted_before(data_root, choice, source):
        # Seen before: one pass of sha256 decides (size and mtime alone could lie).
        source_sha256 = file_sha256(location)
        out = converted_path(data_root, "csv", source_sha256, choice)
        meta = reusable(out, source_sha256, choice)
        if meta is not None:
            table = reuse(out, meta, location.name)
            accept(table)
            return table

    hashing = hashing_reader(location)
    read_as = read_types(types, columns)
    batches = csv_batches(location, dialect, read_as, columns, block_bytes, hashing, names, target)

    def describe(checks: ValueChecks) -> TableDataset:
        source_sha256 = hashing.digest.hexdigest()  # whole: every batch is read
        out = converted_path(data_root, "csv", source_sha256, choice)
        dtypes = [_csv_dtype(types[c], checks.integral[j]) for j, c in enumerate(columns)]
        table = _described(location.name, source_sha256, out, choice, dtypes, checks, converted=True)
        accept(table)  # before the rename: a refusal leaves nothing
        return table

    integers = tuple(j for j, c in enumerate(columns) if pa.types.is_integer(types[c]))
    checks = ValueChecks(location.name, columns, drop_missing, integers)
    # Named by the content's sha256, known only once the file is read: written under a
    # temporary name, renamed at the end, removed if anything fails before.
    with pending_file(Catalog(data_root).datasets, "csv") as pending:
        table = write_converted(pending.path, columns, batches, checks, CSV_ROWS, describe, source)
        out = Path(table.path)
        meta = reusable(out, table.source_sha256, choice)
        if meta is not None:  # the same bytes converted before, from another path: that one stays
            return reuse(out, meta, location.name)
        pending.publish(out)
    log.info("converted %s to %s (%d rows, %d dropped)", location.name, out, table.rows, table.rows_dropped)
    return table


def _csv_dtype(first_block: pa.DataType, integral: bool) -> str:
    """A CSV column's type over the whole file: int64 while every value is whole, bool, or double."""
    if pa.types.is_boolean(first_block):
        return "bool"
    return "int64" if pa.types.is_integer(first_block) and integral else "double"


def _described(source: str, source_sha256: str, path: Path | str, choice: Choice, dtypes: list[str],
               checks: ValueChecks, converted: bool) -> TableDataset:
    return TableDataset(
        source=source, source_sha256=source_sha256, path=str(path), converted=converted,
        target=choice.target, features=choice.features, feature_dtypes=tuple(dtypes[:-1]), target_dtype=dtypes[-1],
        rows=checks.rows_kept, rows_dropped=checks.rows_seen - checks.rows_kept, drop_missing=choice.drop_missing,
        delimiter=choice.delimiter, decimal=choice.decimal, na_values=choice.na_values,
    )


def _ingest_parquet(location: Location, target: str, features: list[str] | None, data_root: Path,
                    drop_missing: bool, accept: Accept) -> TableDataset:
    files, features, types = parquet_columns(location, target, features)
    columns = [*features, target]
    choice = Choice(target, tuple(features), drop_missing)
    source_sha256 = data_sha256(location)
    checks = _scan(location, files, columns, drop_missing)
    dtypes = [str(types[c]) for c in columns]
    table = _described(location.name, source_sha256, location.name, choice, dtypes, checks, converted=False)
    checks.check(len(features), _parquet_rows(location))
    if not table.rows_dropped:
        accept(table)
        return table  # read in place: nothing is copied
    return _write_cleaned(location, files, table, choice, data_root, accept)


def _parquet_rows(location: Location) -> str:
    return "data rows count from 1" + (" in each file" if location.kind == "folder" else "")


def _scan(location: Location, files: list[Location], columns: list[str], drop_missing: bool) -> ValueChecks:
    """One streamed pass over the chosen columns of every file: the value checks' counts."""
    checks = ValueChecks(location.name, columns, drop_missing)
    seen = 0
    for f in files:
        # Rows are numbered within each file, so that a message can name file and row.
        checks.rows_seen = 0
        where = "" if f is location else f" of {f.name[len(location.name.rstrip('/')) + 1:]}"
        for batch in parquet_batches(f, columns, row_group_rows(len(columns) - 1)):
            checks.update(batch, where)
        seen += checks.rows_seen
    checks.rows_seen = seen
    return checks


def _write_cleaned(location: Location, files: list[Location], table: TableDataset, choice: Choice,
                   data_root: Path, accept: Accept) -> TableDataset:
    """A parquet source with rows to drop: its checked rows, once, as a conversion under the data root.

    `accept` sees the table as it will be read (the conversion), before the conversion is published.
    """
    out = converted_path(data_root, "parquet", table.source_sha256, choice)
    meta = reusable(out, table.source_sha256, choice)
    if meta is not None:
        cleaned = reuse(out, meta, location.name)
        accept(cleaned)
        return cleaned

    def describe(_: ValueChecks) -> TableDataset:
        cleaned = table.model_copy(update={"path": str(out), "converted": True})
        accept(cleaned)  # before the rename: a refusal leaves nothing
        return cleaned

    columns = table.columns
    checks = ValueChecks(location.name, columns, drop_missing=True)
    batches = (b for f in files for b in parquet_batches(f, columns, row_group_rows(len(columns) - 1)))
    with pending_file(Catalog(data_root).datasets, "parquet") as pending:  # a refusal leaves no datasets/ either
        cleaned = write_converted(pending.path, columns, batches, checks, _parquet_rows(location), describe)
        pending.publish(out)
    return cleaned
