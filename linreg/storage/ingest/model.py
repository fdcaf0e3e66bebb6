"""What an ingested table is: `TableDataset`, the reference that crosses task boundaries, and `TableError`."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from linreg.storage.parquet import DatasetError

TABLE_FORMAT_VERSION = 2  # 2: the CSV dialect is part of the column choice


class TableError(DatasetError):
    """A user's table refused: the str() is one line, "PATH: problem", naming the column, row or count."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(path, " ".join(problem.split()))
        self.location = str(path)  # a URL stays a URL (DatasetError's `path` is a Path)


def quoted(names) -> str:
    """Column names as a message lists them: each quoted, so that `'income, usd'` reads as one name."""
    return ", ".join(repr(str(name)) for name in names)


class TableDataset(BaseModel):
    """A checked table, by reference: where its parquet is, what it holds and where it came from.

    Attributes:
        source: the file or folder the user named (an absolute path, or a URL).
        source_sha256: the digest of its bytes as stored (a compressed CSV's compressed bytes;
            a folder's: of its files' names and digests).
        path: the parquet file or folder to read: `source` itself when read in place.
        converted: True when `path` is a conversion written under the data root (its footer
            records this table, and its pages carry CRC checksums, checked as they are read).
        target, features: the chosen columns; features keep the order given (or the file's).
        feature_dtypes, target_dtype: the columns' types in the source, as pyarrow names them
            (a CSV's over the whole file: int64, double or bool; a folder's unified over its files).
        rows: data rows, after any dropped.
        rows_dropped: rows dropped for a missing or infinite value (drop_missing only).
        drop_missing: whether such rows were to be dropped rather than refused.
        delimiter, decimal, na_values: how a CSV was read: its delimiter (as given or detected),
            decimal point and extra missing-value tokens ("", "." and () for parquet).
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
    delimiter: str = ""
    decimal: str = "."
    na_values: tuple[str, ...] = ()

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
