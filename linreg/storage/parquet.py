"""The dataset file: float64 columns x0..x{d-1}, y, with the spec in the parquet metadata.

Written in row groups while hashed, read back only after its digest, layout
and values check out. Every refusal is a `DatasetError` naming the file.
"""

import hashlib
import io
import json
import socket
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from linreg.data import Dataset
from linreg.specs import DataSpec
from linreg.storage.atomic import atomic_path

FORMAT_VERSION = 1
_META = "linreg."


class DatasetError(ValueError):
    """A dataset file that is missing, damaged or not what its reference says."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)


class DatasetRef(BaseModel):
    """A small, hashable handle to a dataset file: what crosses task boundaries."""

    model_config = ConfigDict(frozen=True)

    path: str
    sha256: str
    spec: DataSpec

    @property
    def n(self) -> int:
        return self.spec.n

    @property
    def d(self) -> int:
        return self.spec.d


def feature_names(d: int) -> list[str]:
    return [f"x{i}" for i in range(d)]


def dataset_bytes(spec: DataSpec) -> int:
    """Memory that x and y take as float64 arrays."""
    return spec.n * (spec.d + 1) * 8


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
    columns = [pa.field(name, pa.float64(), nullable=False) for name in feature_names(spec.d) + ["y"]]
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


def check_layout(path: Path, schema: pa.Schema, rows: int, expected_spec: DataSpec) -> None:
    """Refuse a file whose metadata, columns, types or row count are not what the spec says."""
    spec = _spec_from_metadata(path, schema.metadata)
    expected = feature_names(spec.d) + ["y"]
    if schema.names != expected:
        raise DatasetError(path, f"columns {schema.names}, expected {expected}")
    wrong = [f.name for f in schema if f.type != pa.float64()]
    if wrong:
        raise DatasetError(path, f"columns {wrong} are not float64")
    if rows != spec.n:
        raise DatasetError(path, f"{rows} rows, metadata says n={spec.n}")
    if spec != expected_spec:
        raise DatasetError(path, "metadata spec differs from the expected spec")


def check_finite(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DatasetError(path, "contains NaN or infinite values")


def check_digest(path: Path, actual: str, expected: str) -> None:
    if actual != expected:
        raise DatasetError(path, f"sha256 {actual[:12]}... does not match the reference {expected[:12]}...")


def columns(table: pa.Table | pa.RecordBatch, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(x (k, d), y (k,)) of a table or batch, without a copy when d = 1."""
    if d == 1:  # zero-copy view of the column
        x = table.column(0).to_numpy().reshape(-1, 1)
    else:
        x = np.column_stack([table.column(j).to_numpy() for j in range(d)])
    return x, table.column(d).to_numpy()


def missing_file_error(path: Path) -> DatasetError:
    return DatasetError(
        path, f"not found on {socket.gethostname()}; remote workers need the data root on shared storage"
    )


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise missing_file_error(path) from None
    except OSError as exc:
        raise DatasetError(path, f"cannot be read ({exc.strerror})") from None


def load_dataset(path: Path, spec: DataSpec, sha256: str | None) -> tuple[Dataset, str]:
    """Read and check one dataset file in one I/O pass; return it with its digest.

    Args:
        sha256: the digest the file must have; None accepts any (it is returned).

    Raises:
        DatasetError: naming the file and the problem.
    """
    payload = _read_bytes(path)
    actual = hashlib.sha256(payload).hexdigest()
    if sha256 is not None:
        check_digest(path, actual, sha256)
    try:
        table = pq.read_table(pa.BufferReader(payload))
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(path, f"not a readable parquet file ({exc})") from None
    check_layout(path, table.schema, table.num_rows, spec)
    x, y = columns(table, spec.d)
    check_finite(path, x, y)
    return Dataset(x=x, y=y, spec=spec), actual


def read_dataset(ref: DatasetRef) -> Dataset:
    """Read a dataset into memory, refusing it unless digest, schema, metadata and values all check out.

    Raises:
        DatasetError: naming the file and the problem.
    """
    return load_dataset(Path(ref.path), ref.spec, ref.sha256)[0]
