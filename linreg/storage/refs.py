"""What crosses task boundaries for a user's table, and opening either kind of dataset.

A generated dataset travels as `DatasetRef` (its file, digest and generating spec), a
user's table as `TableRef` (the ingested table, plus the run's seed and holdout). Both
are small and hashable; every task opens the data itself with `open_data`.
"""

from pydantic import BaseModel, ConfigDict

from linreg.data import Dataset, holdout_count
from linreg.storage.ingest import TableDataset, TableError, TableSource, open_table
from linreg.storage.parquet import DatasetRef
from linreg.storage.source import DEFAULT_MEMORY_BUDGET, ParquetSource, open_dataset


class TableRef(BaseModel):
    """A user's ingested table as a run reads it.

    Attributes:
        table: what `linreg.storage.ingest_table` returned.
        seed: the run's seed: the solvers' draws and the holdout split.
        holdout: the fraction of rows no solver sees, scored after (0: none).
        n_holdout: the rows held out (`linreg.data.holdout_mask`).
    """

    model_config = ConfigDict(frozen=True)

    table: TableDataset
    seed: int
    holdout: float = 0.0
    n_holdout: int = 0

    @property
    def n(self) -> int:
        """Rows the solvers fit."""
        return self.table.rows - self.n_holdout

    @property
    def d(self) -> int:
        return self.table.d

    @property
    def path(self) -> str:
        return self.table.path

    @property
    def sha256(self) -> str:
        return self.table.source_sha256

    @property
    def feature_names(self) -> list[str]:
        return list(self.table.features)


DataRef = DatasetRef | TableRef


def table_ref(table: TableDataset, seed: int, holdout: float = 0.0, fit_intercept: bool = True) -> TableRef:
    """The run's view of an ingested table, once the holdout leaves enough rows on each side.

    Raises:
        TableError: the holdout takes every row, or leaves fewer rows to fit than parameters.
    """
    held = holdout_count(table.rows, holdout, seed) if holdout > 0 else 0
    params = table.d + (1 if fit_intercept else 0)
    if holdout > 0 and held == 0:
        raise TableError(table.source, f"--holdout {holdout:g} holds out no row of {table.rows}; "
                                       "raise it, or leave it out")
    if table.rows - held < params:
        raise TableError(table.source, f"--holdout {holdout:g} leaves {table.rows - held} of {table.rows} rows to "
                                       f"fit {params} parameters; lower it")
    return TableRef(table=table, seed=seed, holdout=holdout, n_holdout=held)


def open_data(ref: DataRef, memory_budget: int = DEFAULT_MEMORY_BUDGET,
              part: str = "train") -> Dataset | ParquetSource | TableSource:
    """The rows of `ref` a task reads: in memory within the budget, else streamed.

    Args:
        part: for a table, "train" (the rows the solvers fit), "holdout" or "all";
            generated data has no holdout, and is always whole.

    Raises:
        DatasetError: the file is missing, damaged or changed (TableError for a table).
    """
    if isinstance(ref, DatasetRef):
        return open_dataset(ref, memory_budget)
    # A conversion is checked by its footer (cheap); a file read in place was hashed by the
    # ingest of this run, and each task checks its row count (not its bytes, which would
    # cost a full read per solver).
    return open_table(ref.table, memory_budget, seed=ref.seed, verify=ref.table.converted,
                      holdout=ref.holdout, part=part)
