"""A user's own table: a CSV converted once to parquet, or a parquet file or folder read in place.

`ingest_table` checks the file and its chosen columns, and returns a small
`TableDataset` (what crosses task boundaries); `open_table` turns that into a
`TableSource`, the same reader a solver gets for generated data
(`linreg.data.DataSource`), with named columns and no true parameters.

- A CSV is read once: cut into pieces at line ends, hashed as it is read, each
  piece parsed by pyarrow's CSV reader on a thread of its own (a few at a time),
  and written as float64 parquet to `<data_root>/datasets/csv-<sha256>-<choice>.parquet`,
  named by the CSV's sha256 and a short digest of the column choice; the same
  file with the same choice is converted once. The conversion records the file's
  path, size and modification time: the same file seen again is only hashed.
- A parquet file, or a folder of them, whose chosen columns are numeric is read
  where it is. Only when `drop_missing` has rows to drop is a cleaned copy
  written (`parquet-<sha256>-<choice>.parquet`).

Every refusal is one `TableError` line, "PATH: problem", raised before anything
is written or, for values only a full read can show, from inside an atomic
write that then leaves no file behind.
"""

import hashlib
import json
import logging
import os
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from linreg.data import CHUNK_ROWS, SourceSpec, holdout_count, holdout_mask
from linreg.storage.atomic import atomic_path, pending_file, sha256_file
from linreg.storage.catalog import Catalog
from linreg.storage.parquet import DatasetError
from linreg.storage.source import DEFAULT_MEMORY_BUDGET

log = logging.getLogger("linreg.storage")

TABLE_FORMAT_VERSION = 1
_META_KEY = b"linreg.table"
_SOURCE_KEY = b"linreg.source"  # the CSV converted: path, size and mtime, to find it again
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
PARQUET_MAGIC = b"PAR1"
# A CSV is parsed in pieces of about CSV_BLOCK_BYTES, cut at line ends, CSV_PARSE_THREADS
# pieces at a time, each by one thread, while the calling thread reads ahead, hashes,
# checks and writes. On two cores this reads as fast as pandas' multi-threaded read of
# the whole file, where pyarrow's streaming reader parsed at about half that speed and a
# separate sha256 pass cost a third more (docs/own-data.md). Memory: a few pieces.
CSV_BLOCK_BYTES = 8 << 20
CSV_PARSE_THREADS = max(1, min(8, os.cpu_count() or 1))
# Row groups of at most 64 MiB of float64 x and y (and at most CHUNK_ROWS rows, as
# generated files have): one group fits any memory budget a streamed fit runs under.
ROW_GROUP_BYTES = 64 << 20
_SNIFF_BYTES = 1 << 16
NUL = b"\0"  # no text file holds one; almost every binary file does
_MAX_DETAIL = 160
# A number as pyarrow's CSV reader parses it into float64 (used only to find the
# first offending value of a text column, on the error path).
_NUMBER = r"^\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|infinity|nan)\s*$"


