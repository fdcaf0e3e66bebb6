"""The dataset cache policy: one dataset file per spec (named by `catalog`), reused only once it checks out."""

import logging
from pathlib import Path
from typing import Callable

from linreg.data import iter_dataset_chunks
from linreg.specs import DataSpec
from linreg.storage.atomic import sha256_file
from linreg.storage.catalog import Catalog
from linreg.storage.parquet import DatasetError, DatasetRef, dataset_bytes, load_dataset, write_dataset_chunks
from linreg.storage.source import DEFAULT_MEMORY_BUDGET, open_source

log = logging.getLogger("linreg.storage")


def existing_dataset(path: Path, spec: DataSpec, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> DatasetRef | None:
    """Return a reference to a valid dataset already at `path` for `spec`, else None.

    Every value is checked: in one read within the memory budget, else one row group at a time.

    Raises:
        DatasetError: a file is there but is damaged or holds another spec.
    """
    path = Path(path)
    if not path.exists():
        return None
    if dataset_bytes(spec) <= memory_budget:
        return DatasetRef(path=str(path), sha256=load_dataset(path, spec, None)[1], spec=spec)
    ref = DatasetRef(path=str(path), sha256=sha256_file(path), spec=spec)
    open_source(path, spec).check_values()
    return ref


def ensure_dataset(
    spec: DataSpec, root: Path, progress: Callable[[int], None] | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> tuple[DatasetRef, bool]:
    """Return a reference to the dataset for `spec` under `root`, generating it if needed.

    The file's name is derived from the spec, so the same spec reuses the same
    file. A file that is there but fails its checks is regenerated once, never
    used. Generation streams chunks into row groups: memory stays flat in n.

    Args:
        progress: called with rows written, as generation goes.
        memory_budget: bytes of x and y a reuse check may hold at once.

    Returns:
        (reference, reused): reused is False when the file was (re)written.
    """
    path = Catalog(Path(root).resolve()).dataset(spec)  # absolute: workers may run elsewhere
    try:
        ref = existing_dataset(path, spec, memory_budget)
    except DatasetError as exc:
        log.warning("regenerating damaged cached dataset: %s", exc)
        ref = None
    if ref is not None:
        return ref, True
    return write_dataset_chunks(spec, iter_dataset_chunks(spec), path, progress), False
