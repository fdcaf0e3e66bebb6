"""The data root's layout and the datasets' file I/O, in one package.

`linreg.results` reads the runs' summary.json files (as RunSummary, which this package
cannot import) at the paths `catalog` names; the rest of linreg takes arrays and returns values.

- `catalog`: the data root's layout: every path under it (datasets, runs, sweeps, history) and the run ids;
- `atomic`: files written whole or not at all, CSV, digests;
- `parquet`: the dataset file format, its checks and `DatasetRef`;
- `source`: opening a dataset in memory or as a chunked `ParquetSource`;
- `cache`: reuse of a dataset file per spec, generated when missing or damaged;
- `ingest`: a user's own CSV or parquet table, checked, converted once or read in place;
- `refs`: `TableRef`, a table as a run reads it (seed, holdout), and `open_data` for either kind.
"""

from linreg.storage.atomic import atomic_path, sha256_file, write_bytes, write_csv, write_text
from linreg.storage.cache import ensure_dataset, existing_dataset
from linreg.storage.catalog import Catalog, dataset_path, run_dir, spec_digest
from linreg.storage.ingest import TableDataset, TableError, TableSource, ingest_table, open_table
from linreg.storage.parquet import (
    FORMAT_VERSION, DatasetError, DatasetRef, dataset_bytes, load_dataset, read_dataset, write_dataset,
    write_dataset_chunks,
)
from linreg.storage.source import DEFAULT_MEMORY_BUDGET, ParquetSource, open_dataset, open_source
from linreg.storage.refs import DataRef, TableRef, open_data, table_ref

__all__ = [
    "atomic_path", "sha256_file", "write_bytes", "write_csv", "write_text",
    "Catalog", "dataset_path", "run_dir", "spec_digest", "ensure_dataset", "existing_dataset",
    "FORMAT_VERSION", "DatasetError", "DatasetRef", "dataset_bytes", "load_dataset", "read_dataset",
    "write_dataset", "write_dataset_chunks",
    "DEFAULT_MEMORY_BUDGET", "ParquetSource", "open_dataset", "open_source",
    "TableDataset", "TableError", "TableSource", "ingest_table", "open_table",
    "DataRef", "TableRef", "open_data", "table_ref",
]