class TableError(DatasetError):
    """A user's table refused: the str() is one line, "PATH: problem", naming the column, row or count."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(path, " ".join(problem.split()))


class TableDataset(BaseModel):
    """A checked table, by reference: where its parquet is, what it holds and where it came from.

    Attributes:
        source: the file or folder the user named (absolute).
        source_sha256: the digest of its bytes (a folder's: of its files' names and digests).
        path: the parquet file or folder to read: `source` itself when read in place.
        converted: True when `path` is a conversion written under the data root (its footer
            records this table, and its pages carry CRC checksums, checked as they are read).
        target, features: the chosen columns; features keep the order given (or the file's).
        feature_dtypes, target_dtype: the columns' types in the source, as pyarrow names them
            (a CSV's as pyarrow infers them over the whole file: int64 or double).
        rows: data rows, after any dropped.
        rows_dropped: rows dropped for a missing or infinite value (drop_missing only).
        drop_missing: whether such rows were to be dropped rather than refused.
    """

    model_config = ConfigDict(frozen=True)

    source: str
    source_sha256: str
    path: str
    converted: bool
    target: str
    features: tuple[str, ...]
    feature_dtypes: tuple[str, ...]
    target_dtype: str
    rows: int
    rows_dropped: int = 0
    drop_missing: bool = False

    @property
    def n(self) -> int:
        return self.rows

    @property
    def d(self) -> int:
        return len(self.features)

    @property
    def columns(self) -> list[str]:
        """The columns read, in the order they are read: the features, then the target."""
        return [*self.features, self.target]

    @property
    def dtypes(self) -> dict[str, str]:
        """Source type by column name, features first."""
        return dict(zip(self.columns, [*self.feature_dtypes, self.target_dtype]))


# ---------------------------------------------------------------------------
# Finding the files, and their kind


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, cut short: pyarrow quotes whole rows of data."""
    text = " ".join(str(exc).split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def parquet_files(path: Path) -> list[Path]:
    """The parquet files of a folder dataset, in name order, leaving out hidden and `_`-prefixed ones
    (`.x.tmp`, Spark's `_SUCCESS` and `_metadata`), as pyarrow's dataset reader does.

    Raises:
        TableError: the folder holds no parquet file.
    """
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES
        and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )
    if not files:
        raise TableError(path, f"empty folder: no {'/'.join(PARQUET_SUFFIXES)} files in it")
    return files


def _table_kind(path: Path) -> str:
    """'csv', 'parquet' or 'folder'; refuses anything else naming what is accepted."""
    if not path.exists():
        raise TableError(path, "no such file or folder")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    with open(path, "rb") as fh:
        if fh.read(4) == PARQUET_MAGIC:
            return "parquet"
    raise TableError(
        path, f"not a CSV or parquet file (suffix {suffix or 'none'!r}); expected a .csv file, "
        "a .parquet file or a folder of .parquet files"
    )


def _folder_sha256(root: Path, files: list[Path]) -> str:
    """One digest for a folder dataset: each file's relative name and sha256, in order."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.relative_to(root).as_posix()}\0{sha256_file(f)}\n".encode())
    return digest.hexdigest()


def data_sha256(path: Path) -> str:
    """The sha256 of a parquet file, or of a folder's parquet files (see `_folder_sha256`)."""
    path = Path(path)
    return _folder_sha256(path, parquet_files(path)) if path.is_dir() else sha256_file(path)


# ---------------------------------------------------------------------------
# Choosing the columns


# The reports' own columns beside the features' (the reference's "intercept" row; "solver" and
# "bias" in the coefficient tables): a feature of that name would be one of two same-named columns.
RESERVED_NAMES = ("intercept", "bias", "solver")


def choose_columns(path: Path, names: list[str], target: str, features: list[str] | None) -> list[str]:
    """The features to read: `features` as given, else every column but the target, in file order.

    Raises:
        TableError: an unknown column (listing those that exist), a name the file holds twice,
            the target among the features, a feature listed twice, no feature at all, or a
            feature named as one of the reports' own columns (RESERVED_NAMES).
    """
    available = ", ".join(names)
    if target not in names:
        raise TableError(path, f"unknown target column {target!r}; the columns are: {available}")
    if features is None:
        features = [c for c in names if c != target]
    else:
        features = list(features)
        if not features:
            raise TableError(path, f"features is empty; name at least one of: {available}")
        unknown = [c for c in features if c not in names]
        if unknown:
            listed = ", ".join(repr(c) for c in unknown)
            raise TableError(path, f"unknown feature column{'s' if len(unknown) > 1 else ''} {listed}; "
                                   f"the columns are: {available}")
        if target in features:
            raise TableError(path, f"the target {target!r} is also listed among the features; "
                                   "leave it out of --features")
        twice = sorted({c for c in features if features.count(c) > 1})
        if twice:
            raise TableError(path, f"features list {', '.join(repr(c) for c in twice)} more than once")
    if not features:
        raise TableError(path, f"no feature columns: the only column is the target {target!r}")
    taken = [c for c in features if c in RESERVED_NAMES]
    if taken:
        raise TableError(path, f"feature column {taken[0]!r} has a name the reports give a column of their own "
                               f"({', '.join(RESERVED_NAMES)}); rename it in the file, or leave it out with --features")
    for column in [*features, target]:
        positions = [i + 1 for i, c in enumerate(names) if c == column]
        if len(positions) > 1:
            where = ", ".join(map(str, positions[:-1])) + f" and {positions[-1]}"
            raise TableError(path, f"duplicate column name {column!r} (columns {where}); "
                                   "rename one, or leave it out with --features")
    return features


def _is_numeric(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def _non_numeric_error(path: Path, column: str, dtype: str, names: list[str], target: str,
                       types: dict[str, pa.DataType], where: str = "") -> TableError:
    numeric = [c for c in names if c not in (target, column) and _is_numeric(types.get(c, pa.float64()))]
    if column == target:
        hint = f" (numeric columns: {', '.join(numeric)})" if numeric else ""
        return TableError(path, f"the target {column!r} is not numeric ({dtype}{where}); "
                                f"choose a numeric column with --target{hint}")
    hint = f" (e.g. --features {','.join(numeric)})" if numeric else ""
    return TableError(path, f"column {column!r} is not numeric ({dtype}{where}); "
                            f"choose numeric columns with --features{hint}")


# ---------------------------------------------------------------------------
# One streamed pass of value checks


@dataclass
class _ValueChecks:
    """Counts of missing and infinite values per column, their first rows, running min/max and rows kept.

    `update` takes each batch in row order (columns: the features, then the
    target) and returns it with bad rows dropped when `drop_missing`. Columns
    listed in `integer_columns` (indices) are also checked for whole numbers.
    """

    path: Path
    columns: list[str]
    drop_missing: bool
    integer_columns: tuple[int, ...] = ()
    missing: np.ndarray = field(init=False)
    infinite: np.ndarray = field(init=False)
    first_bad: list = field(init=False)
    low: np.ndarray = field(init=False)
    high: np.ndarray = field(init=False)
    integral: np.ndarray = field(init=False)
    rows_seen: int = 0
    rows_kept: int = 0

    def __post_init__(self):
        k = len(self.columns)
        self.missing, self.infinite = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
        self.first_bad = [None] * k
        self.low, self.high = np.full(k, np.inf), np.full(k, -np.inf)
        self.integral = np.ones(k, dtype=bool)

    @property
    def bad(self) -> bool:
        return bool(self.missing.any() or self.infinite.any())

    def update(self, batch: pa.RecordBatch, where: str = "") -> pa.RecordBatch:
        """Account for one batch; return it, without its bad rows when dropping.

        Args:
            where: how the batch's rows are named in messages ("" for the table's
                own data rows, else e.g. " of part-1.parquet").
        """
        values = [_float64(batch.column(j)) for j in range(batch.num_columns)]
        start = self.rows_seen
        self.rows_seen += batch.num_rows
        if batch.num_rows == 0:
            return batch
        lows = [v.min() for v in values]
        highs = [v.max() for v in values]
        # min/max propagate NaN (missing) and show infinities: one cheap test per column.
        if all(np.isfinite(lo) and np.isfinite(hi) for lo, hi in zip(lows, highs)):
            self._record(values, lows, highs)
            return batch
        keep = np.ones(batch.num_rows, dtype=bool)
        for j, v in enumerate(values):
            finite = np.isfinite(v)
            if finite.all():
                continue
            nan = np.isnan(v)
            self.missing[j] += int(nan.sum())
            self.infinite[j] += int((~finite & ~nan).sum())
            if self.first_bad[j] is None:
                self.first_bad[j] = (start + int(np.argmin(finite)) + 1, where)
            keep &= finite
        if not self.drop_missing:
            return batch  # refused in the end; the counts go on for the message
        kept = [v[keep] for v in values]
        if keep.any():
            self._record(kept, [v.min() for v in kept], [v.max() for v in kept])
        return batch.filter(pa.array(keep))

    def _record(self, values: list[np.ndarray], lows: list[float], highs: list[float]) -> None:
        self.rows_kept += len(values[0])
        self.low = np.minimum(self.low, lows)
        self.high = np.maximum(self.high, highs)
        for j in self.integer_columns:
            # Whether a CSV column pyarrow typed int64 in its first block stays integral after it.
            if self.integral[j] and not np.array_equal(values[j], np.trunc(values[j])):
                self.integral[j] = False

    def check(self, d: int, row_word: str) -> None:
        """Refuse missing or infinite values (unless dropped), too few rows, or a constant feature.

        Args:
            d: features (the first d columns).
            row_word: how rows are numbered, for the message.

        Raises:
            TableError: naming the columns, counts and first rows.
        """
        if self.bad and not self.drop_missing:
            parts = []
            for j in np.flatnonzero(self.missing + self.infinite):
                pairs = ((self.missing[j], "missing"), (self.infinite[j], "infinite"))
                counts = [f"{count} {kind}" for count, kind in pairs if count]
                row, where = self.first_bad[j]
                parts.append(f"{self.columns[j]!r}: {' and '.join(counts)}, first at data row {row}{where}")
            columns = f"{len(parts)} column{'s' if len(parts) > 1 else ''}"
            raise TableError(self.path, f"missing or infinite values in {columns}: {'; '.join(parts)} ({row_word}); "
                                        "drop those rows with --drop-missing")
        dropped = self.rows_seen - self.rows_kept
        if self.rows_kept < d + 1:
            after = f" left after dropping {dropped} with missing or infinite values" if dropped else ""
            rows = f"{self.rows_kept} data row{'s' if self.rows_kept != 1 else ''}"
            raise TableError(self.path, f"{rows}{after}, for {d} feature{'s' if d != 1 else ''}: "
                                        f"a fit needs at least {d + 1} (features + 1)")
        constant = [j for j in range(d) if self.low[j] == self.high[j]]
        if constant:
            which = ", ".join(f"{self.columns[j]!r} (every row is {self.low[j]:g})" for j in constant)
            verb = "features {} are" if len(constant) > 1 else "feature {} is"
            raise TableError(self.path, f"{verb.format(which)} constant: no information beside the intercept; "
                                        "leave it out with --features")


def _float64(column: pa.Array) -> np.ndarray:
    """A column as float64 values, missing ones as NaN (zero-copy for a float64 column without nulls)."""
    if column.type != pa.float64():
        column = column.cast(pa.float64())
    return column.to_numpy(zero_copy_only=False)


# ---------------------------------------------------------------------------
# Writing a conversion


def _choice_digest(target: str, features: list[str], drop_missing: bool) -> str:
    choice = {"target": target, "features": features, "drop_missing": drop_missing}
    return hashlib.sha256(json.dumps(choice).encode()).hexdigest()[:12]


def converted_path(data_root: Path, prefix: str, source_sha256: str, target: str, features: list[str],
                   drop_missing: bool) -> Path:
    """Where a conversion of a source with this digest and column choice lives under the data root."""
    return Catalog(data_root).conversion(prefix, source_sha256, _choice_digest(target, features, drop_missing))


def row_group_rows(d: int) -> int:
    """Rows per written row group: at most ROW_GROUP_BYTES of float64 x and y, at most CHUNK_ROWS."""
    return max(1, min(CHUNK_ROWS, ROW_GROUP_BYTES // ((d + 1) * 8)))


def _output_schema(columns: list[str]) -> pa.Schema:
    return pa.schema([pa.field(c, pa.float64(), nullable=False) for c in columns])


class _RowGroupWriter:
    """Batches in, row groups of exactly `rows` rows out (the last one shorter)."""

    def __init__(self, writer: pq.ParquetWriter, rows: int):
        self._writer, self._rows, self._pending, self._count = writer, rows, [], 0

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._pending.append(batch)
            self._count += batch.num_rows
        while self._count >= self._rows:
            self._flush(self._rows)

    def close(self) -> None:
        if self._count:
            self._flush(self._count)

    def _flush(self, rows: int) -> None:
        table = pa.Table.from_batches(self._pending)
        self._writer.write_table(table.slice(0, rows), row_group_size=rows)
        rest = table.slice(rows)
        self._pending, self._count = rest.to_batches(), rest.num_rows


def _metadata(table: TableDataset) -> dict[bytes, bytes]:
    fields = table.model_dump(exclude={"source", "path", "converted"})
    return {_META_KEY: json.dumps({"format_version": TABLE_FORMAT_VERSION, **fields}).encode()}


def _write_converted(
    tmp: Path, columns: list[str], batches: Iterable[pa.RecordBatch], checks: _ValueChecks,
    row_word: str, describe, source: dict | None = None,
) -> TableDataset:
    """Stream checked batches into the temporary file `tmp`; refuse bad values at the end.

    The caller renames `tmp` once this returns, and removes it if this raises: nothing
    half-written is ever under a real name. Random-looking floats neither compress nor
    dictionary-encode, so both are off (as for generated datasets); page CRCs cost
    little and catch a damaged page.

    Args:
        batches: the chosen columns (features, then target) as float64, in row order.
        describe: called with the finished checks (once every batch is read), returns
            the TableDataset to record.
        source: recorded beside it under `_SOURCE_KEY` (a CSV's path, size and mtime).

    Returns:
        The TableDataset recorded in the file's metadata.
    """
    schema = _output_schema(columns)
    with pq.ParquetWriter(tmp, schema, compression="none", use_dictionary=False, write_statistics=False,
                          write_page_checksum=True) as writer:
        groups = _RowGroupWriter(writer, row_group_rows(len(columns) - 1))
        for batch in batches:
            batch = checks.update(batch)
            if checks.drop_missing or not checks.bad:  # a refused file need not be written on
                groups.add(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
        checks.check(len(columns) - 1, row_word)
        groups.close()
        table = describe(checks)
        meta = _metadata(table)
        if source is not None:
            meta[_SOURCE_KEY] = json.dumps(source).encode()
        writer.add_key_value_metadata(meta)
    return table


def _recorded(path: Path) -> dict:
    """The table a conversion's footer records.

    Raises:
        TableError: unreadable, or without the record.
    """
    try:
        return json.loads((pq.ParquetFile(path).metadata.metadata or {})[_META_KEY])
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise TableError(path, f"not a readable converted table ({_one_line(exc)})") from None


def _reusable(out: Path, source_sha256: str, target: str, features: list[str], drop_missing: bool) -> dict | None:
    """The recorded fields of a conversion already at `out` for this source and choice, else None."""
    if not out.exists():
        return None
    try:
        meta = _recorded(out)
    except TableError as exc:
        log.warning("rewriting damaged converted table: %s", exc)
        return None
    expected = {"format_version": TABLE_FORMAT_VERSION, "source_sha256": source_sha256, "target": target,
                "features": features, "drop_missing": drop_missing}
    if any(meta.get(k) != v for k, v in expected.items()):
        log.warning("rewriting converted table %s: its metadata does not match the source", out)
        return None
    return meta


def _reuse(out: Path, meta: dict, source: Path) -> TableDataset:
    fields = {k: v for k, v in meta.items() if k != "format_version"}
    return TableDataset(source=str(source), path=str(out), converted=True, **fields)


# ---------------------------------------------------------------------------
# CSV


def _sniff_text(path: Path) -> None:
    """Refuse an empty file, or one that is not UTF-8 text, before pyarrow parses it."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head:
        raise TableError(path, "empty file: no header row")
    if NUL in head:
        raise TableError(path, f"not a text CSV file (a NUL byte at offset {head.index(NUL)}); "
                               "is it a binary file named .csv?")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not merely a character cut at the end of the sample
            raise TableError(path, f"not a UTF-8 text CSV file (byte 0x{head[exc.start]:02x} at offset {exc.start}); "
                                   "save it as UTF-8") from None


def _open_csv(path: Path, block_bytes: int, convert: pacsv.ConvertOptions | None = None,
              skip_rows: int = 0) -> pacsv.CSVStreamingReader:
    read = pacsv.ReadOptions(block_size=block_bytes, use_threads=True, skip_rows_after_names=skip_rows)
    return pacsv.open_csv(path, read_options=read, convert_options=convert or pacsv.ConvertOptions())


def _first_text_value(path: Path, column: str, block_bytes: int, after_rows: int = 0) -> tuple[int, str] | None:
    """(data row, value) of the first value in `column` that is not a number, from row `after_rows` + 1 on."""
    convert = pacsv.ConvertOptions(include_columns=[column], column_types={column: pa.string()},
                                   strings_can_be_null=True)
    row = after_rows
    with _open_csv(path, block_bytes, convert, skip_rows=after_rows) as reader:
        for batch in reader:
            text = batch.column(0)
            numeric = pc.match_substring_regex(text, _NUMBER, ignore_case=True).fill_null(True)
            bad = np.flatnonzero(~numeric.to_numpy(zero_copy_only=False))
            if len(bad):
                return row + int(bad[0]) + 1, text[int(bad[0])].as_py()
            row += batch.num_rows
    return None


def _csv_header(path: Path, block_bytes: int) -> pa.Schema:
    """Column names and the types pyarrow infers from the first block."""
    try:
        with _open_csv(path, block_bytes) as reader:
            return reader.schema
    except (pa.ArrowException, OSError) as exc:
        raise TableError(path, f"not a readable CSV file ({_one_line(exc)})") from None


def _conversion_error(path: Path, exc: pa.ArrowException, names: list[str], target: str, rows: int,
                      block_bytes: int, types: dict[str, pa.DataType]) -> TableError:
    """A pyarrow error met while streaming, as one line naming the column and row where it can."""
    found = re.search(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to double", str(exc))
    if found:
        column = names[int(found.group(1))]
        first = _first_text_value(path, column, block_bytes, after_rows=rows)
        where = f": {first[1]!r} at data row {first[0]}" if first else ""
        return _non_numeric_error(path, column, "text", names, target, types, where)
    detail = _one_line(exc)
    # A piece parsed on its own numbers its rows from 1: "Row #k" is data row rows + k.
    row = re.search(r"Row #(\d+): ", detail)
    if row:
        detail = detail[:row.start()] + detail[row.end():]
        return TableError(path, f"not a readable CSV file at data row {rows + int(row.group(1))} ({detail})")
    return TableError(path, f"not a readable CSV file after data row {rows} ({detail})")


def _streamed_csv_batches(path: Path, columns: list[str], block_bytes: int, on_error) -> Iterator[pa.RecordBatch]:
    """The chosen columns of a CSV as float64 batches, in the order given, from pyarrow's
    streaming reader: for a file `_data_offset` cannot cut into lines."""
    # Types are fixed to float64 rather than inferred: pyarrow infers from the first block
    # only, so an integer column with a decimal point further down would fail the read.
    convert = pacsv.ConvertOptions(column_types={c: pa.float64() for c in columns}, include_columns=columns)
    rows = 0
    try:
        with _open_csv(path, block_bytes, convert) as reader:
            for batch in reader:
                rows += batch.num_rows
                yield batch
    except pa.ArrowException as exc:
        raise on_error(exc, rows) from None


def _data_offset(path: Path, names: list[str]) -> int | None:
    """The byte offset of the first data row: the end of the first line, when that line on
    its own reads as the header pyarrow found (`names`); None when it does not (a header
    spread over lines, line ends without a newline), and the file is then streamed."""
    with open(path, "rb") as fh:
        line = fh.readline(1 << 20)
    if not line.endswith(b"\n"):
        return None
    try:
        alone = pacsv.read_csv(pa.py_buffer(line), read_options=pacsv.ReadOptions(use_threads=False))
    except pa.ArrowException:
        return None
    return len(line) if alone.schema.names == names else None


def _pieces(fh, size: int) -> Iterator[bytes]:
    """The rest of an open binary file in pieces of about `size` bytes, each ending at a
    line end. pyarrow splits its own blocks the same way: a value holds no newline
    (`ParseOptions.newlines_in_values` is off by default)."""
    rest = b""
    while block := fh.read(size):
        buffer = rest + block if rest else block
        cut = buffer.rfind(b"\n") + 1
        if cut:
            yield buffer[:cut]
            rest = buffer[cut:]
        else:
            rest = buffer  # a line longer than a piece: read on
    if rest:
        yield rest


def _csv_batches(path: Path, names: list[str], columns: list[str], offset: int, block_bytes: int, on_error,
                 digest) -> Iterator[pa.RecordBatch]:
    """The chosen columns of a CSV as float64 batches, in the order given and in row order,
    parsed CSV_PARSE_THREADS pieces at a time; `digest` is updated with every byte of the
    file, header included, as it is read."""
    read = pacsv.ReadOptions(column_names=names, use_threads=False, block_size=2 * block_bytes)
    # Types are fixed to float64 rather than inferred: pyarrow infers from the first block
    # only, so an integer column with a decimal point further down would fail the read.
    convert = pacsv.ConvertOptions(column_types={c: pa.float64() for c in columns}, include_columns=columns)

    def parse(piece: bytes) -> pa.Table:
        return pacsv.read_csv(pa.py_buffer(piece), read_options=read, convert_options=convert)

    rows = 0
    parsing: deque = deque()
    with open(path, "rb") as fh, ThreadPoolExecutor(CSV_PARSE_THREADS, thread_name_prefix="linreg-csv") as pool:
        try:
            digest.update(fh.read(offset))
            pieces = _pieces(fh, block_bytes)
            while True:
                piece = next(pieces, None)
                if piece is not None:
                    digest.update(piece)  # releases the GIL: hashing overlaps the parsing
                    parsing.append(pool.submit(parse, piece))
                # Keep every thread busy while this one checks and writes: one piece per
                # thread and one more queued. Then take the oldest, in order.
                while parsing and (piece is None or len(parsing) > CSV_PARSE_THREADS + 1):
                    table = parsing.popleft().result()
                    for batch in table.to_batches():
                        rows += batch.num_rows
                        yield batch
                if piece is None:
                    return
        except pa.ArrowException as exc:
            raise on_error(exc, rows) from None
        finally:
            for future in parsing:
                future.cancel()


def _csv_columns(path: Path, target: str, features: list[str] | None,
                 block_bytes: int) -> tuple[list[str], list[str], dict[str, pa.DataType]]:
    """The header's names, the features chosen and the first block's types; refuses a text column."""
    _sniff_text(path)
    schema = _csv_header(path, block_bytes)
    names = schema.names
    features = choose_columns(path, names, target, features)
    types = {f.name: f.type for f in schema}
    for column in [*features, target]:
        # `null`: the first block is empty in that column; the full read will tell.
        if not (_is_numeric(types[column]) or pa.types.is_null(types[column])):
            first = _first_text_value(path, column, block_bytes)
            where = f": {first[1]!r} at data row {first[0]}" if first else ""
            raise _non_numeric_error(path, column, str(types[column]), names, target, types, where)
    return names, features, types


def _source_record(path: Path) -> dict:
    """What identifies a CSV without reading it: path, size and modification time."""
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _converted_before(data_root: Path, choice: str, source: dict) -> bool:
    """Whether a conversion with this column choice records this very file, unchanged since."""
    for converted in Catalog(data_root).conversions("csv", choice):
        try:
            recorded = (pq.ParquetFile(converted).metadata.metadata or {}).get(_SOURCE_KEY)
        except (pa.ArrowException, OSError):
            continue
        if recorded is not None and json.loads(recorded) == source:
            return True
    return False


def _ingest_csv(path: Path, target: str, features: list[str] | None, data_root: Path, drop_missing: bool,
                block_bytes: int, accept: Callable[[TableDataset], object]) -> TableDataset:
    names, features, types = _csv_columns(path, target, features, block_bytes)
    columns = [*features, target]
    source = _source_record(path)
    if _converted_before(data_root, _choice_digest(target, features, drop_missing), source):
        # Seen before: one pass of sha256 decides (size and mtime alone could lie).
        source_sha256 = sha256_file(path)
        out = converted_path(data_root, "csv", source_sha256, target, features, drop_missing)
        meta = _reusable(out, source_sha256, target, features, drop_missing)
        if meta is not None:
            table = _reuse(out, meta, path)
            accept(table)
            return table

    def on_error(exc, rows):
        return _conversion_error(path, exc, names, target, rows, block_bytes, types)

    offset = _data_offset(path, names)
    if offset is None:
        known = sha256_file(path)
        source_digest: Callable[[], str] = lambda: known  # noqa: E731
        batches = _streamed_csv_batches(path, columns, block_bytes, on_error)
    else:
        digest = hashlib.sha256()
        source_digest = digest.hexdigest  # whole once every batch is read
        batches = _csv_batches(path, names, columns, offset, block_bytes, on_error, digest)

    def describe(checks: _ValueChecks) -> TableDataset:
        source_sha256 = source_digest()
        out = converted_path(data_root, "csv", source_sha256, target, features, drop_missing)
        dtypes = ["int64" if pa.types.is_integer(types[c]) and checks.integral[j] else "double"
                  for j, c in enumerate(columns)]
        table = TableDataset(
            source=str(path), source_sha256=source_sha256, path=str(out), converted=True,
            target=target, features=tuple(features), feature_dtypes=tuple(dtypes[:-1]), target_dtype=dtypes[-1],
            rows=checks.rows_kept, rows_dropped=checks.rows_seen - checks.rows_kept, drop_missing=drop_missing,
        )
        accept(table)  # before the rename: a refusal leaves nothing
        return table

    integers = tuple(j for j, c in enumerate(columns) if pa.types.is_integer(types[c]))
    checks = _ValueChecks(path, columns, drop_missing, integers)
    # Named by the content's sha256, known only once the file is read: written under a
    # temporary name, renamed at the end, removed if anything fails before.
    with pending_file(Catalog(data_root).datasets, "csv") as pending:
        table = _write_converted(pending.path, columns, batches, checks, "data rows count from 1 after the header",
                                 describe, source)
        out = Path(table.path)
        meta = _reusable(out, table.source_sha256, target, features, drop_missing)
        if meta is not None:  # the same bytes converted before, from another path: that one stays
            return _reuse(out, meta, path)
        pending.publish(out)
    log.info("converted %s to %s (%d rows, %d dropped)", path, out, table.rows, table.rows_dropped)
    return table


# ---------------------------------------------------------------------------
# Parquet


def _parquet_file(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise TableError(path, f"not a readable parquet file ({_one_line(exc)})") from None


def _parquet_batches(files: list[Path], columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
    """The chosen columns of each file, in the order given, in batches of at most `rows` rows."""
    for f in files:
        try:
            for batch in pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=rows, columns=columns):
                yield pa.RecordBatch.from_arrays([batch.column(c) for c in columns], names=columns)
        except (pa.ArrowException, OSError) as exc:
            raise TableError(f, f"not a readable parquet file ({_one_line(exc)})") from None


def _scan_parquet(root: Path, files: list[Path], columns: list[str], drop_missing: bool) -> _ValueChecks:
    """One streamed pass over the chosen columns of every file: the value checks' counts."""
    checks = _ValueChecks(root, columns, drop_missing)
    seen = 0
    for f in files:
        # Rows are numbered within each file, so that a message can name file and row.
        checks.rows_seen = 0
        where = "" if f == root else f" of {f.relative_to(root).as_posix()}"
        for batch in _parquet_batches([f], columns, row_group_rows(len(columns) - 1)):
            checks.update(batch, where)
        seen += checks.rows_seen
    checks.rows_seen = seen
    return checks


def _parquet_columns(path: Path, kind: str, target: str,
                     features: list[str] | None) -> tuple[list[Path], list[str], dict[str, pa.DataType]]:
    """The files, the features chosen and the columns' types, from the footers only; refuses a text column."""
    files = parquet_files(path) if kind == "folder" else [path]
    readers = [_parquet_file(f) for f in files]
    schema = readers[0].schema_arrow
    names = schema.names
    for f, reader in zip(files[1:], readers[1:]):
        if reader.schema_arrow.names != names:
            raise TableError(f, f"columns {', '.join(reader.schema_arrow.names)} differ from "
                                f"{files[0].name}'s: {', '.join(names)}")
    features = choose_columns(path, names, target, features)
    types = {f.name: f.type for f in schema}
    for f, reader in zip(files, readers):
        for column in [*features, target]:
            dtype = reader.schema_arrow.field(column).type
            if not _is_numeric(dtype):
                raise _non_numeric_error(f, column, str(dtype), names, target, types)
    return files, features, types


def _ingest_parquet(path: Path, kind: str, target: str, features: list[str] | None, data_root: Path,
                    drop_missing: bool, accept: Callable[[TableDataset], object]) -> TableDataset:
    files, features, types = _parquet_columns(path, kind, target, features)
    columns = [*features, target]
    source_sha256 = _folder_sha256(path, files) if kind == "folder" else sha256_file(path)
    checks = _scan_parquet(path, files, columns, drop_missing)
    row_word = "data rows count from 1" + (" in each file" if kind == "folder" else "")
    dtypes = tuple(str(types[c]) for c in columns)
    table = TableDataset(
        source=str(path), source_sha256=source_sha256, path=str(path), converted=False,
        target=target, features=tuple(features), feature_dtypes=dtypes[:-1], target_dtype=dtypes[-1],
        rows=checks.rows_kept, rows_dropped=checks.rows_seen - checks.rows_kept, drop_missing=drop_missing,
    )
    checks.check(len(features), row_word)
    accept(table)  # before any conversion is written
    if not table.rows_dropped:
        return table  # read in place: nothing is copied
    return _write_cleaned(path, files, columns, table, data_root)


def _write_cleaned(path: Path, files: list[Path], columns: list[str], table: TableDataset,
                   data_root: Path) -> TableDataset:
    """A parquet source with rows to drop: its checked rows, once, as a conversion under the data root."""
    out = converted_path(data_root, "parquet", table.source_sha256, table.target, list(table.features), True)
    meta = _reusable(out, table.source_sha256, table.target, list(table.features), True)
    if meta is not None:
        return _reuse(out, meta, path)
    checks = _ValueChecks(path, columns, drop_missing=True)
    batches = _parquet_batches(files, columns, row_group_rows(len(columns) - 1))
    with atomic_path(out) as tmp:
        return _write_converted(
            tmp, columns, batches, checks, "data rows count from 1",
            lambda _: table.model_copy(update={"path": str(out), "converted": True}),
        )


# ---------------------------------------------------------------------------
# The entry points


def check_columns(path: Path | str, target: str, features: list[str] | None = None, *,
                  block_bytes: int = CSV_BLOCK_BYTES) -> list[str]:
    """The cheap part of `ingest_table`'s checks, for a command line to refuse at once: the file is
    there and is CSV or parquet, the columns exist, none is named twice, and their types are numeric
    (a CSV's from its first block). Reads a CSV's header and first block, or parquet footers.

    Returns:
        The features, in order.

    Raises:
        TableError: one line naming the file and the column at fault.
    """
    path = Path(path).absolute()
    kind = _table_kind(path)
    if kind == "csv":
        return _csv_columns(path, target, features, block_bytes)[1]
    return _parquet_columns(path, kind, target, features)[1]


def ingest_table(
    path: Path | str, target: str, features: list[str] | None = None, data_root: Path | str = Path("data"),
    drop_missing: bool = False, *, block_bytes: int = CSV_BLOCK_BYTES,
    accept: Callable[[TableDataset], object] | None = None,
) -> TableDataset:
    """Check a user's CSV or parquet table and return a reference to a parquet of its chosen columns.

    A CSV is converted once (streamed, atomically) to float64 parquet under
    `<data_root>/datasets/`, named by its sha256 and the column choice, and
    reused after; a parquet file or folder is read in place.

    Args:
        path: a .csv file, a .parquet file, or a folder of .parquet files (one dataset).
        target: the column to predict.
        features: the predictor columns, in the order wanted; None: every column but the target, in file order.
        data_root: where conversions go (`datasets/` under it).
        drop_missing: drop rows with a missing or infinite value in a chosen column, rather than refuse them.
        block_bytes: bytes per block of the CSV reader (memory grows with it).
        accept: a further check of the finished table (a run's holdout, say), raising `TableError`
            to refuse it; called before any conversion is published, so a refusal leaves nothing.

    Returns:
        The checked table: source, digests, columns, source dtypes, rows and rows dropped.

    Raises:
        TableError: one line naming the file and the column, row or count at fault; nothing is left written.
    """
    path = Path(path).absolute()
    data_root = Path(data_root).resolve()  # absolute: workers may run elsewhere
    kind = _table_kind(path)
    accept = accept or (lambda table: None)
    if kind == "csv":
        return _ingest_csv(path, target, features, data_root, drop_missing, block_bytes, accept)
    return _ingest_parquet(path, kind, target, features, data_root, drop_missing, accept)


PARTS = ("all", "train", "holdout")


@dataclass(frozen=True)
class TableSource:
    """A checked table as a solver reads it: a `linreg.data.DataSource` with named columns.

    x is (k, d) float64 in feature order and y (k,) float64; only the chosen
    columns are read. Held in memory when x and y fit `memory_budget` bytes, else
    read one row group at a time; every chunk is checked for non-finite values.
    With a holdout, `part` picks the rows: "train" (those no solver may see held
    out), "holdout" (only those) or "all" (`linreg.data.holdout_mask` decides).

    Attributes:
        table: what `ingest_table` returned.
        memory_budget: bytes of x and y that may be held at once.
        seed: for solvers that draw (initial values, shuffles) and for the holdout split.
        holdout: the fraction of rows held out, [0, 1).
        part: "all", "train" or "holdout".
    """

    table: TableDataset
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    seed: int = 0
    holdout: float = 0.0
    part: str = "all"
    _groups: tuple = field(init=False, repr=False, compare=False)
    _starts: tuple = field(init=False, repr=False, compare=False)
    _rows: int = field(init=False, repr=False, compare=False)
    _held: list = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.part not in PARTS:
            raise ValueError(f"part: {self.part!r} is not one of {', '.join(PARTS)}")
        root = Path(self.table.path)
        files = parquet_files(root) if root.is_dir() else [root]
        groups, starts, start = [], [], 0
        for f in files:
            reader = _parquet_file(f)
            for i in range(reader.num_row_groups):
                rows = reader.metadata.row_group(i).num_rows
                if rows:
                    groups.append((f, i))
                    starts.append(start)
                    start += rows
        object.__setattr__(self, "_groups", tuple(groups))
        object.__setattr__(self, "_starts", tuple(starts))
        rows = self.table.rows
        if self._splits:
            held_out = holdout_count(rows, self.holdout, self.seed)
            rows = held_out if self.part == "holdout" else rows - held_out
        object.__setattr__(self, "_rows", rows)
        object.__setattr__(self, "_held", [])

    @property
    def _splits(self) -> bool:
        return self.holdout > 0.0 and self.part != "all"

    @property
    def n(self) -> int:
        """Rows of this part."""
        return self._rows

    @property
    def d(self) -> int:
        return self.table.d

    @property
    def spec(self) -> SourceSpec:
        """n, d and seed: what a solver's draws are seeded from."""
        return SourceSpec(n=self.n, d=self.d, seed=self.seed)

    @property
    def feature_names(self) -> list[str]:
        return list(self.table.features)

    @property
    def target(self) -> str:
        return self.table.target

    @property
    def row_groups(self) -> int:
        """Non-empty row groups over all files: the chunks `iter_row_groups` can visit in any order."""
        return len(self._groups)

    def _xy(self, batch: pa.RecordBatch | pa.Table, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """x and y of `batch`, whose first row is the table's row `start`, restricted to this part."""
        features = self.table.features
        if len(features) == 1:
            x = _float64(_contiguous(batch.column(features[0]))).reshape(-1, 1)
        else:
            x = np.column_stack([_float64(_contiguous(batch.column(c))) for c in features])
        y = _float64(_contiguous(batch.column(self.table.target)))
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise TableError(self.table.path, "non-finite values: the file changed since it was ingested")
        if self._splits:
            keep = holdout_mask(start, len(y), self.holdout, self.seed)
            if self.part == "train":
                keep = ~keep
            x, y = x[keep], y[keep]
        return x, y

    def arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(x (n, d), y (n,)) when they fit the memory budget (read once, then kept), else None."""
        if self.table.rows * (self.d + 1) * 8 > self.memory_budget:
            return None
        if not self._held:
            with _read_errors(self.table.path):
                tables = [_reader(f).read(columns=self.table.columns) for f in _in_order(self._groups)]
            self._held.append(self._xy(pa.concat_tables(tables)))
        return self._held[0]

    def iter_chunks(self, rows: int = CHUNK_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (x, y) of at most `rows` rows, in order (never across a file boundary)."""
        held = self.arrays() if self._held else None
        if held is not None:
            for start in range(0, self.n, rows):
                yield held[0][start : start + rows], held[1][start : start + rows]
            return
        start = 0
        for f in _in_order(self._groups):
            with _read_errors(f):
                batches = _reader(f).iter_batches(batch_size=rows, columns=self.table.columns)
                for batch in batches:
                    if batch.num_rows:
                        x, y = self._xy(batch, start)
                        start += batch.num_rows
                        if len(y):
                            yield x, y

    def iter_row_groups(self, order: Iterable[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (x, y) of each row group in `order` (indices into range(row_groups))."""
        readers: dict[Path, pq.ParquetFile] = {}
        for index in order:
            f, group = self._groups[int(index)]
            with _read_errors(f):
                group_table = readers.setdefault(f, _reader(f)).read_row_group(group, columns=self.table.columns)
            yield self._xy(group_table, self._starts[int(index)])

    def head(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `rows` rows (all, when there are fewer)."""
        xs, ys, count = [], [], 0
        for x, y in self.iter_chunks(rows):
            xs.append(x[: rows - count])
            ys.append(y[: rows - count])
            count += len(ys[-1])
            if count >= rows:
                break
        if not xs:
            return np.empty((0, self.d)), np.empty(0)
        return np.concatenate(xs), np.concatenate(ys)


def _reader(path: Path) -> pq.ParquetFile:
    # pre_buffer=False: otherwise pyarrow preloads the whole file. Page CRCs, where
    # the file has them (conversions do), are checked as pages are read.
    return pq.ParquetFile(path, pre_buffer=False, page_checksum_verification=True)


@contextmanager
def _read_errors(path: Path | str) -> Iterator[None]:
    """Turn a failed parquet read (a damaged page, a bad checksum) into one TableError line."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        raise TableError(path, f"not a readable parquet file ({_one_line(exc)})") from None


def _contiguous(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _in_order(groups: tuple) -> list[Path]:
    """The files of `groups`, each once, in order."""
    return list(dict.fromkeys(f for f, _ in groups))


def open_table(table: TableDataset, memory_budget: int = DEFAULT_MEMORY_BUDGET, seed: int = 0,
               verify: bool = True, holdout: float = 0.0, part: str = "all") -> TableSource:
    """A reader over an ingested table, after checking that its parquet is still what was ingested.

    Args:
        memory_budget: bytes of x and y that may be held in memory; more is streamed by row group.
        seed: the source's seed, for solvers that draw, and for the holdout split.
        holdout, part: the fraction of rows held out, and which rows to read (`TableSource`).
        verify: check that the data is what was ingested: a source read in place by its
            sha256 (one read of it), a conversion by the table its footer records.

    Raises:
        TableError: the parquet is missing, unreadable, changed, or lacks a chosen column.
    """
    path = Path(table.path)
    if not path.exists():
        raise TableError(path, "no such file or folder: ingest the table again")
    if verify and table.converted:
        fields = {k: v for k, v in _recorded(path).items() if k != "format_version"}
        if TableDataset(source=table.source, path=table.path, converted=True, **fields) != table:
            raise TableError(path, "records another table than the one given: ingest the table again")
    elif verify and data_sha256(path) != table.source_sha256:
        raise TableError(path, f"sha256 differs from the one ingested ({table.source_sha256[:12]}...): "
                               "the file changed; ingest it again")
    source = TableSource(table=table, memory_budget=memory_budget, seed=seed, holdout=holdout, part=part)
    rows = sum(pq.ParquetFile(f).metadata.row_group(g).num_rows for f, g in source._groups)
    if rows != table.rows:
        raise TableError(path, f"{rows} rows, {table.rows} ingested: the file changed; ingest it again")
    return source
