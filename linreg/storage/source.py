"""Opening a checked dataset: in memory within a budget, else a source read one row group at a time."""

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from linreg.data import CHUNK_ROWS, Dataset
from linreg.specs import DataSpec
from linreg.storage.atomic import sha256_file
from linreg.storage.parquet import (
    DatasetError, DatasetRef, check_digest, check_finite, check_layout, columns, dataset_bytes, load_dataset,
    missing_file_error,
)

# Holding data costs a multiple of its size: reading it (file bytes, arrow table,
# arrays) and the solvers' own copies (a float32 tensor, an [x, 1] design and its
# shuffled gather). Several training tasks hold it at once under the threads
# runner; with 256 MiB each, 10 million rows of 10 features (880 MB) stream, and a
# run of two solvers stays under 3 GiB at any n.
DEFAULT_MEMORY_BUDGET = 256 << 20


@dataclass(frozen=True)
class ParquetSource:
    """A checked dataset file read in chunks: a `linreg.data.DataSource` that is never held whole.

    Every chunk is checked for non-finite values as it is read.
    """

    path: Path
    spec: DataSpec

    @property
    def n(self) -> int:
        return self.spec.n

    @property
    def d(self) -> int:
        return self.spec.d

    def arrays(self) -> None:
        """None: this data is streamed, never in memory."""
        return None

    def iter_chunks(self, rows: int = CHUNK_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # pre_buffer=False: otherwise pyarrow preloads the whole file.
        reader = pq.ParquetFile(self.path, pre_buffer=False)
        for batch in reader.iter_batches(batch_size=rows):
            x, y = columns(batch, self.d)
            check_finite(self.path, x, y)
            yield x, y

    def head(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        return next(self.iter_chunks(rows))

    @property
    def row_groups(self) -> int:
        """Row groups in the file: the chunks `iter_row_groups` can visit in any order."""
        return pq.ParquetFile(self.path).num_row_groups

    def iter_row_groups(self, order: Iterable[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (x, y) of each row group in `order` (indices into range(row_groups)), checked as read."""
        reader = pq.ParquetFile(self.path, pre_buffer=False)
        for index in order:
            x, y = columns(reader.read_row_group(int(index)), self.d)
            check_finite(self.path, x, y)
            yield x, y

    def check_values(self) -> None:
        """Read every row group once, refusing the file at the first non-finite value.

        Raises:
            DatasetError: naming the file.
        """
        reader = pq.ParquetFile(self.path, pre_buffer=False)
        for batch in reader.iter_batches(batch_size=CHUNK_ROWS):
            check_finite(self.path, *columns(batch, self.d))


def open_source(path: Path, spec: DataSpec) -> ParquetSource:
    """A chunked source over `path`, once its layout matches `spec` (values are checked as read).

    Raises:
        DatasetError: missing, unreadable, or not laid out as `spec` says.
    """
    if not Path(path).exists():
        raise missing_file_error(path)
    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(path, f"not a readable parquet file ({exc})") from None
    check_layout(path, reader.schema_arrow, reader.metadata.num_rows, spec)
    return ParquetSource(path=Path(path), spec=spec)


def open_dataset(ref: DatasetRef, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> "Dataset | ParquetSource":
    """Check a dataset file and return it in memory if x and y fit `memory_budget` bytes, else as a chunked source.

    Raises:
        DatasetError: naming the file and the problem.
    """
    path = Path(ref.path)
    if dataset_bytes(ref.spec) <= memory_budget:
        return load_dataset(path, ref.spec, ref.sha256)[0]
    if not path.exists():
        raise missing_file_error(path)
    check_digest(path, sha256_file(path), ref.sha256)
    return open_source(path, ref.spec)
