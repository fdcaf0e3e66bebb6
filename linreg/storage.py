"""All file I/O: atomic writes, dataset parquet with schema and digest checks."""

import csv
import hashlib
import io
import json
import logging
import os
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from linreg.data import CHUNK_ROWS, Dataset, iter_dataset_chunks
from linreg.specs import DataSpec

FORMAT_VERSION = 1
log = logging.getLogger("linreg.storage")
_META = "linreg."


class DatasetError(ValueError):
    """A dataset file that is missing, damaged or not what its reference says."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


class DatasetRef(BaseModel):
    """A small, hashable handle to a dataset file: what crosses task boundaries."""

    model_config = ConfigDict(frozen=True)

    path: str
    sha256: str
    spec: DataSpec


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success.

    A crash or interruption leaves `path` as it was (absent or the old file),
    never half-written, and the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(path: Path, payload: bytes) -> Path:
    """Write `payload` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


def write_csv(path: Path, rows: list[dict]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def spec_digest(spec: DataSpec) -> str:
    """A short stable name for a spec: the same spec always maps to the same file."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]


def dataset_path(root: Path, spec: DataSpec) -> Path:
    return Path(root) / "datasets" / f"linreg-{spec_digest(spec)}.parquet"


def _feature_names(d: int) -> list[str]:
    return [f"x{i}" for i in range(d)]


def _schema(spec: DataSpec) -> pa.Schema:
    """float64 columns x0..x{d-1}, y; the spec and a format version in the key-value metadata."""
    fields = {
        "format_version": FORMAT_VERSION,
        "n": spec.n,
        "d": spec.d,
        "weights": spec.weights,
        "bias": spec.bias,
        "noise": spec.noise,
        "seed": spec.seed,
    }
    metadata = {f"{_META}{k}".encode(): json.dumps(v).encode() for k, v in fields.items()}
    columns = [pa.field(name, pa.float64(), nullable=False) for name in _feature_names(spec.d) + ["y"]]
    return pa.schema(columns, metadata=metadata)


class _HashingSink(io.RawIOBase):
    """A write-only file that digests every byte on its way to disk: no second pass to hash."""

    def __init__(self, fh):
        self._fh, self._digest, self._position = fh, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._digest.update(data)
        self._position += len(data)
        return self._fh.write(data)

    def tell(self) -> int:
        return self._position

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def write_dataset_chunks(
    spec: DataSpec, chunks: Iterable[tuple[np.ndarray, np.ndarray]], path: Path,
    progress: Callable[[int], None] | None = None,
) -> DatasetRef:
    """Stream (x, y) chunks into a parquet file, one row group each, atomically.

    Random floats do not compress and dictionary encoding only grows them, so
    both are off. The sha256 is taken while writing.

    Args:
        chunks: (k, d) features and (k,) targets, in row order.
        progress: called with the rows of each chunk once it is written.
    """
    schema = _schema(spec)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        sink = _HashingSink(fh)
        with pq.ParquetWriter(sink, schema, compression="none", use_dictionary=False) as writer:
            for x, y in chunks:
                arrays = [pa.array(x[:, j]) for j in range(x.shape[1])] + [pa.array(y)]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=len(y))
                if progress:
                    progress(len(y))
    return DatasetRef(path=str(path), sha256=sink.hexdigest(), spec=spec)


def write_dataset(dataset: Dataset, path: Path) -> DatasetRef:
    """Write an in-memory dataset (see write_dataset_chunks)."""
    return write_dataset_chunks(dataset.spec, dataset.iter_chunks(), path)


def _spec_from_metadata(path: Path, meta: dict[bytes, bytes] | None) -> DataSpec:
    meta = meta or {}
    try:
        fields = {k.decode()[len(_META):]: json.loads(v) for k, v in meta.items() if k.startswith(_META.encode())}
        version = fields.pop("format_version")
        fields.pop("d")
    except (KeyError, ValueError) as exc:
        raise DatasetError(path, f"missing or unreadable linreg metadata ({exc})") from None
    if version != FORMAT_VERSION:
        raise DatasetError(path, f"format version {version}, expected {FORMAT_VERSION}")
    return DataSpec(**fields)


def _check_layout(path: Path, schema: pa.Schema, rows: int, expected_spec: DataSpec) -> None:
    """Refuse a file whose metadata, columns, types or row count are not what the spec says."""
    spec = _spec_from_metadata(path, schema.metadata)
    expected = _feature_names(spec.d) + ["y"]
    if schema.names != expected:
        raise DatasetError(path, f"columns {schema.names}, expected {expected}")
    wrong = [f.name for f in schema if f.type != pa.float64()]
    if wrong:
        raise DatasetError(path, f"columns {wrong} are not float64")
    if rows != spec.n:
        raise DatasetError(path, f"{rows} rows, metadata says n={spec.n}")
    if spec != expected_spec:
        raise DatasetError(path, "metadata spec differs from the expected spec")


def _check_finite(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DatasetError(path, "contains NaN or infinite values")


def _columns(table: pa.Table | pa.RecordBatch, d: int) -> tuple[np.ndarray, np.ndarray]:
    if d == 1:  # zero-copy view of the column
        x = table.column(0).to_numpy().reshape(-1, 1)
    else:
        x = np.column_stack([table.column(j).to_numpy() for j in range(d)])
    return x, table.column(d).to_numpy()


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(
            path, f"not found on {socket.gethostname()}; remote workers need the data root on shared storage"
        ) from None
    except OSError as exc:
        raise DatasetError(path, f"cannot be read ({exc.strerror})") from None


def _check_digest(path: Path, actual: str, expected: str) -> None:
    if actual != expected:
        raise DatasetError(path, f"sha256 {actual[:12]}... does not match the reference {expected[:12]}...")


def _load(path: Path, spec: DataSpec, sha256: str | None) -> tuple[Dataset, str]:
    """Read and check one dataset file in one I/O pass; return it with its digest."""
    payload = _read_bytes(path)
    actual = hashlib.sha256(payload).hexdigest()
    if sha256 is not None:
        _check_digest(path, actual, sha256)
    try:
        table = pq.read_table(pa.BufferReader(payload))
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(path, f"not a readable parquet file ({exc})") from None
    _check_layout(path, table.schema, table.num_rows, spec)
    x, y = _columns(table, spec.d)
    _check_finite(path, x, y)
    return Dataset(x=x, y=y, spec=spec), actual


@dataclass(frozen=True)
class ParquetSource:
    """A checked dataset file read in chunks, for data larger than a task's memory budget.

    Offers the same `n`, `d`, `spec`, `iter_chunks` and `head` as an in-memory
    Dataset; every chunk is checked for non-finite values as it is read.
    """

    path: Path
    spec: DataSpec

    @property
    def n(self) -> int:
        return self.spec.n

    @property
    def d(self) -> int:
        return self.spec.d

    def iter_chunks(self, rows: int = CHUNK_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # pre_buffer=False: otherwise pyarrow preloads the whole file.
        reader = pq.ParquetFile(self.path, pre_buffer=False)
        for batch in reader.iter_batches(batch_size=rows):
            x, y = _columns(batch, self.d)
            _check_finite(self.path, x, y)
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
            x, y = _columns(reader.read_row_group(int(index)), self.d)
            _check_finite(self.path, x, y)
            yield x, y


def _open_source(path: Path, spec: DataSpec) -> ParquetSource:
    try:
        reader = pq.ParquetFile(path)
    except FileNotFoundError:
        _read_bytes(path)  # raises the "not found on HOST" error
        raise
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(path, f"not a readable parquet file ({exc})") from None
    _check_layout(path, reader.schema_arrow, reader.metadata.num_rows, spec)
    return ParquetSource(path=path, spec=spec)


def dataset_bytes(spec: DataSpec) -> int:
    """Memory that x and y take as float64 arrays."""
    return spec.n * (spec.d + 1) * 8


def open_dataset(ref: DatasetRef, memory_budget: int | None = None) -> "Dataset | ParquetSource":
    """Check a dataset file and return it in memory if it fits the budget, else as a chunked source.

    Raises:
        DatasetError: naming the file and the problem.
    """
    budget = memory_budget if memory_budget is not None else memory_budget_bytes()
    path = Path(ref.path)
    if dataset_bytes(ref.spec) <= budget:
        return _load(path, ref.spec, ref.sha256)[0]
    if not path.exists():
        _read_bytes(path)
    _check_digest(path, sha256_file(path), ref.sha256)
    return _open_source(path, ref.spec)


# Holding data costs a multiple of its size: reading it (file bytes, arrow table,
# arrays) and the solvers' own copies (a float32 tensor, an [x, 1] design and its
# shuffled gather). Several training tasks hold it at once under the threads
# runner; with 256 MiB each, 10 million rows of 10 features (880 MB) stream, and a
# run of two solvers stays under 3 GiB at any n.
DEFAULT_MEMORY_BUDGET = 256 << 20


def memory_budget_bytes() -> int:
    """Bytes of x and y one task may hold in memory: LINREG_MEMORY_BUDGET, default 256 MiB."""
    return int(os.environ.get("LINREG_MEMORY_BUDGET", DEFAULT_MEMORY_BUDGET))


def read_dataset(ref: DatasetRef) -> Dataset:
    """Read a dataset into memory, refusing it unless digest, schema, metadata and values all check out.

    Raises:
        DatasetError: naming the file and the problem.
    """
    return _load(Path(ref.path), ref.spec, ref.sha256)[0]


def existing_dataset(path: Path, spec: DataSpec) -> DatasetRef | None:
    """Return a reference to a valid dataset already at `path` for `spec`, else None.

    Raises:
        DatasetError: a file is there but is damaged or holds another spec.
    """
    path = Path(path)
    if not path.exists():
        return None
    if dataset_bytes(spec) <= memory_budget_bytes():
        return DatasetRef(path=str(path), sha256=_load(path, spec, None)[1], spec=spec)
    ref = DatasetRef(path=str(path), sha256=sha256_file(path), spec=spec)
    for _ in _open_source(path, spec).iter_chunks():  # every value checked, chunk by chunk
        pass
    return ref


def ensure_dataset(
    spec: DataSpec, root: Path, progress: Callable[[int], None] | None = None
) -> tuple[DatasetRef, bool]:
    """Return a reference to the dataset for `spec` under `root`, generating it if needed.

    The file's name is derived from the spec, so the same spec reuses the same
    file. A file that is there but fails its checks is regenerated once, never
    used. Generation streams chunks into row groups: memory stays flat in n.

    Args:
        progress: called with rows written, as generation goes.

    Returns:
        (reference, reused): reused is False when the file was (re)written.
    """
    path = dataset_path(Path(root).resolve(), spec)  # absolute: workers may run elsewhere
    try:
        ref = existing_dataset(path, spec)
    except DatasetError as exc:
        log.warning("regenerating damaged cached dataset: %s", exc)
        ref = None
    if ref is not None:
        return ref, True
    return write_dataset_chunks(spec, iter_dataset_chunks(spec), path, progress), False


def run_dir(root: Path, run_id: str) -> Path:
    """Where one run's summary and plots go."""
    return Path(root) / "runs" / run_id
