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
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from linreg.data import Dataset, make_dataset
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


def _metadata(spec: DataSpec) -> dict[bytes, bytes]:
    fields = {
        "format_version": FORMAT_VERSION,
        "n": spec.n,
        "d": spec.d,
        "weights": spec.weights,
        "bias": spec.bias,
        "noise": spec.noise,
        "seed": spec.seed,
    }
    return {f"{_META}{k}".encode(): json.dumps(v).encode() for k, v in fields.items()}


def write_dataset(dataset: Dataset, path: Path) -> DatasetRef:
    """Write features and target as float64 parquet columns, atomically.

    Columns are x0..x{d-1} and y; the spec and a format version go in the
    key-value metadata. Random floats do not compress and dictionary encoding
    only grows them, so both are off.
    """
    columns = {name: dataset.x[:, i] for i, name in enumerate(_feature_names(dataset.d))}
    columns["y"] = dataset.y
    table = pa.table(columns).replace_schema_metadata(_metadata(dataset.spec))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="none", use_dictionary=False)
    return DatasetRef(path=str(path), sha256=sha256_file(path), spec=dataset.spec)


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


def _table_to_dataset(path: Path, table: pa.Table) -> Dataset:
    spec = _spec_from_metadata(path, table.schema.metadata)
    expected = _feature_names(spec.d) + ["y"]
    if table.column_names != expected:
        raise DatasetError(path, f"columns {table.column_names}, expected {expected}")
    wrong = [f.name for f in table.schema if f.type != pa.float64()]
    if wrong:
        raise DatasetError(path, f"columns {wrong} are not float64")
    if table.num_rows != spec.n:
        raise DatasetError(path, f"{table.num_rows} rows, metadata says n={spec.n}")
    x = np.column_stack([table.column(name).to_numpy() for name in expected[:-1]])
    y = table.column("y").to_numpy()
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DatasetError(path, "contains NaN or infinite values")
    return Dataset(x=x, y=y, spec=spec)


def _load(path: Path, spec: DataSpec, sha256: str | None) -> tuple[Dataset, str]:
    """Read and check one dataset file; return it with its digest."""
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(
            path, f"not found on {socket.gethostname()}; remote workers need the data root on shared storage"
        ) from None
    except OSError as exc:
        raise DatasetError(path, f"cannot be read ({exc.strerror})") from None
    actual = hashlib.sha256(payload).hexdigest()
    if sha256 is not None and actual != sha256:
        raise DatasetError(path, f"sha256 {actual[:12]}... does not match the reference {sha256[:12]}...")
    try:
        table = pq.read_table(pa.BufferReader(payload))
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(path, f"not a readable parquet file ({exc})") from None
    dataset = _table_to_dataset(path, table)
    if dataset.spec != spec:
        raise DatasetError(path, "metadata spec differs from the expected spec")
    return dataset, actual


def read_dataset(ref: DatasetRef) -> Dataset:
    """Read a dataset, refusing it unless digest, schema, metadata and values all check out.

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
    _, digest = _load(path, spec, None)
    return DatasetRef(path=str(path), sha256=digest, spec=spec)


def ensure_dataset(spec: DataSpec, root: Path) -> tuple[DatasetRef, bool]:
    """Return a reference to the dataset for `spec` under `root`, generating it if needed.

    The file's name is derived from the spec, so the same spec reuses the same
    file. A file that is there but fails its checks is regenerated once, never
    used.

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
    return write_dataset(make_dataset(spec), path), False


def run_dir(root: Path, run_id: str) -> Path:
    """Where one run's summary and plots go."""
    return Path(root) / "runs" / run_id
