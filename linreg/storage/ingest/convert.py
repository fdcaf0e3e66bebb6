"""Writing a conversion: a table's chosen columns as float64 parquet under the data root,
named by the source's sha256 and the column choice, recording the table in its footer."""

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from linreg.data import CHUNK_ROWS
from linreg.storage.catalog import Catalog
from linreg.storage.ingest.checks import ValueChecks
from linreg.storage.ingest.model import TABLE_FORMAT_VERSION, TableDataset, TableError
from linreg.storage.ingest.sources import one_line

log = logging.getLogger("linreg.storage")

META_KEY = b"linreg.table"
SOURCE_KEY = b"linreg.source"  # the CSV converted: path, size and mtime, to find it again
# Row groups of at most 64 MiB of float64 x and y (and at most CHUNK_ROWS rows, as
# generated files have): one group fits any memory budget a streamed fit runs under.
ROW_GROUP_BYTES = 64 << 20


@dataclass(frozen=True)
class Choice:
    """What a conversion holds of its source: the columns, whether bad rows were dropped, and
    how a CSV was read (its dialect: the same bytes read another way are another table)."""

    target: str
    features: tuple[str, ...]
    drop_missing: bool
    delimiter: str = ""
    decimal: str = "."
    na_values: tuple[str, ...] = ()

    def digest(self) -> str:
        fields = asdict(self)
        fields["features"], fields["na_values"] = list(self.features), list(self.na_values)
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:12]

    def recorded(self) -> dict:
        """The fields a footer records for this choice, as `TableDataset` dumps them."""
        return {"target": self.target, "features": list(self.features), "drop_missing": self.drop_missing,
                "delimiter": self.delimiter, "decimal": self.decimal, "na_values": list(self.na_values)}


def converted_path(data_root: Path, prefix: str, source_sha256: str, choice: Choice) -> Path:
    """Where a conversion of a source with this digest and column choice lives under the data root."""
    return Catalog(data_root).conversion(prefix, source_sha256, choice.digest())


def row_group_rows(d: int) -> int:
    """Rows per written row group: at most ROW_GROUP_BYTES of float64 x and y, at most CHUNK_ROWS."""
    return max(1, min(CHUNK_ROWS, ROW_GROUP_BYTES // ((d + 1) * 8)))


class RowGroupWriter:
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


def table_metadata(table: TableDataset) -> dict[bytes, bytes]:
    fields = table.model_dump(mode="json", exclude={"source", "path", "converted"})
    return {META_KEY: json.dumps({"format_version": TABLE_FORMAT_VERSION, **fields}).encode()}


def write_converted(
    tmp: Path, columns: list[str], batches: Iterable[pa.RecordBatch], checks: ValueChecks,
    row_word: str, describe: Callable[[ValueChecks], TableDataset], source: dict | None = None,
) -> TableDataset:
    """Stream checked float64 batches into the temporary file `tmp`; refuse bad values at the end.

    The caller renames `tmp` once this returns, and removes it if this raises: nothing
    half-written is ever under a real name. Random-looking floats neither compress nor
    dictionary-encode, so both are off (as for generated datasets); page CRCs cost
    little and catch a damaged page.

    Args:
        batches: the chosen columns (features, then target) as float64, in row order.
        describe: called with the finished checks (once every batch is read), returns
            the TableDataset to record.
        source: recorded beside it under `SOURCE_KEY` (a CSV's path, size and mtime).

    Returns:
        The TableDataset recorded in the file's metadata.
    """
    schema = pa.schema([pa.field(c, pa.float64(), nullable=False) for c in columns])
    with pq.ParquetWriter(str(tmp), schema, filesystem=pafs.LocalFileSystem(), compression="none",
                          use_dictionary=False, write_statistics=False, write_page_checksum=True) as writer:
        groups = RowGroupWriter(writer, row_group_rows(len(columns) - 1))
        for batch in batches:
            batch = checks.update(batch)
            if checks.drop_missing or not checks.bad:  # a refused file need not be written on
                groups.add(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
        checks.check(len(columns) - 1, row_word)
        groups.close()
        table = describe(checks)
        meta = table_metadata(table)
        if source is not None:
            meta[SOURCE_KEY] = json.dumps(source).encode()
        writer.add_key_value_metadata(meta)
    return table


def recorded(path: Path) -> dict:
    """The table a conversion's footer records.

    Raises:
        TableError: unreadable, or without the record.
    """
    try:
        return json.loads((pq.ParquetFile(path).metadata.metadata or {})[META_KEY])
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise TableError(path, f"not a readable converted table ({one_line(exc)})") from None


def reusable(out: Path, source_sha256: str, choice: Choice) -> dict | None:
    """The recorded fields of a conversion already at `out` for this source and choice, else None."""
    if not out.exists():
        return None
    try:
        meta = recorded(out)
    except TableError as exc:
        log.warning("rewriting damaged converted table: %s", exc)
        return None
    expected = {"format_version": TABLE_FORMAT_VERSION, "source_sha256": source_sha256, **choice.recorded()}
    if any(meta.get(k) != v for k, v in expected.items()):
        log.warning("rewriting converted table %s: its metadata does not match the source", out)
        return None
    return meta


def reuse(out: Path, meta: dict, source: str) -> TableDataset:
    fields = {k: v for k, v in meta.items() if k != "format_version"}
    return TableDataset(source=source, path=str(out), converted=True, **fields)


def converted_before(data_root: Path, choice: Choice, source: dict) -> bool:
    """Whether a conversion with this column choice records this very file, unchanged since."""
    for converted in Catalog(data_root).conversions("csv", choice.digest()):
        try:
            found = (pq.ParquetFile(converted).metadata.metadata or {}).get(SOURCE_KEY)
        except (pa.ArrowException, OSError):
            continue
        if found is not None and json.loads(found) == source:
            return True
    return False
