"""Synthetic data, drawn exactly as the tutorial draws it."""

from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol

import numpy as np

from linreg.specs import DataSpec

_SKIP_CHUNK = 1 << 20
CHUNK_ROWS = 1 << 20  # rows per generated chunk and parquet row group: 16 MiB per float64 column


class DataSource(Protocol):
    """What a solver reads: the rows in memory, or a file streamed one row group at a time.

    `arrays()` is the one question a solver asks: (x, y) when the data is held
    in memory, None when it must be streamed with `iter_chunks` (in order) or
    `iter_row_groups` (any order, e.g. shuffled per epoch). Implemented by
    `Dataset` here and `linreg.storage.ParquetSource`.
    """

    spec: DataSpec

    @property
    def n(self) -> int: ...

    @property
    def d(self) -> int: ...

    @property
    def row_groups(self) -> int: ...

    def arrays(self) -> tuple[np.ndarray, np.ndarray] | None: ...

    def iter_chunks(self, rows: int = CHUNK_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...

    def iter_row_groups(self, order: Iterable[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...

    def head(self, rows: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class SourceSpec:
    """What a solver reads off a source's `spec` when the data was not generated: its size and seed."""

    n: int
    d: int
    seed: int


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def holdout_mask(start: int, count: int, fraction: float, seed: int) -> np.ndarray:
    """Which of the rows start .. start+count-1 are held out: (count,) bool.

    Each row's fate is a hash (SplitMix64) of its global index and the seed, so the
    split is the same whether the data is read whole, by chunk or by row group, and
    needs no pass over it. About `fraction` of the rows are held out (binomially).
    """
    if fraction <= 0.0 or count <= 0:
        return np.zeros(max(count, 0), dtype=bool)
    with np.errstate(over="ignore"):
        z = np.arange(start, start + count, dtype=np.uint64) + np.uint64(seed) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 < fraction


def holdout_count(rows: int, fraction: float, seed: int, block: int = CHUNK_ROWS) -> int:
    """How many of `rows` rows `holdout_mask` holds out (counted block by block)."""
    return sum(int(holdout_mask(start, min(block, rows - start), fraction, seed).sum())
               for start in range(0, rows, block))


def table_positions(kept: np.ndarray, rows: int, fraction: float, seed: int, block: int = CHUNK_ROWS) -> np.ndarray:
    """The table positions (0-based) of the kept rows `kept` (0-based among the rows `holdout_mask`
    keeps, i.e. the rows fitted), read block by block up to the last one asked for.

    Args:
        kept: (k,) int indices among the kept rows.
        rows: the table's rows.

    Returns:
        (k,) int64 positions in the table, in the order of `kept`.
    """
    kept = np.asarray(kept, dtype=np.int64)
    if fraction <= 0.0 or kept.size == 0:
        return kept.copy()
    positions = np.full(kept.shape, -1, dtype=np.int64)
    before = 0  # kept rows in earlier blocks
    for start in range(0, rows, block):
        if before > kept.max():
            break
        keep = np.flatnonzero(~holdout_mask(start, min(block, rows - start), fraction, seed))
        here = (kept >= before) & (kept < before + len(keep))
        positions[here] = start + keep[kept[here] - before]
        before += len(keep)
    return positions


@dataclass(frozen=True)
class Dataset:
    """Features and targets of one dataset.

    Attributes:
        x: (n, d) float64 features.
        y: (n,) float64 targets.
        spec: the spec that generated them.
    """

    x: np.ndarray
    y: np.ndarray
    spec: DataSpec

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def d(self) -> int:
        return self.x.shape[1]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(x (n, d), y (n,)): always in memory."""
        return self.x, self.y

    def iter_chunks(self, rows: int = CHUNK_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (x, y) views of at most `rows` rows, in order."""
        for start in range(0, self.n, rows):
            yield self.x[start : start + rows], self.y[start : start + rows]

    @property
    def row_groups(self) -> int:
        """Blocks of CHUNK_ROWS rows, as the file of the same data has row groups."""
        return -(-self.n // CHUNK_ROWS)

    def iter_row_groups(self, order: Iterable[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (x, y) views of the CHUNK_ROWS-row blocks in `order`."""
        for index in order:
            start = int(index) * CHUNK_ROWS
            yield self.x[start : start + CHUNK_ROWS], self.y[start : start + CHUNK_ROWS]

    def head(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `rows` rows: a uniform sample, since rows are drawn i.i.d."""
        return self.x[:rows], self.y[:rows]


def linear_response(x: np.ndarray, weights: list[float], bias: float) -> np.ndarray:
    """bias + sum_j x[:, j] * w_j, added in feature order.

    An explicit column loop rather than `x @ w`: BLAS may sum in a different
    order for different row counts, which would make the data depend on the
    chunk size. For d = 1 this is the tutorial's own `b0 + x * w0`.

    Args:
        x: (k, d) features.

    Returns:
        (k,) noiseless targets.
    """
    y = bias + x[:, 0] * weights[0]
    for j in range(1, x.shape[1]):
        y += x[:, j] * weights[j]
    return y


def _skip_normals(rng: np.random.RandomState, count: int) -> np.random.RandomState:
    while count:
        step = min(count, _SKIP_CHUNK)
        rng.standard_normal(size=step)
        count -= step
    return rng


def iter_dataset_chunks(spec: DataSpec, rows: int = CHUNK_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Generate the dataset for `spec` in chunks of at most `rows` rows.

    The tutorial draws all of x, then all of e, from one stream. Two copies of
    RandomState(seed), the second advanced past the n * d draws of x, replay
    exactly that stream one chunk at a time, so the data is the same whatever
    the chunk size and never held whole.

    Yields:
        (x, y): (k, d) features and (k,) targets.
    """
    x_rng = np.random.RandomState(spec.seed)
    e_rng = _skip_normals(np.random.RandomState(spec.seed), spec.n * spec.d)
    for start in range(0, spec.n, rows):
        k = min(rows, spec.n - start)
        x = x_rng.standard_normal(size=(k, spec.d))
        e = spec.noise * e_rng.standard_normal(size=(k, 1))
        yield x, linear_response(x, spec.weights, spec.bias) + e[:, 0]


def make_dataset(spec: DataSpec) -> Dataset:
    """Draw x ~ N(0, 1) of shape (n, d), then e of shape (n, 1), from RandomState(seed).

    With the default spec this is bit-identical to the tutorial: the first row is
    x = 0.4967..., y = 2.1334...
    """
    rng = np.random.RandomState(spec.seed)
    x = rng.standard_normal(size=(spec.n, spec.d))
    e = spec.noise * rng.standard_normal(size=(spec.n, 1))
    return Dataset(x=x, y=linear_response(x, spec.weights, spec.bias) + e[:, 0], spec=spec)


def random_state_after_data(spec: DataSpec) -> np.random.RandomState:
    """Return RandomState(seed) advanced past the draws that made the data.

    The tutorial draws its NumPy initial parameters from the same stream right
    after the data, so `numpy_gd` continues it here. Skipping draws in chunks
    gives the same stream (RandomState carries its spare Gaussian between calls)
    without holding n * (d + 1) numbers at once.
    """
    return _skip_normals(np.random.RandomState(spec.seed), spec.n * (spec.d + 1))
