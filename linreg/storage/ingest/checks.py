"""The checks a table passes before any fit: the columns chosen, their types, and one streamed pass over the values."""

import shlex
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from linreg.storage.ingest.model import TableError, quoted

# The reports' own columns beside the features' (the reference's "intercept" row; "solver" and
# "bias" in the coefficient tables): a feature of that name would be one of two same-named columns.
RESERVED_NAMES = ("intercept", "bias", "solver")


def choose_columns(path: str, names: list[str], target: str, features: list[str] | None) -> list[str]:
    """The features to read: `features` as given, else every column but the target, in file order.

    Raises:
        TableError: an unknown column (listing those that exist), a chosen column whose header cell
            is empty or repeated (naming its position), the target among the features, a feature
            listed twice, no feature at all, or a feature named as one of the reports' own columns
            (RESERVED_NAMES).
    """
    available = quoted(names)
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
            raise TableError(path, f"unknown feature column{'s' if len(unknown) > 1 else ''} {quoted(unknown)}; "
                                   f"the columns are: {available}")
        if target in features:
            raise TableError(path, f"the target {target!r} is also listed among the features; leave it out")
        twice = sorted({c for c in features if features.count(c) > 1})
        if twice:
            raise TableError(path, f"features list {quoted(twice)} more than once")
    for column in [*features, target]:
        positions = [i + 1 for i, c in enumerate(names) if c == column]
        if column.strip() == "":
            raise TableError(path, f"column {positions[0]} has an empty name in the header; name it in the file, "
                                   "or choose the features by name (--feature NAME)")
        if len(positions) > 1:
            where = ", ".join(map(str, positions[:-1])) + f" and {positions[-1]}"
            raise TableError(path, f"duplicate column name {column!r} (columns {where}); "
                                   "rename one, or choose the features by name (--feature NAME)")
    if not features:
        raise TableError(path, f"no feature columns: the only column is the target {target!r}")
    taken = [c for c in features if c in RESERVED_NAMES]
    if taken:
        raise TableError(path, f"feature column {taken[0]!r} has a name the reports give a column of their own "
                               f"({quoted(RESERVED_NAMES)}); rename it in the file, or leave it out of the features")
    return features

MAX_EXAMPLE = 6  # columns named in a refusal's example command


def is_numeric(dtype: pa.DataType) -> bool:
    """Whether a column of this type is fitted: integers, decimals, floats, and booleans as 0/1."""
    return (pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)
            or pa.types.is_boolean(dtype))


def non_numeric_error(path: str, column: str, dtype: str, names: list[str], target: str,
                       types: dict[str, pa.DataType], where: str = "") -> TableError:
    numeric = [c for c in names if c not in (target, column) and is_numeric(types.get(c, pa.float64()))]
    if column == target:
        hint = f" (numeric columns: {quoted(numeric)})" if numeric else ""
        return TableError(path, f"the target {column!r} is not numeric ({dtype}{where}); "
                                f"choose a numeric column with --target{hint}")
    example = " ".join(f"--feature {shlex.quote(c)}" for c in numeric[:MAX_EXAMPLE])
    hint = f" (e.g. {example}{' ...' if len(numeric) > MAX_EXAMPLE else ''})" if numeric else ""
    return TableError(path, f"column {column!r} is not numeric ({dtype}{where}); "
                            f"choose numeric features with --feature NAME{hint}")


@dataclass
class ValueChecks:
    """Counts of missing and infinite values per column, their first rows, running min/max and rows kept.

    `update` takes each batch in row order (columns: the features, then the
    target) and returns it with bad rows dropped when `drop_missing`. Columns
    listed in `integer_columns` (indices) are also checked for whole numbers.
    """

    path: str
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
        values = [float64_values(batch.column(j)) for j in range(batch.num_columns)]
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


def float64_values(column: pa.Array) -> np.ndarray:
    """A column as float64 values, missing ones as NaN (zero-copy for a float64 column without nulls)."""
    if column.type != pa.float64():
        column = column.cast(pa.float64())
    return column.to_numpy(zero_copy_only=False)


