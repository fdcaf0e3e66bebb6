"""Reading an ingested table at run time: `open_table` checks it is still what was ingested, and
`TableSource` gives a solver its rows, in memory within a budget or one row group at a time."""

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from linreg.data import CHUNK_ROWS, SourceSpec, holdout_count, holdout_mask
from linreg.storage.ingest.checks import float64_values
from linreg.storage.ingest.convert import recorded
from linreg.storage.ingest.model import TableDataset, TableError
from linreg.storage.ingest.parquet_reader import parquet_file, read_errors, table_files
from linreg.storage.ingest.sources import Location, data_sha256, locate
from linreg.storage.source import DEFAULT_MEMORY_BUDGET

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
    _stored: int = field(init=False, repr=False, compare=False)
    _rows: int = field(init=False, repr=False, compare=False)
    _held: list = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.part not in PARTS:
            raise ValueError(f"part: {self.part!r} is not one of {', '.join(PARTS)}")
        files = table_files(locate(self.table.path))
        groups, starts, start = [], [], 0
        for f in files:
            reader = parquet_file(f)
            for i in range(reader.num_row_groups):
                rows = reader.metadata.row_group(i).num_rows
                if rows:
                    groups.append((f, i))
                    starts.append(start)
                    start += rows
        object.__setattr__(self, "_groups", tuple(groups))
        object.__setattr__(self, "_starts", tuple(starts))
        object.__setattr__(self, "_stored", start)  # rows in the files, before any split
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
            x = float64_values(_contiguous(batch.column(features[0]))).reshape(-1, 1)
        else:
            x = np.column_stack([float64_values(_contiguous(batch.column(c))) for c in features])
        y = float64_values(_contiguous(batch.column(self.table.target)))
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
            # Each file's columns as float64 first: a folder may store a column as int32 in one
            # file and int64 or double in another.
            schema = pa.schema([pa.field(c, pa.float64()) for c in self.table.columns])
            with read_errors(self.table.path):
                tables = [_reader(f).read(columns=self.table.columns).cast(schema) for f in _in_order(self._groups)]
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
            with read_errors(f.name):
                batches = _reader(f).iter_batches(batch_size=rows, columns=self.table.columns)
                for batch in batches:
                    if batch.num_rows:
                        x, y = self._xy(batch, start)
                        start += batch.num_rows
                        if len(y):
                            yield x, y

    def iter_row_groups(self, order: Iterable[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (x, y) of each row group in `order` (indices into range(row_groups))."""
        readers: dict[str, pa.parquet.ParquetFile] = {}
        for index in order:
            f, group = self._groups[int(index)]
            with read_errors(f.name):
                group_table = readers.setdefault(f.path, _reader(f)).read_row_group(group, columns=self.table.columns)
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


def _reader(f: Location):
    """A file's reader with page CRCs checked as pages are read (conversions have them)."""
    return parquet_file(f, checksums=True)


def _contiguous(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _in_order(groups: tuple) -> list[Location]:
    """The files of `groups`, each once, in order."""
    return list({f.path: f for f, _ in groups}.values())


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
    path = table.path
    try:
        location = locate(path)
    except TableError:
        raise TableError(path, "no such file or folder: ingest the table again") from None
    if verify and table.converted:
        fields = {k: v for k, v in recorded(path).items() if k != "format_version"}
        if TableDataset(source=table.source, path=table.path, converted=True, **fields) != table:
            raise TableError(path, "records another table than the one given: ingest the table again")
    elif verify and data_sha256(location) != table.source_sha256:
        raise TableError(path, f"sha256 differs from the one ingested ({table.source_sha256[:12]}...): "
                               "the file changed; ingest it again")
    source = TableSource(table=table, memory_budget=memory_budget, seed=seed, holdout=holdout, part=part)
    if source._stored != table.rows:
        raise TableError(path, f"{source._stored} rows, {table.rows} ingested: the file changed; ingest it again")
    return source
